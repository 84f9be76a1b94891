resource "aws_cloudwatch_log_group" "this" {
  # checkov:skip=CKV_AWS_158: CloudWatch Logs encrypts at rest by default; a customer-managed KMS key costs $1/month.
  # checkov:skip=CKV_AWS_338: Retention is the log_retention_days variable; a year of Dagster process logs is cost without use.
  for_each = var.log_groups

  name              = each.value
  retention_in_days = var.retention_days
  tags              = var.tags
}
