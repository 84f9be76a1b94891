variable "bucket_name" {
  type        = string
  description = "Name of the bucket holding every environment's tofu state (dagops/<env>/terraform.tfstate)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3-63 lowercase letters, digits, dots or hyphens."
  }
}

variable "noncurrent_version_expiration_days" {
  type        = number
  description = "Days old state versions are kept (the way back from a bad apply)."
  default     = 90
}

variable "force_destroy" {
  type        = bool
  description = "Allow destroying the bucket with state in it (only to tear down a sandbox account)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
