"""Tasks: deploy."""

from invoke import Collection

ns = Collection("deploy")
ALIASES: dict = {}
