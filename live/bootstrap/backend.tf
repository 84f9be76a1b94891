# The bootstrap root creates the state bucket, so it starts with local state (terraform.tfstate here,
# git-ignored). After the first apply, move it into the bucket it created:
#   1. replace `backend "local" {}` below with `backend "s3" {}`
#   2. tofu -chdir=live/bootstrap init -migrate-state -backend-config=backend.hcl
terraform {
  backend "local" {}
}
