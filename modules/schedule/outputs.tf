output "enabled" {
  description = "Whether the office-hours schedules exist."
  value       = var.enabled
}

output "summary" {
  description = "The active hours as the deploy tasks print them (null when disabled): days, start, stop, time zone, database start."
  value = var.enabled ? {
    days           = var.days
    start          = var.start
    stop           = var.stop
    time_zone      = var.time_zone
    database_start = format("%02d:%02d", floor(local.db_start_minutes / 60), local.db_start_minutes % 60)
  } : null
}

output "schedule_group_name" {
  description = "EventBridge Scheduler group holding the schedules (null when disabled)."
  value       = one(aws_scheduler_schedule_group.this[*].name)
}

output "role_arn" {
  description = "Role the schedules act with (null when disabled or nothing to switch)."
  value       = one(aws_iam_role.this[*].arn)
}
