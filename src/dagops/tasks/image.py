"""Tasks: image."""

from invoke import Collection

ns = Collection("image")
ALIASES: dict = {}
