output "names" {
  description = "Log group names by key."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "arns" {
  description = "Log group ARNs by key."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.arn }
}
