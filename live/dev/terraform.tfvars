# dev: only what differs from the defaults in variables.tf.
environment = "dev"
# Replace with your AWS account id (the provider refuses any other account).
allowed_account_ids = ["123456789012"]

# The cheap shape: webserver, daemon and code locations in one task on Fargate Spot.
single_task      = true
use_fargate_spot = true

# Throwaway: destroy removes the bucket's objects, the images and the secrets at once.
force_destroy            = true
db_backup_retention_days = 0
db_final_snapshot        = false
log_retention_days       = 7

# Who may open the web UI (your office or VPN address); 0.0.0.0/0 is refused.
ui_allowed_cidrs = ["203.0.113.0/24"]

# Office hours: AWS stops the services and the database at 18:00 every day and starts them at 08:00 on
# working days (README "Cost"); `invoke env.pause` / `env.resume` still work in between.
schedule_enabled   = true
schedule_days      = ["MON", "TUE", "WED", "THU", "FRI"]
schedule_start     = "08:00"
schedule_stop      = "18:00"
schedule_time_zone = "Australia/Sydney"
