"""Pipelines of location ``main``: every module here is loaded by ``definitions.py``."""
