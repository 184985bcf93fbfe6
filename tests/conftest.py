"""Shared fixtures: an isolated ferbench home per test and helpers to run the real CLI."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

#: Settings that make vit-baseline/synthfer runs take a few seconds on a CPU.
FAST = ["--preset", "tiny", "--set", "dataset.samples=420", "--set", "dataset.subjects=20",
        "--set", "data.image_size=32", "--set", "model.depth=2", "--set", "train.epochs=2"]
#: vit-baseline settings for end-to-end runs on the tiny fixtures of real datasets (16 px, 2 epochs).
TINY_RUN = ["--preset", "tiny", "--set", "data.image_size=16", "--set", "model.patch_size=8",
            "--set", "model.depth=2", "--set", "train.epochs=2"]


def step_context(slots: dict[str, Any], accum: int = 1, clip: float = 0.0) -> Any:
    """A CPU :class:`ferbench.method.StepContext` without mixed precision, as the engine builds it."""
    import torch

    from ferbench.method import StepContext

    return StepContext(slots=slots, scaler=torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"),
                       amp_dtype=None, grad_clip=clip, accum_steps=accum)


@pytest.fixture
def fb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment for a ferbench process with its own home and database under ``tmp_path``."""
    home = tmp_path / "home"
    monkeypatch.setenv("FERBENCH_HOME", str(home))
    monkeypatch.setenv("FERBENCH_DB", str(home / "results.duckdb"))
    monkeypatch.delenv("FERBENCH_DATA_ROOT", raising=False)
    return dict(os.environ)


#: The test-only third-party plugin (a pre-trainer, a classifier, a loss), see tests/toyplugin/.
TOY_PLUGIN_DIR = Path(__file__).parent / "toyplugin"


@pytest.fixture
def toy_env(fb_env: dict[str, str]) -> dict[str, str]:
    """``fb_env`` with the toy plugin loaded (``FERBENCH_PLUGINS``)."""
    path = os.pathsep.join(filter(None, [str(TOY_PLUGIN_DIR), fb_env.get("PYTHONPATH", "")]))
    return {**fb_env, "PYTHONPATH": path, "FERBENCH_PLUGINS": "toy_plugin"}


def run_id_of(result: subprocess.CompletedProcess[str]) -> str:
    """The run id a ``ferbench run/pretrain/eval --json`` printed."""
    return json.loads(result.stdout)["run_id"]


def ferbench(*args: str, env: dict[str, str] | None = None, check: bool = True,
             timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ferbench ARGS`` in a subprocess, as a user would."""
    result = subprocess.run([sys.executable, "-m", "ferbench", *args], capture_output=True, text=True,
                            env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"ferbench {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def ferbench_json(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run ferbench with ``--json`` and decode its standard output."""
    return json.loads(ferbench(*args, "--json", env=env).stdout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """A user mistake: exit code 2, one ``ferbench: error:`` line holding ``fragments``, no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("ferbench: error:"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert all(fragment in lines[0] for fragment in fragments), lines[0]
    return lines[0]


# --- building methods and losses by hand (no loader, no engine) -------------------------------------------

def planned_config(method: str, preset: str = "tiny", dataset: str = "synthfer", **assignments: Any) -> dict[str, Any]:
    """The effective config of ``method``/``preset`` on ``dataset`` with ``--set KEY=VALUE`` assignments
    (dotted keys given with ``__`` for ``.``), validated exactly as ``ferbench run`` validates it; weights
    references are left unresolved (nothing downloads)."""
    from ferbench.planning import RunRequest, plan_run

    pairs = [(key.replace("__", "."), value) for key, value in assignments.items()]
    request = RunRequest(method=method, dataset=dataset, preset=preset, assignments=pairs)
    return plan_run(request, resolve_weights=False).config


def data_info(num_classes: int = 3, image_size: int = 16, prior: Any = None, **fields: Any) -> Any:
    """A DataInfo for ``num_classes`` balanced classes of ``image_size`` px RGB images."""
    import numpy as np

    from ferbench.method import DataInfo

    defaults = dict(classes=tuple(f"class{k}" for k in range(num_classes)), modalities=("rgb",), image_size=image_size,
                    class_counts=np.full(num_classes, 10), steps_per_epoch=1, epochs=1, prior=prior)
    return DataInfo(**{**defaults, **fields})


def random_batch(batch_size: int, image_size: int, num_classes: int, views: int = 1, seed: int = 0) -> Any:
    """A Batch of ``views`` random normalised RGB views with every class present."""
    import torch

    from ferbench.method import Batch

    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(batch_size) % num_classes
    images = [{"rgb": torch.randn(batch_size, 3, image_size, image_size, generator=generator)} for _ in range(views)]
    return Batch(views=images, labels=labels, rows=torch.arange(batch_size))


def one_training_step(method: Any, batch: Any) -> dict[str, Any]:
    """Configure the method's optimizers and run one training step on CPU without mixed precision."""
    import torch

    from ferbench.method import StepContext

    slots = method.configure_optimizers()
    ctx = StepContext(slots=slots, scaler=torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"),
                      amp_dtype=None)
    method.train()
    return method.training_step(batch, ctx)


# --- generated leaderboard pages --------------------------------------------------------------------------

#: The only script elements a leaderboard page may hold: its own script file and inert JSON data.
OWN_SCRIPT = re.compile(r'<script src="(?:\.\./)?ferbench\.js"></script>|<script type="application/json" id="[a-z-]+">')


def foreign_scripts(html: str) -> list[str]:
    """``<script`` openings in ``html`` other than the leaderboard's own (there must be none)."""
    own = {match.start() for match in OWN_SCRIPT.finditer(html)}
    return [html[m.start():m.start() + 80] for m in re.finditer(r"<script", html, re.IGNORECASE) if m.start() not in own]
