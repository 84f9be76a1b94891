variable "name" {
  type        = string
  description = "Name prefix of the roles (for example dagops-dev)."
}

variable "environment" {
  type        = string
  description = "Environment name; compute logs are written under logs/<environment>/."
}

variable "bucket_arn" {
  type        = string
  description = "ARN of the environment's bucket."
}

variable "code_locations" {
  type        = list(string)
  description = "Code-location names; each gets a task role scoped to its own dags/<loc>/ and assets/<loc>/ prefixes."
}

variable "cluster_name" {
  type        = string
  description = "Name of the ECS cluster that runs are launched in (RunTask, StopTask are limited to it)."
}

variable "run_task_family" {
  type        = string
  description = "Task definition family that EcsRunLauncher launches runs from."
}

variable "ecr_repository_arn" {
  type        = string
  description = "ARN of the ECR repository tasks pull the image from."
}

variable "log_group_arns" {
  type        = list(string)
  description = "ARNs of the CloudWatch log groups containers write to."
}

variable "run_log_group_arn" {
  type        = string
  description = "ARN of the run tasks' log group, whose streams the control role reads (run-failure messages)."

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:[^*]+$", var.run_log_group_arn))
    error_message = "run_log_group_arn must be the ARN of one CloudWatch log group (no wildcard)."
  }
}

variable "db_secret_arn" {
  type        = string
  description = "ARN of the RDS-managed master secret (read only by the database setup task's role)."
}

variable "db_user_arn" {
  type        = string
  description = "rds-db:connect ARN of Dagster's own database user (arn:<partition>:rds-db:<region>:<account>:dbuser:<resource id>/<user>)."

  validation {
    condition     = can(regex("^arn:[a-z-]+:rds-db:[a-z0-9-]+:[0-9]{12}:dbuser:[^/]+/[a-z_][a-z0-9_]*$", var.db_user_arn))
    error_message = "db_user_arn must be arn:<partition>:rds-db:<region>:<account>:dbuser:<db resource id>/<user>."
  }
}

variable "single_task" {
  type        = bool
  description = "Also create the role of the one-task stack (webserver, daemon and code locations together)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
