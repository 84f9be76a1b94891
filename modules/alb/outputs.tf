output "dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "url" {
  description = "HTTPS URL of the web UI (point a DNS name matching the certificate at dns_name)."
  value       = "https://${aws_lb.this.dns_name}"
}

output "target_group_arn" {
  description = "Target group the webserver service registers with."
  value       = aws_lb_target_group.webserver.arn
}
