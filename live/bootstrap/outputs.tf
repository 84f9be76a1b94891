output "state_bucket" {
  description = "Put this in the `bucket` of every live/<env>/backend.hcl."
  value       = module.state.bucket_name
}

output "deploy_role_arns" {
  description = "Per environment: set each as the AWS_DEPLOY_ROLE_ARN variable of the GitHub Environment of that name."
  value       = module.github.deploy_role_arns
}

output "plan_role_arn" {
  description = "role-to-assume of the pull-request plan job."
  value       = module.github.plan_role_arn
}
