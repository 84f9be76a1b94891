output "service_name" {
  description = "Name of the ECS service, or null when only a task definition was registered."
  value       = var.create_service ? var.name : null
}

output "service_arn" {
  description = "ARN of the ECS service, or null."
  value       = local.service_arn
}

output "task_definition_family" {
  description = "Task definition family (deploys register new revisions in it)."
  value       = aws_ecs_task_definition.this.family
}

output "task_definition_arn" {
  description = "ARN of the revision tofu registered (deploys register newer ones)."
  value       = aws_ecs_task_definition.this.arn
}

output "discovery_name" {
  description = "Cloud Map service name, or null without service discovery."
  value       = one(aws_service_discovery_service.this[*].name)
}
