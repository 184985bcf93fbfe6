"""Every hook is typed, documented in code and in CONTRIBUTING.md."""
from __future__ import annotations

import inspect
from pathlib import Path

from ferbench import hookspecs
from ferbench.plugins import plugin_manager

HOOKS = [name for name, fn in vars(hookspecs).items()
         if inspect.isfunction(fn) and hasattr(fn, "ferbench_spec")]


def test_there_are_registration_and_lifecycle_hooks() -> None:
    assert {"register_datasets", "register_methods", "register_metrics", "on_run_start", "on_epoch_end",
            "on_fold_end", "on_run_end"} <= set(HOOKS)


def test_every_hook_has_a_docstring_and_annotations() -> None:
    for name in HOOKS:
        fn = getattr(hookspecs, name)
        assert fn.__doc__ and len(fn.__doc__.strip()) > 20, f"hook {name} lacks a docstring"
        signature = inspect.signature(fn)
        assert all(p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()), name


def test_every_hook_is_documented_in_contributing() -> None:
    text = (Path(__file__).parents[1] / "CONTRIBUTING.md").read_text(encoding="utf-8")
    missing = [name for name in HOOKS if f"`{name}" not in text]
    assert not missing, f"hooks missing from CONTRIBUTING.md: {missing}"


def test_plugin_manager_knows_exactly_these_hooks() -> None:
    pm = plugin_manager()
    assert set(HOOKS) == {name for name in dir(pm.hook) if not name.startswith("_")}
