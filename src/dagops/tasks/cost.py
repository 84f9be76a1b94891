"""Tasks: cost."""

from invoke import Collection

ns = Collection("cost")
ALIASES: dict = {}
