data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  provider_arn = (
    var.create_oidc_provider
    ? aws_iam_openid_connect_provider.github[0].arn
    : "arn:${local.partition}:iam::${local.account}:oidc-provider/token.actions.githubusercontent.com"
  )
}

# AWS validates GitHub's certificate itself; the thumbprint is kept for older tooling.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_oidc_provider ? 1 : 0

  url             = "https://token.actions.githubusercontent.com"
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = ["6938fd4d98bab03faadb97b34396831e3780aea1"]
  tags            = var.tags
}

data "aws_iam_policy_document" "trust" {
  for_each = {
    deploy = var.allowed_subjects
    plan   = var.plan_subjects
  }

  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "token.actions.githubusercontent.com:aud"
      values   = ["sts.amazonaws.com"]
    }
    # Only this repository's workflows, and only from the listed refs/environments.
    condition {
      test     = "StringLike"
      variable = "token.actions.githubusercontent.com:sub"
      values   = [for s in each.value : "repo:${var.github_repository}:${s}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = var.role_name
  description          = "GitHub Actions of ${var.github_repository}: tofu plan/apply, image push, deploy"
  assume_role_policy   = data.aws_iam_policy_document.trust["deploy"].json
  max_session_duration = 3600
  tags                 = var.tags
}

# What `tofu apply` of a live root, `invoke image.push`, `invoke dags.deploy` and `invoke deploy` need.
# Services whose create calls cannot be scoped by name get their service prefix; IAM and S3, where a
# mistake would reach outside the project, are limited to the project's names.
data "aws_iam_policy_document" "deploy" {
  # checkov:skip=CKV_AWS_356: tofu creates VPCs, clusters, databases and log groups whose ARNs do not exist in advance; IAM and S3 are scoped to the project prefix.
  # checkov:skip=CKV_AWS_111: Same: create actions of these services cannot name their resource in advance.
  # checkov:skip=CKV_AWS_109: IAM management is limited to role/user/group ARNs with the project prefix: that is what applying the live roots means.
  # checkov:skip=CKV_AWS_107: Credentials exposure is bounded to the project's own IAM user and secrets (prefix-scoped or created by these roots).
  # checkov:skip=CKV_AWS_108: Data access is bounded to the project's buckets and the state bucket.
  statement {
    sid       = "StateBucket"
    actions   = ["s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = [var.state_bucket_arn, "${var.state_bucket_arn}/*"]
  }

  statement {
    sid     = "ProjectBuckets"
    actions = ["s3:*"]
    resources = [
      "arn:${local.partition}:s3:::${var.resource_prefix}*",
    ]
  }

  statement {
    sid     = "ProjectIam"
    actions = ["iam:*"]
    resources = [
      "arn:${local.partition}:iam::${local.account}:role/${var.resource_prefix}*",
      "arn:${local.partition}:iam::${local.account}:user/${var.resource_prefix}*",
      "arn:${local.partition}:iam::${local.account}:group/${var.resource_prefix}*",
    ]
  }

  statement {
    sid       = "ServiceLinkedRoles"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account}:role/aws-service-role/*"]
  }

  statement {
    sid = "ProjectServices"
    actions = [
      "application-autoscaling:*",
      "cloudwatch:DeleteAlarms",
      "cloudwatch:DescribeAlarms",
      "cloudwatch:PutMetricAlarm",
      "ec2:*",
      "ecr:*",
      "ecs:*",
      "elasticloadbalancing:*",
      "logs:*",
      "rds:*",
      "route53:*",
      "secretsmanager:*",
      "servicediscovery:*",
      "sts:GetCallerIdentity",
    ]
    resources = ["*"]
  }

  # The released image tag of each environment (modules/dagster): tofu creates it, `invoke deploy` writes it.
  statement {
    sid       = "ImageTagParameters"
    actions   = ["ssm:*"]
    resources = ["arn:${local.partition}:ssm:*:${local.account}:parameter/${trimsuffix(var.resource_prefix, "-")}/*"]
  }
}

resource "aws_iam_role_policy" "deploy" {
  # checkov:skip=CKV_AWS_290: tofu creates VPCs, clusters, databases and log groups whose ARNs do not exist before; IAM and S3 are scoped to the project prefix.
  # checkov:skip=CKV_AWS_355: Same: create actions of these services cannot name their resource in advance.
  # checkov:skip=CKV_AWS_289: The role manages the project's IAM roles and users (prefix-scoped), which is what applying the live roots means.
  # checkov:skip=CKV_AWS_286: Same: privilege escalation is bounded by the project prefix on IAM resources.
  # checkov:skip=CKV_AWS_287: Same: credentials exposure is bounded to the project's own IAM user.
  # checkov:skip=CKV_AWS_288: Same: data exfiltration is bounded to the project's buckets.
  # checkov:skip=CKV2_AWS_40: Full IAM access is limited to role/user/group ARNs with the project prefix.
  name   = "deploy"
  role   = aws_iam_role.deploy.id
  policy = data.aws_iam_policy_document.deploy.json
}

# Pull requests plan with read-only access: they can read the state and write its lock, nothing else.
resource "aws_iam_role" "plan" {
  name                 = var.plan_role_name
  description          = "GitHub Actions pull requests of ${var.github_repository}: tofu plan"
  assume_role_policy   = data.aws_iam_policy_document.trust["plan"].json
  max_session_duration = 3600
  tags                 = var.tags
}

resource "aws_iam_role_policy_attachment" "plan_read_only" {
  role       = aws_iam_role.plan.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/ReadOnlyAccess"
}

data "aws_iam_policy_document" "plan" {
  statement {
    sid       = "StateRead"
    actions   = ["s3:ListBucket", "s3:GetObject"]
    resources = [var.state_bucket_arn, "${var.state_bucket_arn}/*"]
  }

  # use_lockfile: a plan takes the lock by writing <key>.tflock next to the state.
  statement {
    sid       = "StateLock"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.state_bucket_arn}/*.tflock"]
  }

  # Refreshing the S3-only user's key secret reads its value.
  statement {
    sid       = "ProjectSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = ["arn:${local.partition}:secretsmanager:*:${local.account}:secret:${var.resource_prefix}*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  name   = "plan"
  role   = aws_iam_role.plan.id
  policy = data.aws_iam_policy_document.plan.json
}
