output "role_arn" {
  description = "ARN of the deploy role (the workflows' role-to-assume)."
  value       = aws_iam_role.deploy.arn
}

output "oidc_provider_arn" {
  description = "ARN of the GitHub OIDC provider."
  value       = local.provider_arn
}

output "plan_role_arn" {
  description = "ARN of the read-only plan role (pull requests)."
  value       = aws_iam_role.plan.arn
}
