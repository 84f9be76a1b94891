# An IAM user with S3-only access to the environment's bucket, for tools outside AWS (a laptop's
# `dags.deploy`, a notebook reading assets). Its key lives in Secrets Manager; CI uses OIDC instead.

data "aws_iam_policy_document" "s3_only" {
  statement {
    sid       = "ListBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.bucket_arn]
  }

  statement {
    sid       = "ReadObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.bucket_arn}/*"]
  }

  statement {
    sid       = "WriteObjects"
    actions   = ["s3:PutObject", "s3:DeleteObject"]
    resources = [for p in var.writable_prefixes : "${var.bucket_arn}/${p}*"]
  }
}

resource "aws_iam_group" "s3" {
  name = "${var.name}-s3"
}

resource "aws_iam_group_policy" "s3" {
  name   = "s3-only"
  group  = aws_iam_group.s3.name
  policy = data.aws_iam_policy_document.s3_only.json
}

resource "aws_iam_user" "s3" {
  # checkov:skip=CKV_AWS_273: A long-lived key is what tools outside AWS need (the original design asks for it); CI uses OIDC roles.
  name = "${var.name}-s3"
  tags = var.tags
}

resource "aws_iam_user_group_membership" "s3" {
  user   = aws_iam_user.s3.name
  groups = [aws_iam_group.s3.name]
}

# Rotate with `tofu apply -replace=module.<...>.aws_iam_access_key.s3`.
resource "aws_iam_access_key" "s3" {
  user = aws_iam_user.s3.name
}

resource "aws_secretsmanager_secret" "s3_credentials" {
  # checkov:skip=CKV_AWS_149: The default aws/secretsmanager key encrypts at rest at no cost; a customer-managed key costs $1/month.
  # checkov:skip=CKV2_AWS_57: An IAM access key cannot be rotated by a Secrets Manager Lambda without extra infrastructure; rotate with tofu -replace.
  name                    = "${var.name}/s3-credentials"
  description             = "Access key of the S3-only IAM user ${aws_iam_user.s3.name}"
  recovery_window_in_days = var.recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "s3_credentials" {
  secret_id = aws_secretsmanager_secret.s3_credentials.id
  secret_string = jsonencode({
    aws_access_key_id     = aws_iam_access_key.s3.id
    aws_secret_access_key = aws_iam_access_key.s3.secret
  })
}
