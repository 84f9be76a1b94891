# The contract read by the deploy tasks (README "Tofu outputs of every live/<env> root").

output "region" {
  description = "AWS region."
  value       = module.dagster.region
}

output "environment" {
  description = "Environment name."
  value       = module.dagster.environment
}

output "account_id" {
  description = "AWS account id."
  value       = module.dagster.account_id
}

output "bucket_name" {
  description = "S3 bucket of dags/, logs/ and assets/."
  value       = module.dagster.bucket_name
}

output "ecr_repository_url" {
  description = "ECR repository of the runtime image."
  value       = module.dagster.ecr_repository_url
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.dagster.cluster_name
}

output "service_names" {
  description = "ECS services: webserver, daemon, code-<location>; or stack (single_task)."
  value       = module.dagster.service_names
}

output "task_definition_families" {
  description = "Task definition families: the service keys plus run."
  value       = module.dagster.task_definition_families
}

output "log_group_names" {
  description = "CloudWatch log groups: webserver, daemon, run, code-<location>."
  value       = module.dagster.log_group_names
}

output "db_instance_identifier" {
  description = "RDS instance identifier."
  value       = module.dagster.db_instance_identifier
}

output "webserver_url" {
  description = "Web UI URL behind the ALB; null without one (use the webserver task's public IP, port 3000)."
  value       = module.dagster.webserver_url
}

output "aws_credentials_secret_arn" {
  description = "Secrets Manager secret with the S3-only user's access key."
  value       = module.dagster.aws_credentials_secret_arn
}

output "aws_access_key_id" {
  description = "Access key id of the S3-only user."
  value       = module.dagster.aws_access_key_id
  sensitive   = true
}

output "aws_secret_access_key" {
  description = "Secret access key of the S3-only user."
  value       = module.dagster.aws_secret_access_key
  sensitive   = true
}

output "namespace" {
  description = "Cloud Map namespace."
  value       = module.dagster.namespace
}

output "code_servers" {
  description = "gRPC address of each code location."
  value       = module.dagster.code_servers
}

output "run_task_definition_family" {
  description = "Task definition family of runs (EcsRunLauncher)."
  value       = module.dagster.run_task_definition_family
}

output "subnet_ids" {
  description = "Subnets of the tasks."
  value       = module.dagster.subnet_ids
}

output "tasks_security_group_id" {
  description = "Security group of the tasks."
  value       = module.dagster.tasks_security_group_id
}

output "schedule" {
  description = "Office hours (days, start, stop, time_zone, database_start) when schedule_enabled; null otherwise."
  value       = module.schedule.summary
}

output "runs_security_group_id" {
  description = "Security group of the run tasks."
  value       = module.dagster.runs_security_group_id
}

output "db_secret_arn" {
  description = "RDS-managed master secret; read only by the db-setup task."
  value       = module.dagster.db_secret_arn
}

output "db_setup_role_arn" {
  description = "Task role of the one-off database setup task (`invoke deploy.db-setup`)."
  value       = module.dagster.db_setup_role_arn
}

output "image_tag_parameter" {
  description = "SSM parameter holding the released image tag (written by `invoke deploy`)."
  value       = module.dagster.image_tag_parameter
}

output "image_tag" {
  description = "Image tag the task definitions name; null before the first release."
  value       = module.dagster.image_tag
}
