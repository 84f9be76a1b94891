variable "name" {
  type        = string
  description = "Identifier of the DB instance (and prefix of its subnet and parameter groups)."
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the DB subnet group (at least two AZs); private subnets without a route out."

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the instance (reachable only from the ECS tasks)."
}

variable "instance_class" {
  type        = string
  description = "RDS instance class; db.t4g.micro is in the free tier."
  default     = "db.t4g.micro"

  validation {
    condition     = startswith(var.instance_class, "db.")
    error_message = "instance_class must be an RDS class such as db.t4g.micro."
  }
}

variable "allocated_storage" {
  type        = number
  description = "Storage in GB (gp3; 20 GB is the minimum and in the free tier)."
  default     = 20

  validation {
    condition     = var.allocated_storage >= 20 && var.allocated_storage <= 16384
    error_message = "allocated_storage must be between 20 and 16384 GB (gp3)."
  }
}

variable "engine_version" {
  type        = string
  description = "PostgreSQL major version."
  default     = "16"
}

variable "multi_az" {
  type        = bool
  description = "Run a standby in a second AZ (doubles the cost)."
  default     = false
}

variable "backup_retention_days" {
  type        = number
  description = "Days of automated backups (0 turns them off)."
  default     = 1

  validation {
    condition     = var.backup_retention_days >= 0 && var.backup_retention_days <= 35
    error_message = "backup_retention_days must be between 0 and 35."
  }
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to delete the instance (turn on for prod)."
  default     = false
}

variable "skip_final_snapshot" {
  type        = bool
  description = "Delete without a final snapshot (dev only)."
  default     = true
}

variable "retain_backups" {
  type        = bool
  description = "Keep the automated backups (for their retention period) when the instance is deleted."
  default     = false
}

variable "database_name" {
  type        = string
  description = "Name of the database Dagster uses."
  default     = "dagster"
}

variable "username" {
  type        = string
  description = "Master user name; its password is generated and kept in Secrets Manager by RDS."
  default     = "dagster"
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}

variable "log_retention_days" {
  type        = number
  description = "Retention of the PostgreSQL log exported to CloudWatch."
  default     = 14
}
