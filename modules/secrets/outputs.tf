output "user_name" {
  description = "Name of the S3-only IAM user."
  value       = aws_iam_user.s3.name
}

output "aws_access_key_id" {
  description = "Access key id of the S3-only user."
  value       = aws_iam_access_key.s3.id
  sensitive   = true
}

output "aws_secret_access_key" {
  description = "Secret access key of the S3-only user."
  value       = aws_iam_access_key.s3.secret
  sensitive   = true
}

output "aws_credentials_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the key (JSON: aws_access_key_id, aws_secret_access_key)."
  value       = aws_secretsmanager_secret.s3_credentials.arn
}
