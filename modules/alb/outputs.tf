output "dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "url" {
  description = "HTTPS URL of the web UI (point a DNS name matching the certificate at dns_name)."
  value       = "https://${aws_lb.this.dns_name}"
}

output "target_group_arn" {
  description = "Target group the webserver service registers with, once a listener forwards to it (ECS refuses a target group without a load balancer)."
  value       = aws_lb_target_group.webserver.arn
  depends_on  = [aws_lb_listener.https]
}
