# The S3 event path of the sync agents: S3 announces every write or delete of dags/<location>/_manifest.json
# to that location's SQS queue; the location's agent long-polls its queue and syncs at once (the 60 s poll
# stays as the safety net). One queue per location: SQS hands each message to one consumer, and each
# agent may read only its own queue.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  queue_names = { for loc in var.code_locations : loc => "${var.name}-sync-${loc}" }
  queue_arns = {
    for loc, queue in local.queue_names :
    loc => "arn:${data.aws_partition.current.partition}:sqs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:${queue}"
  }
  bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket_name}"
}

resource "aws_sqs_queue" "sync" {
  for_each = local.queue_names

  name                      = each.value
  message_retention_seconds = var.message_retention_seconds
  receive_wait_time_seconds = 20
  sqs_managed_sse_enabled   = true
  tags                      = var.tags
}

data "aws_iam_policy_document" "s3_sends" {
  for_each = local.queue_names

  statement {
    sid       = "BucketSendsManifestEvents"
    actions   = ["sqs:SendMessage"]
    resources = [local.queue_arns[each.key]]
    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [local.bucket_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sqs_queue_policy" "sync" {
  for_each = local.queue_names

  queue_url = aws_sqs_queue.sync[each.key].id
  policy    = data.aws_iam_policy_document.s3_sends[each.key].json
}

resource "aws_s3_bucket_notification" "manifests" {
  count = length(var.code_locations) > 0 ? 1 : 0

  bucket = var.bucket_name

  dynamic "queue" {
    for_each = local.queue_names
    content {
      id            = "sync-${queue.key}"
      queue_arn     = aws_sqs_queue.sync[queue.key].arn
      events        = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
      filter_prefix = "dags/${queue.key}/"
      filter_suffix = "_manifest.json"
    }
  }

  depends_on = [aws_sqs_queue_policy.sync]
}

# Each agent reads and deletes the messages of its own location's queue, nothing else: one inline policy
# per location on that location's consumer role (keyed by location, known at plan time).
data "aws_iam_policy_document" "consume" {
  for_each = local.queue_names

  statement {
    sid       = "ReadOwnSyncQueue"
    actions   = ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"]
    resources = [local.queue_arns[each.key]]
  }
}

resource "aws_iam_role_policy" "consume" {
  for_each = local.queue_names

  name   = "sync-events-${each.key}"
  role   = var.consumer_role_names[each.key]
  policy = data.aws_iam_policy_document.consume[each.key].json
}
