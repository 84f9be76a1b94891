output "execution_role_arn" {
  description = "ARN of the ECS task execution role."
  value       = aws_iam_role.execution.arn
}

output "control_role_arn" {
  description = "ARN of the webserver and daemon task role."
  value       = aws_iam_role.control.arn
}

output "run_role_arn" {
  description = "ARN of the task role of runs."
  value       = aws_iam_role.run.arn
}

output "code_location_role_arns" {
  description = "Task role ARN of each code location (map: location name => ARN)."
  value       = { for loc, role in aws_iam_role.code_location : loc => role.arn }
}

output "stack_role_arn" {
  description = "ARN of the one-task stack's role, or null when the services run separately."
  value       = one(aws_iam_role.stack[*].arn)
}

output "location_run_role_arns" {
  description = "Run task role ARN of each code location (map: location name => ARN), for its container context."
  value       = { for loc, role in aws_iam_role.location_run : loc => role.arn }
}

output "db_setup_role_arn" {
  description = "ARN of the one-off database setup task's role (the only one that reads the master secret)."
  value       = aws_iam_role.db_setup.arn
}
