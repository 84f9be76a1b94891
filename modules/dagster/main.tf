data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  name        = "${var.project}-${var.environment}"
  account_id  = data.aws_caller_identity.current.account_id
  region      = data.aws_region.current.name
  bucket_name = coalesce(var.bucket_name, "${local.name}-${local.account_id}")
  namespace   = "${var.environment}.${var.project}.internal"
  tags        = merge(var.tags, { Environment = var.environment })

  # Keys of the services, task families and log groups: the contract the deploy tasks read.
  location_keys  = { for loc in var.code_locations : loc => "code-${loc}" }
  location_index = { for i, loc in var.code_locations : loc => i }
  # Cloud Map names are DNS labels: '_' is not allowed there.
  location_dns = { for loc in var.code_locations : loc => replace(loc, "_", "-") }

  log_group_names = merge(
    { for key in ["webserver", "daemon", "run"] : key => "/${var.project}/${var.environment}/${key}" },
    { for loc, key in local.location_keys : key => "/${var.project}/${var.environment}/${key}" },
  )

  # Tofu owns what every task runs (README "Releases"): the tag `invoke deploy` records in the image-tag
  # parameter after pushing it (or var.image_tag, a pin). Before the first release there is no image:
  # services run no task and there is no `run` task definition, so nothing pulls a tag nobody pushed.
  image_tag      = coalesce(var.image_tag, aws_ssm_parameter.image_tag.insecure_value)
  released       = local.image_tag != local.unreleased
  image          = "${module.ecr.repository_url}:${local.image_tag}"
  webserver_port = 3000
  code_dir       = "/opt/dagster/code"
  run_family     = "${local.name}-run"
  unreleased     = "-" # not a Docker tag: the parameter's value until the first release

  # ECS container health checks by role (the file tests/infra/test_health_checks.py runs them from).
  health_checks = jsondecode(file("${path.module}/health_checks.json"))
  # The daemon stops itself when one of its threads misses heartbeats this long, and its health check
  # (dagster-daemon liveness-check) fails when the whole process has: one threshold for both.
  daemon_env = { DAGSTER_DAEMON_HEARTBEAT_TOLERANCE = "300" }

  # Where each code server is found: its own Cloud Map name, or localhost inside the one-task stack.
  code_server = {
    for loc in var.code_locations : loc => (
      var.single_task
      ? { host = "localhost", port = var.code_server_port + local.location_index[loc] }
      : { host = "${local.location_dns[loc]}.${local.namespace}", port = var.code_server_port }
    )
  }
  webserver_url_internal = (
    var.single_task ? "http://localhost:${local.webserver_port}" : "http://webserver.${local.namespace}:${local.webserver_port}"
  )

  # ---- container settings (README "Container settings") ----
  common_env = {
    DAGSTER_S3_BUCKET  = module.storage.bucket_name
    DAGOPS_ENV         = var.environment
    AWS_DEFAULT_REGION = local.region
  }
  # Dagster's own role, never the master: an RDS IAM token per new connection, so the master password can
  # rotate under running tasks (modules/database/README.md; `invoke deploy.db-setup` creates the role).
  postgres_env = {
    DAGSTER_PG_HOST     = module.database.address
    DAGSTER_PG_PORT     = tostring(module.database.port)
    DAGSTER_PG_DB       = module.database.database_name
    DAGSTER_PG_USERNAME = var.db_app_username
    DAGSTER_PG_AUTH     = "iam"
  }
  postgres_secrets = []
  db_user_arn      = "arn:${data.aws_partition.current.partition}:rds-db:${local.region}:${local.account_id}:dbuser:${module.database.resource_id}/${var.db_app_username}"
  control_env = {
    DAGOPS_CODE_LOCATIONS      = join(",", [for loc in var.code_locations : "${loc}=${local.code_server[loc].host}:${local.code_server[loc].port}"])
    DAGOPS_RUN_TASK_DEFINITION = local.run_family
    DAGOPS_RUN_SUBNETS         = join(",", module.network.public_subnet_ids)
    DAGOPS_RUN_SECURITY_GROUPS = module.network.runs_security_group_id
    DAGOPS_LOG_GROUP_RUN       = local.log_group_names["run"]
    # Runs take this strategy (the entrypoint puts it in run_task_kwargs), not the daemon's launch type.
    DAGOPS_RUN_CAPACITY_PROVIDER = var.use_fargate_spot ? "FARGATE_SPOT" : "FARGATE"
  }

  containers = merge(
    {
      webserver = {
        name         = "webserver"
        command      = ["webserver"]
        env          = merge(local.common_env, local.postgres_env, local.control_env)
        secrets      = local.postgres_secrets
        port         = local.webserver_port
        log_group    = local.log_group_names["webserver"]
        stop_timeout = 30
        health       = "webserver"
      }
      daemon = {
        name         = "daemon"
        command      = ["daemon"]
        env          = merge(local.common_env, local.postgres_env, local.control_env, local.daemon_env)
        secrets      = local.postgres_secrets
        port         = null
        log_group    = local.log_group_names["daemon"]
        stop_timeout = 60
        health       = "daemon"
      }
    },
    {
      for loc, key in local.location_keys : key => {
        name    = key
        command = ["code-location"]
        env = merge(local.common_env, {
          DAGOPS_LOCATION      = loc
          DAGOPS_CODE_DIR      = local.code_dir
          DAGOPS_SYNC_INTERVAL = tostring(var.sync_interval_seconds)
          DAGOPS_WEBSERVER_URL = local.webserver_url_internal
          DAGOPS_GRPC_PORT     = tostring(local.code_server[loc].port)
          # For the code server's container context: runs of this location get this location's role.
          DAGOPS_RUN_TASK_ROLE_ARN = module.iam.location_run_role_arns[loc]
          # S3 -> SQS event path (modules/sync-events): sync at once on a publish; the poll stays.
          DAGOPS_SYNC_QUEUE_URL = module.sync_events.queue_urls[loc]
        })
        secrets      = []
        port         = local.code_server[loc].port
        log_group    = local.log_group_names[key]
        stop_timeout = 30
        health       = "code-location"
      }
    },
  )

  container_definitions = {
    for key, c in local.containers : key => merge(
      {
        name            = c.name
        image           = local.image
        essential       = true
        command         = c.command
        environment     = [for k in sort(keys(c.env)) : { name = k, value = c.env[k] }]
        secrets         = c.secrets
        stopTimeout     = c.stop_timeout
        portMappings    = c.port == null ? [] : [{ containerPort = c.port, protocol = "tcp" }]
        linuxParameters = { initProcessEnabled = true }
        healthCheck = {
          command     = [for arg in local.health_checks[c.health].command : c.port == null ? arg : replace(arg, "{port}", tostring(c.port))]
          interval    = local.health_checks[c.health].interval
          timeout     = local.health_checks[c.health].timeout
          retries     = local.health_checks[c.health].retries
          startPeriod = local.health_checks[c.health].startPeriod
        }
        logConfiguration = {
          logDriver = "awslogs"
          options = {
            awslogs-group         = c.log_group
            awslogs-region        = local.region
            awslogs-stream-prefix = key
          }
        }
      },
    )
  }

  run_container = {
    name            = "run" # EcsRunLauncher's default container_name
    image           = local.image
    essential       = true
    environment     = [for k, v in merge(local.common_env, local.postgres_env, { DAGOPS_CODE_DIR = local.code_dir }) : { name = k, value = v }]
    secrets         = local.postgres_secrets
    linuxParameters = { initProcessEnabled = true }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = local.log_group_names["run"]
        awslogs-region        = local.region
        awslogs-stream-prefix = "run"
      }
    }
  }

  base_service = {
    desired_count  = 1
    min_healthy    = 100
    max_percent    = 200
    autoscaling    = null
    discovery_name = null
    load_balancer  = null
    create_service = true
  }

  # One entry per ECS service. Built as a merge of filtered parts (not one conditional) because the
  # entries differ in shape (autoscaling, discovery) and a conditional needs one type for both branches.
  stack_service = {
    stack = merge(local.base_service, {
      cpu        = var.stack_cpu
      memory     = var.stack_memory
      containers = jsonencode(values(local.container_definitions))
      role_arn   = module.iam.stack_role_arn
      # The stack holds the daemon: never two at once.
      min_healthy   = 0
      max_percent   = 100
      load_balancer = local.webserver_load_balancer
    })
  }
  separate_services = {
    webserver = merge(local.base_service, {
      cpu            = var.webserver_cpu
      memory         = var.webserver_memory
      containers     = jsonencode([local.container_definitions["webserver"]])
      role_arn       = module.iam.control_role_arn
      discovery_name = "webserver"
      autoscaling = {
        min_count     = var.webserver_min_count
        max_count     = var.webserver_max_count
        cpu_target    = var.webserver_cpu_target
        memory_target = var.webserver_memory_target
      }
      load_balancer = local.webserver_load_balancer
    })
    # Exactly one daemon, never autoscaled; a deployment stops the old one before starting the new one.
    daemon = merge(local.base_service, {
      cpu         = var.daemon_cpu
      memory      = var.daemon_memory
      containers  = jsonencode([local.container_definitions["daemon"]])
      role_arn    = module.iam.control_role_arn
      min_healthy = 0
      max_percent = 100
    })
  }
  location_services = {
    for loc, key in local.location_keys : key => merge(local.base_service, {
      cpu            = var.code_location_cpu
      memory         = var.code_location_memory
      containers     = jsonencode([local.container_definitions[key]])
      role_arn       = module.iam.code_location_role_arns[loc]
      discovery_name = local.location_dns[loc]
      # Stop the old code server before starting the new one: two revisions never answer one Cloud Map
      # name (README "Deployments of a code location").
      min_healthy = 0
      max_percent = 100
    })
  }
  webserver_load_balancer = var.enable_alb ? {
    target_group_arn = module.alb[0].target_group_arn
    container_name   = "webserver"
    container_port   = local.webserver_port
  } : null

  services = merge(
    { for key, svc in local.stack_service : key => svc if var.single_task },
    { for key, svc in local.separate_services : key => svc if !var.single_task },
    { for key, svc in local.location_services : key => svc if !var.single_task },
  )
}

module "network" {
  source = "../network"

  name             = local.name
  vpc_cidr         = var.vpc_cidr
  ui_allowed_cidrs = var.ui_allowed_cidrs
  webserver_port   = local.webserver_port
  code_server_port_range = {
    from = var.code_server_port
    to   = var.code_server_port + max(length(var.code_locations) - 1, 0)
  }
  enable_alb = var.enable_alb
  # Whether OIDC is on is not a secret; the provider's settings (client secret) are.
  alb_oidc_enabled = nonsensitive(var.alb_oidc != null)
  tags             = local.tags
}

module "storage" {
  source = "../storage"

  bucket_name         = local.bucket_name
  environment         = var.environment
  log_expiration_days = var.compute_log_expiration_days
  force_destroy       = var.force_destroy
  tags                = local.tags
}

module "database" {
  source = "../database"

  name                  = local.name
  subnet_ids            = module.network.private_subnet_ids
  security_group_ids    = [module.network.database_security_group_id]
  instance_class        = var.db_instance_class
  allocated_storage     = var.db_allocated_storage
  multi_az              = var.db_multi_az
  backup_retention_days = var.db_backup_retention_days
  deletion_protection   = var.db_deletion_protection
  skip_final_snapshot   = !var.db_final_snapshot
  retain_backups        = var.db_final_snapshot
  log_retention_days    = var.log_retention_days
  tags                  = local.tags
}

module "secrets" {
  source = "../secrets"

  name                 = local.name
  bucket_arn           = module.storage.bucket_arn
  recovery_window_days = var.force_destroy ? 0 : 7
  tags                 = local.tags
}

module "ecr" {
  source = "../ecr"

  name         = local.name
  force_delete = var.force_destroy
  tags         = local.tags
}

module "logs" {
  source = "../logs"

  log_groups     = local.log_group_names
  retention_days = var.log_retention_days
  tags           = local.tags
}

module "iam" {
  source = "../iam"

  name               = local.name
  environment        = var.environment
  bucket_arn         = module.storage.bucket_arn
  code_locations     = var.code_locations
  cluster_name       = local.name
  run_task_family    = local.run_family
  ecr_repository_arn = module.ecr.repository_arn
  log_group_arns     = values(module.logs.arns)
  run_log_group_arn  = module.logs.arns["run"]
  db_secret_arn      = module.database.master_user_secret_arn
  db_user_arn        = local.db_user_arn
  single_task        = var.single_task
  tags               = local.tags
}

# One SQS queue of manifest events per location, read only by that location's agent.
module "sync_events" {
  source = "../sync-events"

  name           = local.name
  bucket_name    = module.storage.bucket_name
  code_locations = var.code_locations
  consumer_role_names = {
    for loc in var.code_locations : loc => element(split("/", var.single_task ? module.iam.stack_role_arn : module.iam.code_location_role_arns[loc]), 1)
  }
  tags = local.tags
}

module "cluster" {
  source = "../ecs-cluster"

  name                = local.name
  vpc_id              = module.network.vpc_id
  namespace           = local.namespace
  fargate_spot_weight = var.use_fargate_spot ? 1 : 0
  tags                = local.tags
}

module "alb" {
  source = "../alb"
  count  = var.enable_alb ? 1 : 0

  name                = local.name
  vpc_id              = module.network.vpc_id
  subnet_ids          = module.network.public_subnet_ids
  security_group_ids  = [module.network.alb_security_group_id]
  certificate_arn     = var.alb_certificate_arn
  oidc                = var.alb_oidc
  target_port         = local.webserver_port
  deletion_protection = var.db_deletion_protection
  tags                = local.tags
}

module "service" {
  source   = "../ecs-service"
  for_each = local.services

  name                  = "${local.name}-${each.key}"
  family                = "${local.name}-${each.key}"
  cluster_name          = module.cluster.cluster_name
  cpu                   = each.value.cpu
  memory                = each.value.memory
  container_definitions = each.value.containers
  execution_role_arn    = module.iam.execution_role_arn
  task_role_arn         = each.value.role_arn
  subnet_ids            = module.network.public_subnet_ids
  security_group_ids    = [module.network.tasks_security_group_id]
  assign_public_ip      = true
  desired_count         = each.value.desired_count
  running               = local.released
  use_fargate_spot      = var.use_fargate_spot

  deployment_minimum_healthy_percent = each.value.min_healthy
  deployment_maximum_percent         = each.value.max_percent

  namespace_id   = each.value.discovery_name == null ? null : module.cluster.namespace_id
  discovery_name = each.value.discovery_name
  autoscaling    = each.value.autoscaling
  load_balancer  = each.value.load_balancer
  tags           = local.tags
}

# The task definition EcsRunLauncher launches, one Fargate task per run (no service of its own); none
# before the first release (no image to run).
module "run_task" {
  source = "../ecs-service"
  count  = local.released ? 1 : 0

  name                  = local.run_family
  family                = local.run_family
  create_service        = false
  cluster_name          = module.cluster.cluster_name
  cpu                   = var.run_cpu
  memory                = var.run_memory
  container_definitions = jsonencode([local.run_container])
  execution_role_arn    = module.iam.execution_role_arn
  task_role_arn         = module.iam.run_role_arn
  tags                  = local.tags
}

moved {
  from = module.run_task
  to   = module.run_task[0]
}

# The released image tag: written by `invoke deploy` after the push (ignore_changes: tofu creates the
# parameter and reads it back, the deploy owns its value); every task definition names this tag.
resource "aws_ssm_parameter" "image_tag" {
  # checkov:skip=CKV2_AWS_34: a public image tag (a git SHA), not a secret; a String keeps it readable in plans
  name           = "/${var.project}/${var.environment}/image-tag"
  description    = "Image tag the ${local.name} tasks run; set by invoke deploy after pushing it."
  type           = "String"
  insecure_value = local.unreleased
  tags           = local.tags

  lifecycle {
    ignore_changes = [insecure_value]
  }
}
