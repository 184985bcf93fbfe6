"""ferbench: a plugin-based benchmark harness for facial expression recognition.

Importing this package is cheap: torch and timm are only imported when a run starts.
"""
from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations in plugins: ``@ferbench.hookimpl``.
hookimpl = pluggy.HookimplMarker("ferbench")

__all__ = ["__version__", "hookimpl"]
