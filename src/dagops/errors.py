"""Errors a user can cause and fix. Their message is one sentence, shown as is."""


class DagopsError(Exception):
    """A problem the user can act on; the message is the whole story, no traceback needed."""


class ConfigError(DagopsError):
    """A required setting is missing or invalid."""
