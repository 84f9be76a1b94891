"""Tasks: dev."""

from invoke import Collection

ns = Collection("dev")
ALIASES: dict = {}
