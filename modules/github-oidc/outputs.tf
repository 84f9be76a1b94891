output "deploy_role_arns" {
  description = "ARN of each environment's deploy role: the AWS_DEPLOY_ROLE_ARN variable of that GitHub Environment."
  value       = { for env, role in aws_iam_role.deploy : env => role.arn }
}

output "oidc_provider_arn" {
  description = "ARN of the GitHub OIDC provider."
  value       = local.provider_arn
}

output "plan_role_arn" {
  description = "ARN of the read-only plan role (pull requests)."
  value       = aws_iam_role.plan.arn
}
