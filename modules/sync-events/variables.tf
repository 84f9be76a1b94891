variable "name" {
  type        = string
  description = "Name prefix of the queues, e.g. dagops-dev (queue <name>-sync-<location>)."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name must be 1-40 letters, digits, '_' or '-'."
  }
}

variable "bucket_name" {
  type        = string
  description = "Bucket whose dags/<location>/_manifest.json writes are announced."
}

variable "code_locations" {
  type        = list(string)
  description = "Code locations; each gets its own queue (SQS hands a message to one consumer only)."

  validation {
    condition     = alltrue([for loc in var.code_locations : can(regex("^[A-Za-z0-9_-]{1,30}$", loc))])
    error_message = "Location names must be 1-30 letters, digits, '_' or '-' (they are part of queue names)."
  }
}

variable "consumer_role_names" {
  type        = map(string)
  description = "Location => name of the IAM role whose sync agent reads that location's queue (the same role may serve several locations, as in the one-task stack)."
}

variable "message_retention_seconds" {
  type        = number
  description = "How long an unread event is kept; the agent's poll is the safety net, so short is fine."
  default     = 3600

  validation {
    condition     = var.message_retention_seconds >= 60 && var.message_retention_seconds <= 1209600
    error_message = "message_retention_seconds must be between 60 and 1209600."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
