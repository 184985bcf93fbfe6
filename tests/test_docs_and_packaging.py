"""The README's commands, CI and packaging agree; listing plugins stays light."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}", 1)[1]
    return re.search(r"```bash\n(.*?)\n```", section, flags=re.S).group(1).strip()


def test_ci_runs_the_readme_test_command() -> None:
    command = readme_block("Tests")
    assert command.endswith("pytest")
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_quick_start_runs_the_embedded_dataset_and_renders_the_leaderboard() -> None:
    command = readme_block("Quick start")
    assert "ferbench run --method vit-baseline --dataset synthfer --preset tiny" in command
    assert command.endswith("ferbench leaderboard")


def test_listing_plugins_imports_neither_torch_nor_model_code() -> None:
    code = ("import sys; from ferbench.plugins import describe_plugins; describe_plugins(); "
            "heavy = [m for m in ('torch', 'timm', 'ferbench_plugins.vit_baseline.model', 'ferbench_plugins.mae.model', "
            "'ferbench_plugins.pfvit.model', 'sklearn') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_builtin_plugins_come_from_entry_points_under_a_unique_package_name() -> None:
    from importlib.metadata import entry_points

    points = {ep.name: ep.value for ep in entry_points(group="ferbench")}
    assert points["vit_baseline"] == "ferbench_plugins.vit_baseline"
    assert all(value.startswith("ferbench_plugins.") for value in points.values())
    import ferbench_plugins

    assert Path(ferbench_plugins.__file__).parent.name == "plugins"
    assert subprocess.run([sys.executable, "-c", "import plugins"], capture_output=True,
                          cwd="/").returncode != 0, "the folder must not install as a top-level 'plugins'"
