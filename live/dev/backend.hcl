# `tofu init -backend-config=backend.hcl`: the state bucket comes from live/bootstrap (output state_bucket).
bucket       = "dagops-tfstate-123456789012"
key          = "dagops/dev/terraform.tfstate"
region       = "ap-southeast-2"
encrypt      = true
use_lockfile = true
