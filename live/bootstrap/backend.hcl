# Used only after migrating the bootstrap state into the bucket (see backend.tf).
bucket       = "dagops-tfstate-123456789012"
key          = "dagops/bootstrap/terraform.tfstate"
region       = "ap-southeast-2"
encrypt      = true
use_lockfile = true
