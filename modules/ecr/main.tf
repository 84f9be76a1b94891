resource "aws_ecr_repository" "this" {
  # checkov:skip=CKV_AWS_51: Tags are git SHAs and never reused for different content; mutability lets a failed deploy re-push the same SHA. Set image_tag_mutability = "IMMUTABLE" to forbid it.
  # checkov:skip=CKV_AWS_136: AES256 (the default) encrypts at rest at no cost; a customer-managed KMS key costs $1/month.
  name                 = var.name
  image_tag_mutability = var.image_tag_mutability
  force_delete         = var.force_delete

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "AES256"
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Drop untagged images (layers of superseded builds) after a day"
        selection = {
          tagStatus   = "untagged"
          countType   = "sinceImagePushed"
          countUnit   = "days"
          countNumber = 1
        }
        action = { type = "expire" }
      },
      {
        rulePriority = 2
        description  = "Keep the last ${var.keep_images} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.keep_images
        }
        action = { type = "expire" }
      },
    ]
  })
}
