# One environment = one call of the dagster module; what differs per environment is in terraform.tfvars.
# Code locations come from the registry, so `invoke repo.add` + `tofu apply` needs no edit here.

locals {
  registry       = yamldecode(file("${path.root}/../../code_locations/locations.yaml"))
  code_locations = [for location in local.registry.locations : location.name]
}

module "dagster" {
  source = "../../modules/dagster"

  environment    = var.environment
  code_locations = local.code_locations
  image_tag      = var.image_tag

  vpc_cidr            = var.vpc_cidr
  ui_allowed_cidrs    = var.ui_allowed_cidrs
  enable_alb          = var.enable_alb
  alb_certificate_arn = var.alb_certificate_arn
  alb_oidc            = var.alb_oidc

  single_task           = var.single_task
  use_fargate_spot      = var.use_fargate_spot
  webserver_cpu         = var.webserver_cpu
  webserver_memory      = var.webserver_memory
  webserver_min_count   = var.webserver_min_count
  webserver_max_count   = var.webserver_max_count
  daemon_cpu            = var.daemon_cpu
  daemon_memory         = var.daemon_memory
  code_location_cpu     = var.code_location_cpu
  code_location_memory  = var.code_location_memory
  run_cpu               = var.run_cpu
  run_memory            = var.run_memory
  stack_cpu             = var.stack_cpu
  stack_memory          = var.stack_memory
  sync_interval_seconds = var.sync_interval_seconds

  db_instance_class        = var.db_instance_class
  db_allocated_storage     = var.db_allocated_storage
  db_multi_az              = var.db_multi_az
  db_backup_retention_days = var.db_backup_retention_days
  db_deletion_protection   = var.db_deletion_protection
  db_final_snapshot        = var.db_final_snapshot

  log_retention_days          = var.log_retention_days
  compute_log_expiration_days = var.compute_log_expiration_days
  force_destroy               = var.force_destroy
}

# Office hours (README "Cost"): off unless schedule_enabled. The webserver is autoscaled (separate services),
# so its schedule moves the scaling bounds; every other service runs 1 task while active.
module "schedule" {
  source = "../../modules/schedule"

  enabled                = var.schedule_enabled
  name                   = "dagops-${var.environment}"
  cluster_name           = module.dagster.cluster_name
  db_instance_identifier = module.dagster.db_instance_identifier
  services               = { for key, name in module.dagster.service_names : name => 1 if key != "webserver" }
  autoscaled_services = {
    for key, name in module.dagster.service_names : name => {
      min_count = var.webserver_min_count
      max_count = var.webserver_max_count
    } if key == "webserver"
  }
  days      = var.schedule_days
  start     = var.schedule_start
  stop      = var.schedule_stop
  time_zone = var.schedule_time_zone

  # The autoscaled services' scalable targets must exist before their scheduled actions.
  depends_on = [module.dagster]
}
