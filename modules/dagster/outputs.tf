# The contract (README "Tofu outputs"): live roots re-export these under the same names.

output "region" {
  description = "AWS region of the environment."
  value       = local.region
}

output "environment" {
  description = "Environment name."
  value       = var.environment
}

output "account_id" {
  description = "AWS account id."
  value       = local.account_id
}

output "bucket_name" {
  description = "Bucket of dags/<location>/, logs/<env>/ and assets/<location>/."
  value       = module.storage.bucket_name
}

output "ecr_repository_url" {
  description = "ECR repository of the runtime image."
  value       = module.ecr.repository_url
}

output "cluster_name" {
  description = "ECS cluster name."
  value       = module.cluster.cluster_name
}

output "service_names" {
  description = "ECS service names: webserver, daemon, code-<location>; or stack when dev runs as one task."
  value       = { for key, svc in module.service : key => svc.service_name }
}

output "task_definition_families" {
  description = "Task definition families: the service keys plus run."
  value = merge(
    { for key, svc in module.service : key => svc.task_definition_family },
    { run = local.run_family },
  )
}

output "log_group_names" {
  description = "CloudWatch log groups: webserver, daemon, run, code-<location>."
  value       = module.logs.names
}

output "db_instance_identifier" {
  description = "RDS instance identifier."
  value       = module.database.identifier
}

output "webserver_url" {
  description = "HTTPS URL of the web UI behind the ALB; null without an ALB (use the webserver task's public IP, port 3000)."
  value       = var.enable_alb ? module.alb[0].url : null
}

output "aws_credentials_secret_arn" {
  description = "Secrets Manager secret holding the S3-only user's access key."
  value       = module.secrets.aws_credentials_secret_arn
}

output "aws_access_key_id" {
  description = "Access key id of the S3-only user."
  value       = module.secrets.aws_access_key_id
  sensitive   = true
}

output "aws_secret_access_key" {
  description = "Secret access key of the S3-only user."
  value       = module.secrets.aws_secret_access_key
  sensitive   = true
}

# Beyond the contract: handy for operators and the deploy tasks.

output "namespace" {
  description = "Cloud Map namespace (<service>.<namespace>)."
  value       = module.cluster.namespace_name
}

output "code_servers" {
  description = "Where each code location's gRPC server is found (host:port)."
  value       = { for loc, s in local.code_server : loc => "${s.host}:${s.port}" }
}

output "run_task_definition_family" {
  description = "Task definition family EcsRunLauncher launches runs from."
  value       = local.run_family
}

output "db_secret_arn" {
  description = "RDS-managed secret holding the master password (key `password`); read only by the db-setup task."
  value       = module.database.master_user_secret_arn
}

output "db_address" {
  description = "Host name of the database."
  value       = module.database.address
}

output "subnet_ids" {
  description = "Public subnets of the tasks (and runs)."
  value       = module.network.public_subnet_ids
}

output "tasks_security_group_id" {
  description = "Security group of the service tasks."
  value       = module.network.tasks_security_group_id
}

output "runs_security_group_id" {
  description = "Security group of the run tasks (egress to AWS APIs and the database only)."
  value       = module.network.runs_security_group_id
}

output "db_app_username" {
  description = "Dagster's own database role (RDS IAM authentication; never the master)."
  value       = var.db_app_username
}

output "db_setup_role_arn" {
  description = "Task role of the one-off database setup task (`invoke deploy.db-setup`)."
  value       = module.iam.db_setup_role_arn
}

output "image_tag_parameter" {
  description = "SSM parameter holding the released image tag (written by `invoke deploy`)."
  value       = aws_ssm_parameter.image_tag.name
}

output "image_tag" {
  description = "Image tag the task definitions name; null before the first release."
  value       = local.released ? local.image_tag : null
}
