variable "name" {
  type        = string
  description = "Name prefix for every resource (for example dagops-dev)."
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC; /16 to /23 (each subnet is 1/16 of it, and an ALB needs /27 subnets)."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 23
    error_message = "vpc_cidr must be an IPv4 CIDR block between /16 and /23 (its subnets are 1/16 of it; an ALB needs /27 subnets), for example 10.40.0.0/16."
  }
}

variable "az_count" {
  type        = number
  description = "Number of availability zones to spread the subnets over (RDS needs at least two)."
  default     = 2

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3."
  }
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the Dagster web UI (directly, or through the ALB when there is one)."
  default     = []

  validation {
    condition     = alltrue([for c in var.ui_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of ui_allowed_cidrs must be a CIDR block such as 203.0.113.10/32."
  }

  validation {
    condition     = !anytrue([for c in var.ui_allowed_cidrs : endswith(c, "/0")])
    error_message = "The web UI has no login of its own: ui_allowed_cidrs must not contain 0.0.0.0/0 or ::/0; list your office or VPN addresses, or use the ALB with authentication."
  }
}

variable "webserver_port" {
  type        = number
  description = "Port the Dagster webserver listens on inside its container."
  default     = 3000
}

variable "code_server_port_range" {
  type        = object({ from = number, to = number })
  description = "Ports of the gRPC code servers, reachable only from inside the tasks' security group."
  default     = { from = 4000, to = 4099 }
}

variable "enable_alb" {
  type        = bool
  description = "Create a security group for an internet-facing ALB; the web UI is then reachable only through it."
  default     = false
}

variable "alb_oidc_enabled" {
  type        = bool
  description = "The ALB logs users in through an OIDC provider: allow it HTTPS out to reach the provider."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
