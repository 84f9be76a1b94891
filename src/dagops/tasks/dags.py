"""Tasks: dags."""

from invoke import Collection

ns = Collection("dags")
ALIASES: dict = {}
