provider "aws" {
  region              = var.region
  allowed_account_ids = var.allowed_account_ids

  default_tags {
    tags = {
      Project     = "dagops"
      Environment = var.environment
      ManagedBy   = "opentofu"
      Root        = "live/${var.environment}"
    }
  }
}
