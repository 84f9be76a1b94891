"""Fixtures of the AWS task tests; they live in aws_stack.py, a module name no other test folder uses."""

from aws_stack import put_events, stack

__all__ = ["put_events", "stack"]
