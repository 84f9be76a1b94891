variable "enabled" {
  type        = bool
  description = "Create the schedules; false creates nothing (the environment runs around the clock)."
  default     = false
}

variable "name" {
  type        = string
  description = "Name prefix of the schedule group and the role, e.g. dagops-dev."

  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$", var.name))
    error_message = "name must be 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit."
  }
}

variable "cluster_name" {
  type        = string
  description = "ECS cluster of the services."
}

variable "services" {
  type        = map(number)
  description = "Services switched with ecs:UpdateService: service name => desired count while active (0 off-hours)."
  default     = {}

  validation {
    condition     = alltrue([for n in values(var.services) : n >= 1 && floor(n) == n])
    error_message = "Each service's active desired count must be a whole number of at least 1."
  }
}

variable "autoscaled_services" {
  type = map(object({
    min_count = number
    max_count = number
  }))
  description = "Services under Application Auto Scaling, switched by scaling scheduled actions (min/max 0 off-hours), so autoscaling does not undo the stop: service name => active min and max."
  default     = {}

  validation {
    condition     = alltrue([for s in values(var.autoscaled_services) : s.min_count >= 1 && s.max_count >= s.min_count])
    error_message = "Each autoscaled service needs min_count >= 1 and max_count >= min_count."
  }
}

variable "db_instance_identifier" {
  type        = string
  description = "RDS instance started before the active hours and stopped after them (null: no database switching)."
  default     = null
}

variable "days" {
  type        = list(string)
  description = "Days the environment is started: MON, TUE, WED, THU, FRI, SAT, SUN. The stop fires every day."
  default     = ["MON", "TUE", "WED", "THU", "FRI"]

  validation {
    condition = (
      length(var.days) > 0 && length(distinct(var.days)) == length(var.days)
      && alltrue([for d in var.days : contains(["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], d)])
    )
    error_message = "days must list at least one of MON, TUE, WED, THU, FRI, SAT, SUN, each once."
  }
}

variable "start" {
  type        = string
  description = "Local time (HH:MM, 24 h) the services start on each of days; the database starts database_lead_minutes earlier."
  default     = "08:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.start))
    error_message = "start must be a 24-hour time such as 08:00."
  }
}

variable "stop" {
  type        = string
  description = "Local time (HH:MM, 24 h) the services and the database stop, every day; later than start."
  default     = "18:00"

  validation {
    condition     = can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.stop))
    error_message = "stop must be a 24-hour time such as 18:00."
  }
  validation {
    condition     = !can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.start)) || replace(var.stop, ":", "") > replace(var.start, ":", "")
    error_message = "stop must be later in the day than start (active hours do not cross midnight)."
  }
}

variable "time_zone" {
  type        = string
  description = "IANA time zone of start and stop, e.g. Australia/Sydney (EventBridge Scheduler follows its daylight saving)."
  default     = "UTC"

  validation {
    condition     = can(regex("^(UTC|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$", var.time_zone))
    error_message = "time_zone must be an IANA time zone name such as Australia/Sydney or UTC."
  }
}

variable "database_lead_minutes" {
  type        = number
  description = "Minutes the database is started before the services (an RDS start takes about 5-10 minutes)."
  default     = 15

  validation {
    condition     = var.database_lead_minutes >= 0 && var.database_lead_minutes <= 60 && floor(var.database_lead_minutes) == var.database_lead_minutes
    error_message = "database_lead_minutes must be a whole number from 0 to 60."
  }
  validation {
    condition = !can(regex("^([01][0-9]|2[0-3]):[0-5][0-9]$", var.start)) || (
      tonumber(split(":", var.start)[0]) * 60 + tonumber(split(":", var.start)[1]) >= var.database_lead_minutes
    )
    error_message = "start must be at least database_lead_minutes after midnight (the database starts that much earlier, the same day)."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
