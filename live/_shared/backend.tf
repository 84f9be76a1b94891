# Partial configuration: bucket, key, region and locking come from backend.hcl
# (`tofu init -backend-config=backend.hcl`, or `invoke infra.init --env <env>`).
terraform {
  backend "s3" {}
}
