output "state_bucket" {
  description = "Put this in the `bucket` of every live/<env>/backend.hcl."
  value       = module.state.bucket_name
}

output "deploy_role_arn" {
  description = "role-to-assume of the workflows on main and in GitHub Environments."
  value       = module.github.role_arn
}

output "plan_role_arn" {
  description = "role-to-assume of the pull-request plan job."
  value       = module.github.plan_role_arn
}
