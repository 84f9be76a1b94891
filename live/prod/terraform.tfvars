# prod: only what differs from the defaults in variables.tf (separate services, on-demand Fargate).
environment = "prod"
# Replace with your AWS account id (the provider refuses any other account).
allowed_account_ids = ["123456789012"]
vpc_cidr            = "10.41.0.0/16"

db_deletion_protection   = true
db_backup_retention_days = 7
log_retention_days       = 30

# Who may open the web UI (your office or VPN address); 0.0.0.0/0 is refused.
ui_allowed_cidrs = ["203.0.113.0/24"]
