data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394: Only the first az_count zones by name are used (a, b, ...); AWS names a new zone with the next letter, so it never enters that set. No `state` filter for the same reason: an impaired zone must not move the subnets.
  # Local Zones and Wavelength Zones are opt-in and cannot hold an RDS subnet group or an ALB.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }
}

locals {
  azs = slice(data.aws_availability_zones.available.names, 0, var.az_count)
  # Public subnets take the first /(prefix+4) blocks, private (database only) the next ones.
  public_cidrs  = [for i in range(var.az_count) : cidrsubnet(var.vpc_cidr, 4, i)]
  private_cidrs = [for i in range(var.az_count) : cidrsubnet(var.vpc_cidr, 4, i + 8)]
}

resource "aws_vpc" "this" {
  # checkov:skip=CKV2_AWS_11: VPC flow logs cost more than the rest of a small stack; enable them per account if needed.
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # Cloud Map private DNS needs both.

  tags = merge(var.tags, { Name = var.name })
}

# Lock down the default security group so nothing uses it by accident.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-default-unused" })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = var.name })
}

# Tasks run in public subnets with public IPs: a NAT gateway alone would cost more than the whole stack.
# Subnets do not hand out public IPs by default; the ECS services ask for one explicitly.
resource "aws_subnet" "public" {
  count = var.az_count

  vpc_id                  = aws_vpc.this.id
  cidr_block              = local.public_cidrs[count.index]
  availability_zone       = local.azs[count.index]
  map_public_ip_on_launch = false

  tags = merge(var.tags, { Name = "${var.name}-public-${local.azs[count.index]}", Tier = "public" })
}

# Private subnets have no route out: only the database lives there.
resource "aws_subnet" "private" {
  count = var.az_count

  vpc_id            = aws_vpc.this.id
  cidr_block        = local.private_cidrs[count.index]
  availability_zone = local.azs[count.index]

  tags = merge(var.tags, { Name = "${var.name}-private-${local.azs[count.index]}", Tier = "private" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = var.az_count

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_route_table" "private" {
  vpc_id = aws_vpc.this.id
  tags   = merge(var.tags, { Name = "${var.name}-private" })
}

resource "aws_route_table_association" "private" {
  count = var.az_count

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private.id
}

# ---------------------------------------------------------------------------------------------------------
# Security groups: the fence. Tasks talk to each other (gRPC), the database only hears the tasks, and the
# web UI only hears the allow-list (or the ALB).

resource "aws_security_group" "tasks" {
  # checkov:skip=CKV2_AWS_5: Attached by the caller (ECS services and runs, RDS, the ALB) in other modules, which a per-module scan cannot see.
  name        = "${var.name}-tasks"
  description = "Dagster ECS tasks: webserver, daemon, code servers and runs"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-tasks" })
}

resource "aws_vpc_security_group_ingress_rule" "tasks_grpc" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "gRPC code servers, from the other Dagster tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.code_server_port_range.from
  to_port                      = var.code_server_port_range.to
}

resource "aws_vpc_security_group_ingress_rule" "tasks_webserver_internal" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Webserver GraphQL, from the code-location sync agents (reload after a swap)"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.webserver_port
  to_port                      = var.webserver_port
}

resource "aws_vpc_security_group_ingress_rule" "tasks_ui_direct" {
  for_each = var.enable_alb ? toset([]) : toset(var.ui_allowed_cidrs)

  security_group_id = aws_security_group.tasks.id
  description       = "Dagster web UI from an allow-listed network"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.webserver_port
  to_port           = var.webserver_port
}

resource "aws_vpc_security_group_ingress_rule" "tasks_ui_from_alb" {
  count = var.enable_alb ? 1 : 0

  security_group_id            = aws_security_group.tasks.id
  description                  = "Dagster web UI from the ALB"
  referenced_security_group_id = aws_security_group.alb[0].id
  ip_protocol                  = "tcp"
  from_port                    = var.webserver_port
  to_port                      = var.webserver_port
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  # checkov:skip=CKV_AWS_382: Without a NAT gateway or VPC endpoints, tasks reach ECR, S3, Secrets Manager and CloudWatch over the internet (HTTPS only).
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs (ECR, S3, Secrets Manager, CloudWatch) and package indexes"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "tasks_internal" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "Other Dagster tasks (gRPC, webserver)"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = min(var.webserver_port, var.code_server_port_range.from)
  to_port                      = max(var.webserver_port, var.code_server_port_range.to)
}

resource "aws_vpc_security_group_egress_rule" "tasks_database" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "PostgreSQL"
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_egress_rule" "tasks_dns" {
  security_group_id = aws_security_group.tasks.id
  description       = "DNS to the VPC resolver (Cloud Map names)"
  cidr_ipv4         = var.vpc_cidr
  ip_protocol       = "udp"
  from_port         = 53
  to_port           = 53
}

resource "aws_security_group" "database" {
  # checkov:skip=CKV2_AWS_5: Attached by the caller (ECS services and runs, RDS, the ALB) in other modules, which a per-module scan cannot see.
  name        = "${var.name}-database"
  description = "Dagster PostgreSQL: reachable only from the Dagster tasks"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-database" })
}

resource "aws_vpc_security_group_ingress_rule" "database_from_tasks" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the Dagster tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

# Runs execute user code: their own group, egress only, so a run reaches AWS APIs and the database but
# neither the webserver's GraphQL nor any code server (whose ingress admits only the tasks group). DNS to
# the VPC resolver needs no rule: security groups do not filter traffic to the Amazon-provided DNS server.
resource "aws_security_group" "runs" {
  # checkov:skip=CKV2_AWS_5: Attached by the run launcher (RunTask networkConfiguration), which a per-module scan cannot see.
  name        = "${var.name}-runs"
  description = "Dagster run tasks: egress to AWS APIs and the database only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-runs" })
}

resource "aws_vpc_security_group_egress_rule" "runs_https" {
  # checkov:skip=CKV_AWS_382: Without a NAT gateway or VPC endpoints, runs reach ECR, S3, Secrets Manager and CloudWatch over the internet (HTTPS only).
  security_group_id = aws_security_group.runs.id
  description       = "HTTPS to AWS APIs (ECR, S3, CloudWatch, RDS IAM) and package indexes"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "runs_database" {
  security_group_id            = aws_security_group.runs.id
  description                  = "PostgreSQL"
  referenced_security_group_id = aws_security_group.database.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_ingress_rule" "database_from_runs" {
  security_group_id            = aws_security_group.database.id
  description                  = "PostgreSQL from the Dagster run tasks"
  referenced_security_group_id = aws_security_group.runs.id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_security_group" "alb" {
  # checkov:skip=CKV2_AWS_5: Attached by the caller (ECS services and runs, RDS, the ALB) in other modules, which a per-module scan cannot see.
  count = var.enable_alb ? 1 : 0

  name        = "${var.name}-alb"
  description = "Dagster web UI load balancer"
  vpc_id      = aws_vpc.this.id
  tags        = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each = var.enable_alb ? toset(var.ui_allowed_cidrs) : toset([])

  security_group_id = aws_security_group.alb[0].id
  description       = "HTTPS from an allow-listed network"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http_redirect" {
  for_each = var.enable_alb ? toset(var.ui_allowed_cidrs) : toset([])

  security_group_id = aws_security_group.alb[0].id
  description       = "HTTP from an allow-listed network (redirected to HTTPS)"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_identity_provider" {
  # checkov:skip=CKV_AWS_382: The ALB calls the OIDC provider's token and user-info endpoints, public HTTPS addresses that are not known in advance.
  count = var.enable_alb && var.alb_oidc_enabled ? 1 : 0

  security_group_id = aws_security_group.alb[0].id
  description       = "HTTPS to the OIDC identity provider (token and user-info endpoints)"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "alb_to_tasks" {
  count = var.enable_alb ? 1 : 0

  security_group_id            = aws_security_group.alb[0].id
  description                  = "Webserver tasks"
  referenced_security_group_id = aws_security_group.tasks.id
  ip_protocol                  = "tcp"
  from_port                    = var.webserver_port
  to_port                      = var.webserver_port
}
