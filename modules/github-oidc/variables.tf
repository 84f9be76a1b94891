variable "role_name" {
  type        = string
  description = "Name prefix of the deploy roles (apply, image push, deploy): one per environment, <role_name>-<env>."
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

variable "environments" {
  type        = list(string)
  description = "GitHub Environments (= live/<env> roots) that get a deploy role each, <role_name>-<env>, trusted only by jobs of that environment."
  default     = ["dev", "prod"]

  validation {
    condition     = length(var.environments) > 0 && alltrue([for e in var.environments : can(regex("^[a-z][a-z0-9-]{0,15}$", e))])
    error_message = "environments must list environment names (1-16 lowercase letters, digits or '-', starting with a letter)."
  }
}

variable "state_key_prefix" {
  type        = string
  description = "Prefix of the state keys in the state bucket; each environment's state is <prefix><env>/terraform.tfstate."
  default     = "dagops/"
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
