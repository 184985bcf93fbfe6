"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""
from __future__ import annotations


class FerbenchError(Exception):
    """A mistake the user can fix (bad name, bad option, missing data). The message says what and how."""


class UsageError(FerbenchError):
    """Bad command-line input: unknown name, malformed option, unreadable config."""


class DataError(FerbenchError):
    """The data root is missing or not in a layout the dataset plugin understands."""


class PluginError(FerbenchError):
    """A plugin broke its contract (a spec, a dataset's table or pixels, a metric's value, an import
    path); the message names the plugin and what to fix."""
