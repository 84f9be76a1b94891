# The variables of an environment root. live/dev and live/prod link this file (live/_shared holds the
# one definition every environment root links to; a test checks it); terraform.tfvars beside each link
# sets only what differs. The cost model (`invoke cost`) reads the defaults here and the values in
# terraform.tfvars.

variable "environment" {
  type        = string
  description = "Environment name; must match the folder under live/."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment must be 1-16 characters: a lowercase letter, then lowercase letters, digits or '-'."
  }
}

variable "region" {
  type        = string
  description = "AWS region."
  default     = "ap-southeast-2"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as ap-southeast-2."
  }
}

variable "allowed_account_ids" {
  type        = list(string)
  description = "AWS account ids this root may touch; the provider refuses any other (a guard against the wrong profile)."

  validation {
    condition     = length(var.allowed_account_ids) > 0 && alltrue([for id in var.allowed_account_ids : can(regex("^[0-9]{12}$", id))])
    error_message = "allowed_account_ids must list 12-digit AWS account ids."
  }
}

variable "image_tag" {
  type        = string
  description = "Pin the image tag every task runs; null (the default) runs the tag `invoke deploy` last released."
  default     = null

  validation {
    condition     = var.image_tag == null || can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", coalesce(var.image_tag, "x")))
    error_message = "image_tag must be a Docker tag: letters, digits, '_', '.', '-', at most 128 characters."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC (/16 to /24)."
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && can(regex("/(1[6-9]|2[0-3])$", var.vpc_cidr))
    error_message = "vpc_cidr must be an IPv4 CIDR block between /16 and /23 (its subnets are 1/16 of it; an ALB needs /27 subnets), for example 10.40.0.0/16."
  }
}

variable "ui_allowed_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the Dagster web UI (your office or VPN); empty means nobody until set."
  default     = []

  validation {
    condition     = alltrue([for c in var.ui_allowed_cidrs : can(cidrhost(c, 0))])
    error_message = "Every entry of ui_allowed_cidrs must be a CIDR block such as 203.0.113.10/32."
  }

  validation {
    condition     = !anytrue([for c in var.ui_allowed_cidrs : endswith(c, "/0")])
    error_message = "The Dagster UI has no login of its own: ui_allowed_cidrs must not contain 0.0.0.0/0 or ::/0."
  }
}

variable "enable_alb" {
  type        = bool
  description = "Put an HTTPS load balancer in front of the web UI (about $18/month more)."
  default     = false
}

variable "alb_certificate_arn" {
  type        = string
  description = "ACM certificate for the ALB's HTTPS listener; required when enable_alb is true."
  default     = null

  validation {
    condition     = !var.enable_alb || var.alb_certificate_arn != null
    error_message = "enable_alb needs alb_certificate_arn (an ACM certificate in the same region)."
  }
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
  description = "OpenID Connect login in front of the UI (ALB only). Pass it as TF_VAR_alb_oidc, never in tfvars."
  default     = null
  sensitive   = true
}

variable "single_task" {
  type        = bool
  description = "Run webserver, daemon and code locations as containers of one task (service `stack`): the cheap dev shape."
  default     = false
}

variable "use_fargate_spot" {
  type        = bool
  description = "Run services and runs on FARGATE_SPOT (about 70% cheaper; tasks may be interrupted)."
  default     = false
}

variable "webserver_cpu" {
  type        = number
  description = "CPU units of the webserver task; 256 = 0.25 vCPU."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.webserver_cpu)
    error_message = "webserver_cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "webserver_memory" {
  type        = number
  description = "Memory (MiB) of the webserver task; must fit webserver_cpu on Fargate."
  default     = 512

  validation {
    condition = contains(lookup({
      256   = [512, 1024, 2048]
      512   = [for gb in range(1, 5) : gb * 1024]
      1024  = [for gb in range(2, 9) : gb * 1024]
      2048  = [for gb in range(4, 17) : gb * 1024]
      4096  = [for gb in range(8, 31) : gb * 1024]
      8192  = [for gb in range(16, 61, 4) : gb * 1024]
      16384 = [for gb in range(32, 121, 8) : gb * 1024]
    }, var.webserver_cpu, []), var.webserver_memory)
    error_message = "webserver_memory does not fit webserver_cpu on Fargate: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384 (steps of 1024)."
  }
}

variable "daemon_cpu" {
  type        = number
  description = "CPU units of the daemon task; 256 = 0.25 vCPU."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.daemon_cpu)
    error_message = "daemon_cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "daemon_memory" {
  type        = number
  description = "Memory (MiB) of the daemon task; must fit daemon_cpu on Fargate."
  default     = 512

  validation {
    condition = contains(lookup({
      256   = [512, 1024, 2048]
      512   = [for gb in range(1, 5) : gb * 1024]
      1024  = [for gb in range(2, 9) : gb * 1024]
      2048  = [for gb in range(4, 17) : gb * 1024]
      4096  = [for gb in range(8, 31) : gb * 1024]
      8192  = [for gb in range(16, 61, 4) : gb * 1024]
      16384 = [for gb in range(32, 121, 8) : gb * 1024]
    }, var.daemon_cpu, []), var.daemon_memory)
    error_message = "daemon_memory does not fit daemon_cpu on Fargate: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384 (steps of 1024)."
  }
}

variable "code_location_cpu" {
  type        = number
  description = "CPU units of each code-location task (code server + sync agent); 256 = 0.25 vCPU."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.code_location_cpu)
    error_message = "code_location_cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "code_location_memory" {
  type        = number
  description = "Memory (MiB) of each code-location task (code server + sync agent); must fit code_location_cpu on Fargate."
  default     = 512

  validation {
    condition = contains(lookup({
      256   = [512, 1024, 2048]
      512   = [for gb in range(1, 5) : gb * 1024]
      1024  = [for gb in range(2, 9) : gb * 1024]
      2048  = [for gb in range(4, 17) : gb * 1024]
      4096  = [for gb in range(8, 31) : gb * 1024]
      8192  = [for gb in range(16, 61, 4) : gb * 1024]
      16384 = [for gb in range(32, 121, 8) : gb * 1024]
    }, var.code_location_cpu, []), var.code_location_memory)
    error_message = "code_location_memory does not fit code_location_cpu on Fargate: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384 (steps of 1024)."
  }
}

variable "run_cpu" {
  type        = number
  description = "CPU units of each run task (one per Dagster run); 256 = 0.25 vCPU."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.run_cpu)
    error_message = "run_cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "run_memory" {
  type        = number
  description = "Memory (MiB) of each run task (one per Dagster run); must fit run_cpu on Fargate."
  default     = 512

  validation {
    condition = contains(lookup({
      256   = [512, 1024, 2048]
      512   = [for gb in range(1, 5) : gb * 1024]
      1024  = [for gb in range(2, 9) : gb * 1024]
      2048  = [for gb in range(4, 17) : gb * 1024]
      4096  = [for gb in range(8, 31) : gb * 1024]
      8192  = [for gb in range(16, 61, 4) : gb * 1024]
      16384 = [for gb in range(32, 121, 8) : gb * 1024]
    }, var.run_cpu, []), var.run_memory)
    error_message = "run_memory does not fit run_cpu on Fargate: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384 (steps of 1024)."
  }
}

variable "stack_cpu" {
  type        = number
  description = "CPU units of the one-task stack (single_task); 256 = 0.25 vCPU."
  default     = 512

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.stack_cpu)
    error_message = "stack_cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "stack_memory" {
  type        = number
  description = "Memory (MiB) of the one-task stack (single_task); must fit stack_cpu on Fargate."
  default     = 1024

  validation {
    condition = contains(lookup({
      256   = [512, 1024, 2048]
      512   = [for gb in range(1, 5) : gb * 1024]
      1024  = [for gb in range(2, 9) : gb * 1024]
      2048  = [for gb in range(4, 17) : gb * 1024]
      4096  = [for gb in range(8, 31) : gb * 1024]
      8192  = [for gb in range(16, 61, 4) : gb * 1024]
      16384 = [for gb in range(32, 121, 8) : gb * 1024]
    }, var.stack_cpu, []), var.stack_memory)
    error_message = "stack_memory does not fit stack_cpu on Fargate: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384 (steps of 1024)."
  }
}

variable "webserver_min_count" {
  type        = number
  description = "Fewest webserver tasks (separate services only)."
  default     = 1

  validation {
    condition     = var.webserver_min_count >= 1
    error_message = "webserver_min_count must be at least 1."
  }
}

variable "webserver_max_count" {
  type        = number
  description = "Most webserver tasks; autoscaling on CPU 70% and memory 80% moves between min and max."
  default     = 2

  validation {
    condition     = var.webserver_max_count >= var.webserver_min_count && var.webserver_max_count <= 10
    error_message = "webserver_max_count must be between webserver_min_count and 10."
  }
}

variable "sync_interval_seconds" {
  type        = number
  description = "Seconds between a sync agent's polls of its S3 manifest (one small request each)."
  default     = 60

  validation {
    condition     = var.sync_interval_seconds >= 1 && var.sync_interval_seconds <= 3600
    error_message = "sync_interval_seconds must be between 1 and 3600."
  }
}

variable "db_instance_class" {
  type        = string
  description = "RDS PostgreSQL instance class (db.t4g.micro is in the free tier)."
  default     = "db.t4g.micro"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "db_instance_class must be an RDS class such as db.t4g.micro."
  }
}

variable "db_allocated_storage" {
  type        = number
  description = "RDS storage in GB (gp3, at least 20)."
  default     = 20

  validation {
    condition     = var.db_allocated_storage >= 20 && var.db_allocated_storage <= 16384
    error_message = "db_allocated_storage must be between 20 and 16384 GB."
  }
}

variable "db_multi_az" {
  type        = bool
  description = "Keep an RDS standby in a second AZ (doubles the database cost)."
  default     = false
}

variable "db_backup_retention_days" {
  type        = number
  description = "Days of RDS automated backups (0 turns them off)."
  default     = 1

  validation {
    condition     = var.db_backup_retention_days >= 0 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 0 and 35."
  }
}

variable "db_deletion_protection" {
  type        = bool
  description = "Refuse to delete the database (prod)."
  default     = false
}

variable "db_final_snapshot" {
  type        = bool
  description = "When the database is deleted, take a final snapshot and keep its automated backups (on unless an environment turns it off; independent of db_deletion_protection)."
  default     = true
}

variable "log_retention_days" {
  type        = number
  description = "CloudWatch Logs retention in days."
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ..."
  }
}

variable "compute_log_expiration_days" {
  type        = number
  description = "Days Dagster compute logs are kept in S3 (logs/<env>/)."
  default     = 30

  validation {
    condition     = var.compute_log_expiration_days >= 1
    error_message = "compute_log_expiration_days must be at least 1."
  }
}

variable "force_destroy" {
  type        = bool
  description = "Let `tofu destroy` remove a bucket with objects, an ECR repository with images and secrets at once (dev only)."
  default     = false
}

# ---- office hours (modules/schedule): AWS stops the services and the database outside them ----

variable "schedule_enabled" {
  type        = bool
  description = "Stop the ECS services and the RDS instance outside the active hours (EventBridge Scheduler); off runs around the clock."
  default     = false
}

variable "schedule_days" {
  type        = list(string)
  description = "Days the environment is started (MON ... SUN); the evening stop fires every day."
  default     = ["MON", "TUE", "WED", "THU", "FRI"]

  validation {
    condition     = length(var.schedule_days) > 0 && alltrue([for d in var.schedule_days : contains(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], d)])
    error_message = "schedule_days must list at least one of MON, TUE, WED, THU, FRI, SAT, SUN."
  }
}

variable "schedule_start" {
  type        = string
  description = "Local time (HH:MM) the services start on schedule_days; the database starts 15 minutes earlier."
  default     = "08:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.schedule_start))
    error_message = "schedule_start must be a 24-hour time such as 08:00."
  }
  validation {
    condition     = !can(regex("^00:(0[0-9]|1[0-4])$", var.schedule_start))
    error_message = "schedule_start must be 00:15 or later: the database starts 15 minutes earlier, the same day."
  }
}

variable "schedule_stop" {
  type        = string
  description = "Local time (HH:MM) the services and the database stop, every day; later than schedule_start."
  default     = "18:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.schedule_stop))
    error_message = "schedule_stop must be a 24-hour time such as 18:00."
  }
  validation {
    condition     = replace(var.schedule_stop, ":", "") > replace(var.schedule_start, ":", "")
    error_message = "schedule_stop must be later in the day than schedule_start (office hours do not cross midnight)."
  }
}

variable "schedule_time_zone" {
  type        = string
  description = "IANA time zone of schedule_start and schedule_stop, e.g. Australia/Sydney."
  default     = "UTC"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$", var.schedule_time_zone))
    error_message = "schedule_time_zone must be an IANA time zone name such as Australia/Sydney or UTC."
  }
}
