"""Tasks: infra."""

from invoke import Collection

ns = Collection("infra")
ALIASES: dict = {}
