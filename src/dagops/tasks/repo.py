"""Tasks: repo."""

from invoke import Collection

ns = Collection("repo")
ALIASES: dict = {}
