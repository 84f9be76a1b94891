# Office hours for an environment: EventBridge Scheduler stops its ECS services and its RDS instance every
# evening and starts them on the active days. AWS does the switching; nothing runs on a laptop.
#
# - Plain services: universal target ecs:updateService (desiredCount 0, then the active count).
# - Autoscaled services: Application Auto Scaling scheduled actions set min/max to 0 and back, so target
#   tracking does not scale a stopped service up again (and needs no role: the service-linked one acts).
# - The database: universal targets rds:startDBInstance (database_lead_minutes before the services) and
#   rds:stopDBInstance. The stop fires every day, not only on active days: AWS starts an instance that has
#   been stopped for 7 days by itself, and the next evening's stop catches it (and any manual resume).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  start_minutes    = tonumber(split(":", var.start)[0]) * 60 + tonumber(split(":", var.start)[1])
  db_start_minutes = local.start_minutes - var.database_lead_minutes
  stop_minutes     = tonumber(split(":", var.stop)[0]) * 60 + tonumber(split(":", var.stop)[1])
  days             = join(",", var.days)

  # EventBridge Scheduler cron: minutes hours day-of-month month day-of-week year.
  start_cron    = "cron(${local.start_minutes % 60} ${floor(local.start_minutes / 60)} ? * ${local.days} *)"
  db_start_cron = "cron(${local.db_start_minutes % 60} ${floor(local.db_start_minutes / 60)} ? * ${local.days} *)"
  stop_cron     = "cron(${local.stop_minutes % 60} ${floor(local.stop_minutes / 60)} * * ? *)"

  service_arns = {
    for name in concat(keys(var.services), keys(var.autoscaled_services)) :
    name => "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${var.cluster_name}/${name}"
  }
  db_arn = var.db_instance_identifier == null ? null : "arn:${local.partition}:rds:${local.region}:${local.account_id}:db:${var.db_instance_identifier}"

  # One schedule per (service, switch): name => what it does.
  service_switches = merge(
    { for name, count in var.services : "${name}-start" => { service = name, count = count, expression = local.start_cron } },
    { for name, count in var.services : "${name}-stop" => { service = name, count = 0, expression = local.stop_cron } },
  )
  database_switches = var.db_instance_identifier == null ? {} : {
    "database-start" = { action = "startDBInstance", expression = local.db_start_cron }
    "database-stop"  = { action = "stopDBInstance", expression = local.stop_cron }
  }
  scaling_switches = merge(
    { for name, s in var.autoscaled_services : "${name}-start" => { service = name, min = s.min_count, max = s.max_count, expression = local.start_cron } },
    { for name, s in var.autoscaled_services : "${name}-stop" => { service = name, min = 0, max = 0, expression = local.stop_cron } },
  )
  uses_role = var.enabled && (length(var.services) > 0 || var.db_instance_identifier != null)
}

resource "aws_scheduler_schedule_group" "this" {
  count = var.enabled ? 1 : 0

  name = "${var.name}-office-hours"
  tags = var.tags
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    # Only this account's schedules of this group may assume the role (confused-deputy guard).
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${var.name}-office-hours/*"]
    }
  }
}

# Exactly the switching actions, on exactly the switched resources; UpdateService changes only the desired
# count (no task definition or role), so no iam:PassRole is needed.
data "aws_iam_policy_document" "switch" {
  dynamic "statement" {
    for_each = length(var.services) > 0 ? [1] : []
    content {
      sid       = "ScaleServices"
      actions   = ["ecs:UpdateService"]
      resources = [for name in keys(var.services) : local.service_arns[name]]
    }
  }
  dynamic "statement" {
    for_each = var.db_instance_identifier == null ? [] : [1]
    content {
      sid       = "StartStopDatabase"
      actions   = ["rds:StartDBInstance", "rds:StopDBInstance"]
      resources = [local.db_arn]
    }
  }
}

resource "aws_iam_role" "this" {
  count = local.uses_role ? 1 : 0

  name               = "${var.name}-office-hours"
  description        = "EventBridge Scheduler: office hours of ${var.name} (ECS desired counts, RDS start/stop)"
  assume_role_policy = data.aws_iam_policy_document.trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "this" {
  count = local.uses_role ? 1 : 0

  name   = "office-hours"
  role   = aws_iam_role.this[0].id
  policy = data.aws_iam_policy_document.switch.json
}

resource "aws_scheduler_schedule" "service" {
  # checkov:skip=CKV_AWS_297: the input holds only resource names and counts; the AWS-owned key suffices.
  for_each = var.enabled ? local.service_switches : {}

  name                         = each.key
  group_name                   = aws_scheduler_schedule_group.this[0].name
  description                  = "${each.value.service}: desired count ${each.value.count}"
  schedule_expression          = each.value.expression
  schedule_expression_timezone = var.time_zone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = "arn:aws:scheduler:::aws-sdk:ecs:updateService"
    role_arn = aws_iam_role.this[0].arn
    input = jsonencode({
      cluster      = var.cluster_name
      service      = each.value.service
      desiredCount = each.value.count
    })
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 5
    }
  }
}

resource "aws_scheduler_schedule" "database" {
  # checkov:skip=CKV_AWS_297: the input holds only resource names and counts; the AWS-owned key suffices.
  for_each = var.enabled ? local.database_switches : {}

  name                         = each.key
  group_name                   = aws_scheduler_schedule_group.this[0].name
  description                  = "${var.db_instance_identifier}: ${each.value.action}"
  schedule_expression          = each.value.expression
  schedule_expression_timezone = var.time_zone

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = "arn:aws:scheduler:::aws-sdk:rds:${each.value.action}"
    role_arn = aws_iam_role.this[0].arn
    input    = jsonencode({ DbInstanceIdentifier = var.db_instance_identifier })
    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 5
    }
  }
}

resource "aws_appautoscaling_scheduled_action" "service" {
  for_each = var.enabled ? local.scaling_switches : {}

  name               = "${var.name}-${each.key}"
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${each.value.service}"
  scalable_dimension = "ecs:service:DesiredCount"
  schedule           = each.value.expression
  timezone           = var.time_zone

  scalable_target_action {
    min_capacity = each.value.min
    max_capacity = each.value.max
  }
}
