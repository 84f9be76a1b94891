variable "name" {
  type        = string
  description = "Name of the load balancer and prefix of its target group (for example dagops-prod)."

  validation {
    condition     = length(var.name) <= 28
    error_message = "name must be at most 28 characters (ALB and target group names stop at 32)."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC of the target group."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Public subnets (two AZs at least)."
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the ALB (80/443 from the allow-list only)."
}

variable "certificate_arn" {
  type        = string
  description = "ACM certificate of the HTTPS listener."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "target_port" {
  type        = number
  description = "Port of the Dagster webserver in its task."
  default     = 3000
}

variable "oidc" {
  type = object({
    issuer                 = string
    authorization_endpoint = string
    token_endpoint         = string
    user_info_endpoint     = string
    client_id              = string
    client_secret          = string
  })
  description = "Log users in through this OpenID Connect provider before forwarding (null: allow-list only)."
  default     = null
  sensitive   = true
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the load balancer."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
