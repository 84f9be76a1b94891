variable "name" {
  type        = string
  description = "Name prefix (for example dagops-dev): the IAM user, its group and the secret are named after it."
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the environment's bucket: the only thing the credentials can touch."
}

variable "writable_prefixes" {
  type        = list(string)
  description = "Key prefixes the credentials may write and delete under (reading covers the whole bucket)."
  default     = ["dags/"]

  validation {
    condition     = alltrue([for p in var.writable_prefixes : can(regex("^[a-z0-9_-]+/$", p))])
    error_message = "Each writable prefix is one folder name followed by '/', for example dags/."
  }
}

variable "recovery_window_days" {
  type        = number
  description = "Days a deleted secret can still be restored (0 deletes at once; use 0 only in dev)."
  default     = 7

  validation {
    condition     = var.recovery_window_days == 0 || (var.recovery_window_days >= 7 && var.recovery_window_days <= 30)
    error_message = "recovery_window_days must be 0 or between 7 and 30."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
