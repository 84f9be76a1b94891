output "queue_urls" {
  description = "Location => URL of its SQS queue of manifest events (the agent's DAGOPS_SYNC_QUEUE_URL)."
  value       = { for loc, queue in aws_sqs_queue.sync : loc => queue.url }
}

output "queue_arns" {
  description = "Location => ARN of its queue."
  value       = local.queue_arns
}
