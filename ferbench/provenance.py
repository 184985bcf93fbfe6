"""What a run records about where it ran: versions, git commit, host, the command that replays it."""
from __future__ import annotations

import platform
import shlex
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from . import __version__


def git_commit() -> str | None:
    """The commit of the ferbench checkout in use, when it is one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _installed_version(distribution: str) -> str:
    """A distribution's version from its metadata: importing timm only to read it costs seconds."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    """Versions of ferbench and of the libraries that determine a score, and the thread settings."""
    import torch

    return {"ferbench": __version__, "torch": torch.__version__, "timm": _installed_version("timm"),
            "numpy": np.__version__, "python": platform.python_version(),
            "torch_threads": str(torch.get_num_threads()),
            "deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()),
            "cuda": str(torch.version.cuda), "device_name": _device_name(torch)}


def _device_name(torch: object) -> str:
    cuda = getattr(torch, "cuda")
    return cuda.get_device_name(0) if cuda.is_available() else platform.processor() or platform.machine()


def host() -> str:
    """The machine's name."""
    return platform.node()


def command_line() -> str:
    """The command as typed, quoted so that it can be pasted back into a shell."""
    return shlex.join(["ferbench", *sys.argv[1:]])
