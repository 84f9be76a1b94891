variable "log_groups" {
  type        = map(string)
  description = "Log groups to create: key (webserver, daemon, run, code-<location>, ...) => log group name."

  validation {
    condition     = alltrue([for n in values(var.log_groups) : can(regex("^[A-Za-z0-9_./#-]{1,512}$", n))])
    error_message = "Log group names may contain letters, digits, '_', '-', '/', '.' and '#'."
  }
}

variable "retention_days" {
  type        = number
  description = "Days CloudWatch keeps the logs."
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.retention_days)
    error_message = "retention_days must be a value CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ..."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
