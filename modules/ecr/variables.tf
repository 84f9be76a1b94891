variable "name" {
  type        = string
  description = "Repository name (for example dagops-dev)."
}

variable "keep_images" {
  type        = number
  description = "How many tagged images to keep; older ones are expired (each deploy pushes one, tagged with the git SHA)."
  default     = 20

  validation {
    condition     = var.keep_images >= 1
    error_message = "keep_images must be at least 1."
  }
}

variable "image_tag_mutability" {
  type        = string
  description = "MUTABLE or IMMUTABLE image tags."
  default     = "MUTABLE"

  validation {
    condition     = contains(["MUTABLE", "IMMUTABLE"], var.image_tag_mutability)
    error_message = "image_tag_mutability must be MUTABLE or IMMUTABLE."
  }
}

variable "force_delete" {
  type        = bool
  description = "Allow destroying the repository while it still holds images (dev only)."
  default     = false
}

variable "tags" {
  type        = map(string)
  description = "Tags added to every resource."
  default     = {}
}
