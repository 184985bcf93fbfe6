"""User-facing errors: the CLI prints them as one line and exits non-zero, without a traceback."""
from __future__ import annotations

import difflib
import os
from typing import Iterable

#: Set to 1 (or pass ``--debug``) to see the full traceback behind a one-line error.
DEBUG_ENV = "FERBENCH_DEBUG"


class FerbenchError(Exception):
    """A mistake the user can fix (bad name, bad option, missing data). The message says what and how."""


class UsageError(FerbenchError):
    """Bad command-line input: unknown name, malformed option, unreadable config."""


class DataError(FerbenchError):
    """The data root is missing or not in a layout the dataset plugin understands."""


def debug_enabled() -> bool:
    """Whether ``--debug`` or ``FERBENCH_DEBUG`` asks for full tracebacks."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the candidate closest to a mistyped ``name``, or ``""``."""
    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class PluginError(FerbenchError):
    """A plugin broke its contract (a spec, a dataset's table or pixels, a metric's value, an import
    path); the message names the plugin and what to fix."""
