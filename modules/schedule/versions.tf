terraform {
  # Cross-variable validation needs Terraform >= 1.9 / OpenTofu >= 1.8.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.80.0"
    }
  }
}
