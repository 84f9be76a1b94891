resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_db_parameter_group" "this" {
  # The family is in the name: a major-version upgrade creates the new group before the old one is
  # deleted (create_before_destroy), which a fixed name would make collide.
  name   = "${var.name}-postgres${split(".", var.engine_version)[0]}"
  family = "postgres${split(".", var.engine_version)[0]}"
  tags   = var.tags

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Slow statements are logged; every statement would be too noisy and costly. Connections are not:
  # Dagster's processes connect per operation (NullPool), so each would be a log line (CloudWatch cost).
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_connections"
    value = "0"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# Created here (before the instance exports to it) so it has a retention and goes away with the stack.
resource "aws_cloudwatch_log_group" "postgresql" {
  # checkov:skip=CKV_AWS_158: CloudWatch Logs encrypts at rest by default; a customer-managed KMS key costs $1/month.
  # checkov:skip=CKV_AWS_338: Database logs are for troubleshooting; a year of retention is cost without use.
  name              = "/aws/rds/instance/${var.name}/postgresql"
  retention_in_days = var.log_retention_days
  tags              = var.tags
}

resource "aws_db_instance" "this" {
  # checkov:skip=CKV_AWS_118: Enhanced monitoring adds CloudWatch cost; basic RDS metrics are enough for one small instance.
  # checkov:skip=CKV_AWS_353: Performance Insights is not worth its cost on a db.t4g.micro; turn it on with a larger class.
  # checkov:skip=CKV_AWS_157: Multi-AZ doubles the cost; it is the multi_az variable, off by default.
  # checkov:skip=CKV_AWS_293: Deletion protection is the deletion_protection variable: on in prod, off in dev so it can be torn down.
  # checkov:skip=CKV2_AWS_30: Slow-query logging is on (parameter group); full query and connection logging are too noisy and costly.
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  allocated_storage = var.allocated_storage
  storage_type      = "gp3"
  storage_encrypted = true

  db_name  = var.database_name
  username = var.username
  # RDS generates the password and keeps it (and rotates it) in Secrets Manager.
  manage_master_user_password = true

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = var.security_group_ids
  parameter_group_name   = aws_db_parameter_group.this.name
  publicly_accessible    = false
  multi_az               = var.multi_az

  iam_database_authentication_enabled = true
  enabled_cloudwatch_logs_exports     = ["postgresql"]
  auto_minor_version_upgrade          = true
  copy_tags_to_snapshot               = true
  backup_retention_period             = var.backup_retention_days
  deletion_protection                 = var.deletion_protection
  skip_final_snapshot                 = var.skip_final_snapshot
  final_snapshot_identifier           = var.skip_final_snapshot ? null : "${var.name}-final"
  delete_automated_backups            = !var.retain_backups
  apply_immediately                   = !var.deletion_protection

  tags = var.tags

  depends_on = [aws_cloudwatch_log_group.postgresql]
}
