resource "aws_ecs_cluster" "this" {
  # checkov:skip=CKV_AWS_65: Container Insights is the container_insights variable; its metrics cost more than a small stack's compute.
  name = var.name

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }

  tags = var.tags
}

# The default strategy of tasks started without one. Not runs: dagster-aws would copy the daemon's launch
# type, so the run launcher is given the environment's strategy (DAGOPS_RUN_CAPACITY_PROVIDER) instead.
resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = var.fargate_spot_weight == 1 ? "FARGATE_SPOT" : "FARGATE"
    weight            = 1
  }
}

resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = var.namespace
  description = "Dagster services of ${var.name}"
  vpc         = var.vpc_id
  tags        = var.tags
}
