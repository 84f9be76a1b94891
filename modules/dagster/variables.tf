variable "project" {
  type        = string
  description = "Project name: the first part of every resource name."
  default     = "dagops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,11}$", var.project))
    error_message = "project must be 2-12 characters: a lowercase letter, then lowercase letters, digits or '-'."
  }
}

variable "environment" {
  type        = string
  description = "Environment name (dev, prod, ...): part of every resource name."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment must be 1-16 characters: a lowercase letter, then lowercase letters, digits or '-'."
  }
}

variable "code_locations" {
  type        = list(string)
  description = "Code-location names (from code_locations/locations.yaml); each gets a code server, a role, an S3 prefix and a log group."
  default     = ["main"]

  validation {
    condition     = length(var.code_locations) >= 1 && alltrue([for l in var.code_locations : can(regex("^[a-z][a-z0-9_-]{0,38}$", l))])
    error_message = "Each code location name is 1-39 characters: a lowercase letter, then lowercase letters, digits, '-' or '_'."
  }

  validation {
    condition     = length(distinct([for l in var.code_locations : replace(l, "_", "-")])) == length(var.code_locations)
    error_message = "Two code locations differ only by '_' versus '-': their DNS names (where '_' becomes '-') would collide."
  }
}

variable "image_tag" {
  type        = string
  description = "Pin the image tag every task runs (it must be pushed); null runs the tag `invoke deploy` last recorded in the image-tag SSM parameter, and nothing runs before the first release."
  default     = null

  validation {
    condition     = var.image_tag == null || can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", coalesce(var.image_tag, "x")))
    error_message = "image_tag must be a Docker tag: letters, digits, '_', '.', '-', at most 128 characters."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC."
  default     = "10.40.0.0/16"
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the web UI (never 0.0.0.0/0)."
  default     = []
}

variable "enable_alb" {
  type        = bool
  description = "Put an HTTPS ALB in front of the webserver."
  default     = false
}

variable "alb_certificate_arn" {
  type        = string
  description = "ACM certificate of the ALB's HTTPS listener (required with enable_alb)."
  default     = null
}

variable "alb_oidc" {
  type = object({
    issuer                 = string
    authorization_endpoint = string
    token_endpoint         = string
    user_info_endpoint     = string
    client_id              = string
    client_secret          = string
  })
  description = "OpenID Connect login in front of the UI (ALB only); null for none."
  default     = null
  sensitive   = true
}

variable "single_task" {
  type        = bool
  description = "Run webserver, daemon and code locations as containers of one task (the cheap dev shape) instead of separate services."
  default     = false
}

variable "use_fargate_spot" {
  type        = bool
  description = "Run the services and runs on FARGATE_SPOT (cheaper, can be interrupted)."
  default     = false
}

variable "webserver_cpu" {
  type        = number
  description = "Webserver task CPU units."
  default     = 256
}

variable "webserver_memory" {
  type        = number
  description = "Webserver task memory (MiB)."
  default     = 512
}

variable "webserver_min_count" {
  type        = number
  description = "Fewest webserver tasks."
  default     = 1
}

variable "webserver_max_count" {
  type        = number
  description = "Most webserver tasks (autoscaling on CPU and memory)."
  default     = 2
}

variable "webserver_cpu_target" {
  type        = number
  description = "Average CPU utilisation (%) the webserver autoscaling aims for."
  default     = 70
}

variable "webserver_memory_target" {
  type        = number
  description = "Average memory utilisation (%) the webserver autoscaling aims for."
  default     = 80
}

variable "daemon_cpu" {
  type        = number
  description = "Daemon task CPU units."
  default     = 256
}

variable "daemon_memory" {
  type        = number
  description = "Daemon task memory (MiB)."
  default     = 512
}

variable "code_location_cpu" {
  type        = number
  description = "CPU units of each code-location task (code server + sync agent)."
  default     = 256
}

variable "code_location_memory" {
  type        = number
  description = "Memory (MiB) of each code-location task."
  default     = 512
}

variable "run_cpu" {
  type        = number
  description = "CPU units of each run task launched by EcsRunLauncher."
  default     = 256
}

variable "run_memory" {
  type        = number
  description = "Memory (MiB) of each run task."
  default     = 512
}

variable "stack_cpu" {
  type        = number
  description = "CPU units of the one-task stack (single_task)."
  default     = 512
}

variable "stack_memory" {
  type        = number
  description = "Memory (MiB) of the one-task stack (single_task)."
  default     = 1024
}

variable "code_server_port" {
  type        = number
  description = "gRPC port of a code server (in the one-task stack, location i listens on this port + i)."
  default     = 4000
}

variable "sync_interval_seconds" {
  type        = number
  description = "Seconds between a sync agent's polls of its manifest (DAGOPS_SYNC_INTERVAL)."
  default     = 60
}

variable "db_app_username" {
  type        = string
  description = "Dagster's own database role (created by `invoke deploy.db-setup`; logs in with RDS IAM tokens). Never the master user."
  default     = "dagster_app"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,62}$", var.db_app_username)) && var.db_app_username != "dagster"
    error_message = "db_app_username must be 1-63 lowercase letters, digits or '_' (not starting with a digit), and not the master user 'dagster'."
  }
}

variable "db_instance_class" {
  type        = string
  description = "RDS instance class."
  default     = "db.t4g.micro"
}

variable "db_allocated_storage" {
  type        = number
  description = "RDS storage (GB, gp3)."
  default     = 20
}

variable "db_multi_az" {
  type        = bool
  description = "RDS standby in a second AZ."
  default     = false
}

variable "db_backup_retention_days" {
  type        = number
  description = "Days of RDS automated backups."
  default     = 1
}

variable "db_deletion_protection" {
  type        = bool
  description = "Protect the database from deletion."
  default     = false
}

variable "db_final_snapshot" {
  type        = bool
  description = "When the database is deleted, take a final snapshot and keep its automated backups (independent of db_deletion_protection, which the delete procedure turns off)."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch log retention (days)."
  default     = 14
}

variable "compute_log_expiration_days" {
  type        = number
  description = "Days compute logs are kept in S3 (logs/<env>/)."
  default     = 30
}

variable "bucket_name" {
  type        = string
  description = "Bucket name; null means <project>-<environment>-<account id>."
  default     = null
}

variable "force_destroy" {
  type        = bool
  description = "Let `tofu destroy` remove a non-empty bucket, ECR images and secrets at once (dev only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource (the provider's default_tags come on top)."
  default     = {}
}
