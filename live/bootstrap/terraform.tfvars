# Replace with your AWS account id and your repository.
allowed_account_ids = ["123456789012"]
github_repository   = "your-org/dagops"
