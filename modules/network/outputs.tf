output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "public_subnet_ids" {
  description = "Public subnets (one per AZ): ECS tasks and the optional ALB."
  value       = aws_subnet.public[*].id
}

output "private_subnet_ids" {
  description = "Private subnets without a route out (one per AZ): the database."
  value       = aws_subnet.private[*].id
}

output "tasks_security_group_id" {
  description = "Security group of every Dagster ECS task."
  value       = aws_security_group.tasks.id
}

output "runs_security_group_id" {
  description = "Security group of the run tasks (egress to AWS APIs and the database only)."
  value       = aws_security_group.runs.id
}

output "database_security_group_id" {
  description = "Security group of the database."
  value       = aws_security_group.database.id
}

output "alb_security_group_id" {
  description = "Security group of the ALB, or null without one."
  value       = one(aws_security_group.alb[*].id)
}
