data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  cluster_arn   = "arn:${local.partition}:ecs:${local.region}:${local.account}:cluster/${var.cluster_name}"
  run_family    = "arn:${local.partition}:ecs:${local.region}:${local.account}:task-definition/${var.run_task_family}:*"
  cluster_tasks = "arn:${local.partition}:ecs:${local.region}:${local.account}:task/${var.cluster_name}/*"
  logs_prefix   = "logs/${var.environment}/"

  # IAM role names stop at 64 characters: long names keep a readable head and a hash of the whole.
  location_role_names = {
    for loc in var.code_locations : loc => (
      length("${var.name}-code-${loc}") <= 64
      ? "${var.name}-code-${loc}"
      : "${substr("${var.name}-code-${loc}", 0, 55)}-${substr(sha1(loc), 0, 8)}"
    )
  }
  location_run_role_names = {
    for loc in var.code_locations : loc => (
      length("${var.name}-run-${loc}") <= 64
      ? "${var.name}-run-${loc}"
      : "${substr("${var.name}-run-${loc}", 0, 55)}-${substr(sha1(loc), 0, 8)}"
    )
  }
}

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

# ---------------------------------------------------------------------------------------------------------
# Execution role: what ECS itself needs to start a container (pull the image, write logs). No secret: no
# container gets the database master password (Dagster logs in with IAM tokens, see modules/database).

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions.
  }

  statement {
    sid       = "EcrPull"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [var.ecr_repository_arn]
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for arn in var.log_group_arns : "${arn}:*"]
  }
}

resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  description        = "ECS task execution role: image pull, logs"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# ---------------------------------------------------------------------------------------------------------
# Control role: webserver and daemon. Compute logs in S3, and what EcsRunLauncher needs to start, watch
# and stop one Fargate task per run.

# Every task role whose processes use Dagster's storage (webserver, daemon, stack, runs) may log in to the
# database as Dagster's own user, and as no other (an RDS IAM token per new connection).
data "aws_iam_policy_document" "database_login" {
  statement {
    sid       = "DatabaseLogin"
    actions   = ["rds-db:connect"]
    resources = [var.db_user_arn]
  }
}

data "aws_iam_policy_document" "control" {
  source_policy_documents = [data.aws_iam_policy_document.database_login.json]

  statement {
    sid       = "ListComputeLogs"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.logs_prefix}*"]
    }
  }

  statement {
    sid       = "ComputeLogs"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${var.bucket_arn}/${local.logs_prefix}*"]
  }

  statement {
    sid       = "LaunchRuns"
    actions   = ["ecs:RunTask"]
    resources = [local.run_family]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }

  statement {
    sid       = "WatchAndStopRuns"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.cluster_tasks]
  }

  statement {
    sid       = "TagRunsAtLaunch"
    actions   = ["ecs:TagResource"]
    resources = [local.cluster_tasks]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    # These ECS and EC2 actions have no resource-level permissions: "*" is the only valid resource.
    sid = "TaskDefinitionsAndNetwork"
    actions = [
      "ecs:DescribeTaskDefinition",
      "ecs:RegisterTaskDefinition",
      "ec2:DescribeNetworkInterfaces",
    ]
    resources = ["*"]
  }

  # EcsRunLauncher quotes the last lines of a failed run's worker log in the run-failure message.
  statement {
    sid       = "ReadRunLogs"
    actions   = ["logs:GetLogEvents"]
    resources = ["${var.run_log_group_arn}:log-stream:*"]
  }

  statement {
    sid       = "PassRunRoles"
    actions   = ["iam:PassRole"]
    resources = concat([aws_iam_role.execution.arn, aws_iam_role.run.arn], [for r in aws_iam_role.location_run : r.arn])
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "control" {
  name               = "${var.name}-control"
  description        = "Dagster webserver and daemon: compute logs and EcsRunLauncher"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "control" {
  # checkov:skip=CKV_AWS_290: RegisterTaskDefinition and DescribeNetworkInterfaces accept no resource but "*"; RunTask, StopTask and PassRole are scoped.
  # checkov:skip=CKV_AWS_355: Same: these actions have no resource-level permissions in IAM.
  name   = "control"
  role   = aws_iam_role.control.id
  policy = data.aws_iam_policy_document.control.json
}

# ---------------------------------------------------------------------------------------------------------
# Run roles: one Fargate task per run. Each location gets `run-<loc>`, limited to its own prefixes; its
# ARN reaches the location's code server as DAGOPS_RUN_TASK_ROLE_ARN, which the sync agent passes as the
# code server's container context (`{"ecs": {"task_role_arn": ...}}`), and the launcher
# (dagops.runtime.ecs_run_launcher) starts that location's runs with it as the RunTask taskRoleArn override (the
# control role may pass it). The shared `run` role is only the run task definition's default: a run
# started without its location's role reaches no location's code or assets, only the compute logs.

data "aws_iam_policy_document" "run" {
  source_policy_documents = [data.aws_iam_policy_document.database_login.json]

  statement {
    sid       = "List"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.logs_prefix}*"]
    }
  }

  statement {
    sid       = "ComputeLogs"
    actions   = ["s3:PutObject"]
    resources = ["${var.bucket_arn}/${local.logs_prefix}*"]
  }
}

resource "aws_iam_role" "run" {
  name               = "${var.name}-run"
  description        = "Default role of the run task definition: compute logs only, no location data"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "run" {
  name   = "run"
  role   = aws_iam_role.run.id
  policy = data.aws_iam_policy_document.run.json
}

resource "aws_iam_role" "location_run" {
  for_each = toset(var.code_locations)

  name               = local.location_run_role_names[each.key]
  description        = "Dagster runs of code location ${each.key}"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = merge(var.tags, { CodeLocation = each.key })
}

# Same scope as the code location's own role (its code, its assets, the compute logs), plus the database.
data "aws_iam_policy_document" "location_run" {
  for_each = toset(var.code_locations)

  source_policy_documents = [
    data.aws_iam_policy_document.code_location[each.key].json,
    data.aws_iam_policy_document.database_login.json,
  ]
}

resource "aws_iam_role_policy" "location_run" {
  for_each = toset(var.code_locations)

  name   = "run"
  role   = aws_iam_role.location_run[each.key].id
  policy = data.aws_iam_policy_document.location_run[each.key].json
}

# ---------------------------------------------------------------------------------------------------------
# One role per code location: its own code (read), its own assets (read/write), compute logs (write).

data "aws_iam_policy_document" "code_location" {
  for_each = toset(var.code_locations)

  statement {
    sid       = "List"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["dags/${each.key}/*", "assets/${each.key}/*"]
    }
  }

  statement {
    sid       = "ReadCode"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/dags/${each.key}/*"]
  }

  statement {
    sid       = "Assets"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.bucket_arn}/assets/${each.key}/*"]
  }

  statement {
    sid       = "ComputeLogs"
    actions   = ["s3:PutObject"]
    resources = ["${var.bucket_arn}/${local.logs_prefix}*"]
  }
}

resource "aws_iam_role" "code_location" {
  for_each = toset(var.code_locations)

  name               = local.location_role_names[each.key]
  description        = "Dagster code location ${each.key}: code server and sync agent"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = merge(var.tags, { CodeLocation = each.key })
}

resource "aws_iam_role_policy" "code_location" {
  for_each = toset(var.code_locations)

  name   = "code-location"
  role   = aws_iam_role.code_location[each.key].id
  policy = data.aws_iam_policy_document.code_location[each.key].json
}

# ---------------------------------------------------------------------------------------------------------
# The one-task stack (dev): webserver, daemon and every code location share one task, so one role.
# ECS task roles are per task, not per container, so IAM cannot keep one location's code server out of
# another's prefixes here: in this shape, location isolation of the code servers is enforced in code
# only (dagops.runtime.resources.LocationS3). Runs are still separate tasks with their location's `run-<loc>`
# role, so runs are isolated by IAM in dev too; prod (separate services) isolates code servers by IAM.
# Statement ids must be unique across the merged documents.

data "aws_iam_policy_document" "stack" {
  count = var.single_task ? 1 : 0

  source_policy_documents = [data.aws_iam_policy_document.control.json]

  statement {
    sid       = "StackList"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = flatten([for loc in var.code_locations : ["dags/${loc}/*", "assets/${loc}/*"]])
    }
  }

  statement {
    sid       = "StackReadCode"
    actions   = ["s3:GetObject"]
    resources = [for loc in var.code_locations : "${var.bucket_arn}/dags/${loc}/*"]
  }

  statement {
    sid       = "StackAssets"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [for loc in var.code_locations : "${var.bucket_arn}/assets/${loc}/*"]
  }
}

resource "aws_iam_role" "stack" {
  count = var.single_task ? 1 : 0

  name               = "${var.name}-stack"
  description        = "Dagster one-task stack: webserver, daemon and code locations"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "stack" {
  # checkov:skip=CKV_AWS_290: RegisterTaskDefinition and DescribeNetworkInterfaces accept no resource but "*"; RunTask, StopTask and PassRole are scoped.
  # checkov:skip=CKV_AWS_355: Same: these actions have no resource-level permissions in IAM.
  count = var.single_task ? 1 : 0

  name   = "stack"
  role   = aws_iam_role.stack[0].id
  policy = data.aws_iam_policy_document.stack[0].json
}

# ---------------------------------------------------------------------------------------------------------
# Database setup: a one-off task (`invoke deploy.db-setup`, the run task definition with this role and the
# command `db-setup`) that reads the RDS-managed master secret at that moment and creates Dagster's own
# database role. The only role that can read the master password; no service runs with it.

data "aws_iam_policy_document" "db_setup" {
  statement {
    sid       = "DatabaseMasterSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.db_secret_arn]
  }
}

resource "aws_iam_role" "db_setup" {
  name               = "${var.name}-db-setup"
  description        = "One-off database setup task: reads the master secret, creates Dagster's database role"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "db_setup" {
  name   = "db-setup"
  role   = aws_iam_role.db_setup.id
  policy = data.aws_iam_policy_document.db_setup.json
}
