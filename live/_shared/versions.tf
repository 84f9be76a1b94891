terraform {
  # use_lockfile in the S3 backend needs OpenTofu >= 1.10 or Terraform >= 1.10.
  required_version = ">= 1.10.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100.0"
    }
  }
}
