variable "region" {
  type        = string
  description = "AWS region of the state bucket."
  default     = "ap-southeast-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as ap-southeast-2."
  }
}

variable "allowed_account_ids" {
  type        = list(string)
  description = "AWS account ids this root may touch."

  validation {
    condition     = length(var.allowed_account_ids) > 0 && alltrue([for id in var.allowed_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "allowed_account_ids must list 12-digit AWS account ids."
  }
}

variable "state_bucket_name" {
  type        = string
  description = "Name of the state bucket; null means dagops-tfstate-<account id>."
  default     = null
}

variable "github_repository" {
  type        = string
  description = "owner/name of the GitHub repository whose workflows may deploy."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, for example my-org/dagops."
  }
}

variable "create_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub OIDC provider (false if the account already has one)."
  default     = true
}
