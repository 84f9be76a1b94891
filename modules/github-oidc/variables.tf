variable "role_name" {
  type        = string
  description = "Name of the deploy role (apply, image push, deploy) that main and GitHub Environments assume."
  default     = "dagops-github-deploy"
}

variable "plan_role_name" {
  type        = string
  description = "Name of the read-only role pull requests assume for `tofu plan`."
  default     = "dagops-github-plan"
}

variable "plan_subjects" {
  type        = list(string)
  description = "The parts of the OIDC subject after repo:<owner>/<name>: that may assume the plan role."
  default     = ["pull_request"]
}

variable "github_repository" {
  type        = string
  description = "The repository (owner/name) whose workflows may assume the role."

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, for example my-org/dagops."
  }
}

variable "allowed_subjects" {
  type        = list(string)
  description = "The parts of the OIDC subject after repo:<owner>/<name>: that may assume the deploy role (main and GitHub Environments)."
  default     = ["ref:refs/heads/main", "environment:*"]
}

variable "create_oidc_provider" {
  type        = bool
  description = "Create the account's GitHub OIDC provider (false when another stack already did; there is one per account)."
  default     = true
}

variable "state_bucket_arn" {
  type        = string
  description = "ARN of the tofu state bucket."
}

variable "resource_prefix" {
  type        = string
  description = "Prefix of the names of the resources the role may manage (IAM roles, users, buckets)."
  default     = "dagops-"
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
