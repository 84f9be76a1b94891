data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account   = data.aws_caller_identity.current.account_id
  partition = data.aws_partition.current.partition
  # IAM calls that change a role, its policies or trust, or the OIDC provider.
  iam_write_actions = [
    "iam:Add*", "iam:Attach*", "iam:Create*", "iam:Delete*", "iam:Detach*", "iam:Put*", "iam:Remove*",
    "iam:Tag*", "iam:Untag*", "iam:Update*",
  ]
  github_iam_arns = [
    "arn:${local.partition}:iam::${local.account}:role/${var.role_name}-*",
    "arn:${local.partition}:iam::${local.account}:role/${var.plan_role_name}",
    "arn:${local.partition}:iam::${local.account}:oidc-provider/token.actions.githubusercontent.com",
  ]
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

# One deploy role per GitHub Environment, trusting only that environment's jobs (subject
# repo:<owner>/<name>:environment:<env>); which branches may use an environment is GitHub's deployment
# branch rule of the environment (prod: main only), since AWS cannot read custom OIDC claims.
data "aws_iam_policy_document" "trust" {
  for_each = merge(
    { for env in var.environments : "deploy-${env}" => ["environment:${env}"] },
    { plan = var.plan_subjects },
  )

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
  for_each = toset(var.environments)

  name                 = "${var.role_name}-${each.key}"
  description          = "GitHub Actions of ${var.github_repository}, environment ${each.key}: tofu apply, image push, deploy"
  assume_role_policy   = data.aws_iam_policy_document.trust["deploy-${each.key}"].json
  max_session_duration = 3600
  tags                 = var.tags
}

# What `tofu apply` of a live root, `invoke image.push`, `invoke dags.deploy` and `invoke deploy` need.
# Services whose create calls cannot be scoped by name get their service prefix; IAM and S3, where a
# mistake would reach outside the project, are limited to the project's names.
data "aws_iam_policy_document" "deploy" {
  for_each = toset(var.environments)

  # checkov:skip=CKV_AWS_356: tofu creates VPCs, clusters, databases and log groups whose ARNs do not exist in advance; IAM and S3 are scoped to the project prefix.
  # checkov:skip=CKV_AWS_111: Same: create actions of these services cannot name their resource in advance.
  # checkov:skip=CKV_AWS_109: IAM management is limited to role/user/group ARNs with the project prefix: that is what applying the live roots means.
  # checkov:skip=CKV_AWS_107: Credentials exposure is bounded to the project's own IAM user and secrets (prefix-scoped or created by these roots).
  # checkov:skip=CKV_AWS_108: Data access is bounded to the project's buckets and the state bucket.
  # Only this environment's state (live/<env>/backend.hcl: key = "dagops/<env>/terraform.tfstate").
  statement {
    sid       = "StateList"
    actions   = ["s3:ListBucket"]
    resources = [var.state_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.state_key_prefix}${each.key}/*"]
    }
  }

  statement {
    sid       = "StateObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${var.state_bucket_arn}/${var.state_key_prefix}${each.key}/*"]
  }

  # Names of the environment's resources start with <prefix><env>- (dagops-prod-...).
  statement {
    sid     = "ProjectBuckets"
    actions = ["s3:*"]
    resources = [
      "arn:${local.partition}:s3:::${var.resource_prefix}${each.key}-*",
    ]
  }

  statement {
    sid     = "ProjectIam"
    actions = ["iam:*"]
    resources = [
      "arn:${local.partition}:iam::${local.account}:role/${var.resource_prefix}${each.key}-*",
      "arn:${local.partition}:iam::${local.account}:user/${var.resource_prefix}${each.key}-*",
      "arn:${local.partition}:iam::${local.account}:group/${var.resource_prefix}${each.key}-*",
    ]
  }

  # Secrets of the environment (<prefix><env>/...); RDS creates the database's own secret (rds!...) in
  # the caller's name, which needs create and tag but never a read of its value.
  statement {
    sid     = "EnvironmentSecrets"
    actions = ["secretsmanager:*"]
    resources = [
      "arn:${local.partition}:secretsmanager:*:${local.account}:secret:${var.resource_prefix}${each.key}/*",
    ]
  }

  statement {
    sid       = "RdsManagedSecret"
    actions   = ["secretsmanager:CreateSecret", "secretsmanager:TagResource", "secretsmanager:DescribeSecret"]
    resources = ["arn:${local.partition}:secretsmanager:*:${local.account}:secret:rds!*"]
  }

  # The GitHub roles themselves (every environment's and the plan role) and the OIDC provider are the
  # bootstrap root's: a deploy role can neither widen its own policy nor its trust.
  statement {
    sid       = "NoWriteOnTheGitHubRoles"
    effect    = "Deny"
    actions   = local.iam_write_actions
    resources = local.github_iam_arns
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
      "secretsmanager:GetRandomPassword",
      "secretsmanager:ListSecrets",
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
  for_each = aws_iam_role.deploy

  name   = "deploy"
  role   = each.value.id
  policy = data.aws_iam_policy_document.deploy[each.key].json
}

# Pull requests plan with read-only access against an EMPTY state: unreviewed code can assume this role
# (a pull request may change the workflow), and the state holds the S3 user's secret key, so the role
# may read neither the state nor any secret value (live/README.md "Pull-request plans").
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
  # ReadOnlyAccess allows s3:Get* on every bucket: the state bucket is denied explicitly.
  statement {
    sid       = "NoState"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [var.state_bucket_arn, "${var.state_bucket_arn}/*"]
  }

  statement {
    sid       = "NoSecretValues"
    effect    = "Deny"
    actions   = ["secretsmanager:GetSecretValue", "ssm:GetParameter*"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "plan" {
  name   = "plan"
  role   = aws_iam_role.plan.id
  policy = data.aws_iam_policy_document.plan.json
}
