variable "name" {
  type        = string
  description = "Name of the ECS service (and of its Cloud Map service unless discovery_name says otherwise)."
}

variable "family" {
  type        = string
  description = "Task definition family."
}

variable "create_service" {
  type        = bool
  description = "Create an ECS service; false registers only the task definition (the run task that EcsRunLauncher launches)."
  default     = true
}

variable "cluster_name" {
  type        = string
  description = "Name of the ECS cluster."
}

variable "cpu" {
  type        = number
  description = "Task CPU units (256 = 0.25 vCPU)."
  default     = 256

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.cpu)
    error_message = "cpu must be a Fargate size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "memory" {
  type        = number
  description = "Task memory in MiB; must be a size Fargate accepts for the chosen cpu."
  default     = 512

  validation {
    condition = contains(lookup({
      256   = [512, 1024, 2048]
      512   = [for gb in range(1, 5) : gb * 1024]
      1024  = [for gb in range(2, 9) : gb * 1024]
      2048  = [for gb in range(4, 17) : gb * 1024]
      4096  = [for gb in range(8, 31) : gb * 1024]
      8192  = [for gb in range(16, 61, 4) : gb * 1024]
      16384 = [for gb in range(32, 121, 8) : gb * 1024]
    }, var.cpu, []), var.memory)
    error_message = "memory does not fit cpu on Fargate: 256 takes 512-2048; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384; 4096 takes 8192-30720 (steps of 1024); 8192 takes 16384-61440 (steps of 4096); 16384 takes 32768-122880 (steps of 8192)."
  }
}

variable "container_definitions" {
  type        = string
  description = "Container definitions: a JSON list in the ECS container-definition format."

  validation {
    condition     = can(length(jsondecode(var.container_definitions)))
    error_message = "container_definitions must be a JSON list of container definitions."
  }
}

variable "execution_role_arn" {
  type        = string
  description = "ECS task execution role (image pull, logs, secrets)."
}

variable "task_role_arn" {
  type        = string
  description = "Role the containers run as."
}

variable "cpu_architecture" {
  type        = string
  description = "ARM64 (Graviton, cheaper) or X86_64."
  default     = "ARM64"

  validation {
    condition     = contains(["ARM64", "X86_64"], var.cpu_architecture)
    error_message = "cpu_architecture must be ARM64 or X86_64."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Subnets of the tasks."
  default     = []
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups of the tasks."
  default     = []
}

variable "assign_public_ip" {
  type        = bool
  description = "Give tasks a public IP (needed in public subnets without a NAT gateway)."
  default     = true
}

variable "desired_count" {
  type        = number
  description = "Number of tasks (the initial number when autoscaling is on)."
  default     = 1

  validation {
    condition     = var.desired_count >= 0
    error_message = "desired_count cannot be negative."
  }
}

variable "running" {
  type        = bool
  description = "Run tasks at all: false keeps the service at zero tasks (no image released yet)."
  default     = true
}

variable "use_fargate_spot" {
  type        = bool
  description = "Run on FARGATE_SPOT (about 70% cheaper, may be interrupted) instead of FARGATE."
  default     = false
}

variable "deployment_minimum_healthy_percent" {
  type        = number
  description = "Lower bound of running tasks during a deployment (0 lets a singleton stop before its successor starts)."
  default     = 100
}

variable "deployment_maximum_percent" {
  type        = number
  description = "Upper bound of running tasks during a deployment (100 forbids two copies of a singleton at once)."
  default     = 200
}

variable "namespace_id" {
  type        = string
  description = "Cloud Map namespace to register the tasks in (required with discovery_name)."
  default     = null
}

variable "discovery_name" {
  type        = string
  description = "Cloud Map service name (a DNS label); the tasks are found as <discovery_name>.<namespace>; null: no service discovery."
  default     = null

  validation {
    condition     = var.discovery_name == null || can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", coalesce(var.discovery_name, "x")))
    error_message = "discovery_name must be a DNS label: lowercase letters, digits and '-' (convert '_' to '-')."
  }
}

variable "autoscaling" {
  type = object({
    min_count         = number
    max_count         = number
    cpu_target        = number
    memory_target     = number
    scale_in_cooldown = optional(number, 300)
  })
  description = "Target-tracking autoscaling on average CPU and memory (null: a fixed desired_count; never set it for the daemon)."
  default     = null

  validation {
    condition     = var.autoscaling == null || try(var.autoscaling.min_count >= 1 && var.autoscaling.max_count >= var.autoscaling.min_count, false)
    error_message = "autoscaling needs 1 <= min_count <= max_count."
  }
}

variable "load_balancer" {
  type = object({
    target_group_arn = string
    container_name   = string
    container_port   = number
  })
  description = "Register the tasks with this ALB target group (null: no load balancer)."
  default     = null
}

variable "health_check_grace_period_seconds" {
  type        = number
  description = "Seconds the ALB health check is ignored after a task starts (only with a load balancer)."
  default     = 120
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
