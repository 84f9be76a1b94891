output "cluster_name" {
  description = "Name of the cluster, once its capacity providers are attached (services created from it depend on them, and are destroyed before them)."
  value       = aws_ecs_cluster_capacity_providers.this.cluster_name
}

output "cluster_arn" {
  description = "ARN of the cluster."
  value       = aws_ecs_cluster.this.arn
}

output "namespace_id" {
  description = "ID of the Cloud Map namespace."
  value       = aws_service_discovery_private_dns_namespace.this.id
}

output "namespace_name" {
  description = "Name of the Cloud Map namespace."
  value       = aws_service_discovery_private_dns_namespace.this.name
}
