# Once per AWS account: the bucket every environment's state lives in, and the roles GitHub Actions
# assume through OIDC (no stored keys).

data "aws_caller_identity" "current" {}

module "state" {
  source = "../../modules/state-bucket"

  bucket_name = coalesce(var.state_bucket_name, "dagops-tfstate-${data.aws_caller_identity.current.account_id}")
}

module "github" {
  source = "../../modules/github-oidc"

  github_repository    = var.github_repository
  create_oidc_provider = var.create_oidc_provider
  state_bucket_arn     = module.state.bucket_arn
}
