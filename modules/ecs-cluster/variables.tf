variable "name" {
  type        = string
  description = "Cluster name (for example dagops-dev)."
}

variable "vpc_id" {
  type        = string
  description = "VPC of the Cloud Map private DNS namespace."
}

variable "namespace" {
  type        = string
  description = "Cloud Map private DNS namespace; services are found as <service>.<namespace>."

  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a DNS name of lowercase labels, for example dev.dagops.internal."
  }
}

variable "container_insights" {
  type        = bool
  description = "Turn on CloudWatch Container Insights (extra metrics, extra cost)."
  default     = false
}

variable "fargate_spot_weight" {
  type        = number
  description = "Default capacity provider strategy: 0 runs everything on FARGATE, 1 on FARGATE_SPOT."
  default     = 0

  validation {
    condition     = contains([0, 1], var.fargate_spot_weight)
    error_message = "fargate_spot_weight must be 0 (on-demand) or 1 (Spot)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
