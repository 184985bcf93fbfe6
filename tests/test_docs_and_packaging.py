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


def _reference_sections() -> dict[str, str]:
    """CONTRIBUTING.md's reference, by ``### `` heading."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    reference = text.split("## Reference: the types a plugin touches", 1)[1].split("\n## ", 1)[0]
    return {part.split("\n", 1)[0]: part for part in reference.split("\n### ")[1:]}


def _public_members(cls: type) -> list[str]:
    import dataclasses

    fields = [f.name for f in dataclasses.fields(cls)]
    members = [name for name, value in vars(cls).items() if callable(value) or isinstance(value, property)]
    return [name for name in fields + members if not name.startswith("_")]


def _short_signature(fn: object) -> str:
    import inspect

    parts = [("*" if p.kind is p.VAR_POSITIONAL else "") + p.name + ("" if p.default is p.empty else f"={p.default!r}")
             for p in inspect.signature(fn).parameters.values()]
    return f"{fn.__name__}({', '.join(parts)})"


def test_contributing_references_every_field_of_the_types_a_plugin_touches() -> None:
    from ferbench.data import FERData
    from ferbench.losses import LossInput, MixInfo
    from ferbench.method import Batch, DataInfo, OptimizerSlot, StepContext
    from ferbench.pixelcache import Pixels
    from ferbench.runinfo import RunInfo
    from ferbench.specs import DatasetSpec, LossSpec, MethodSpec, MetricSpec, ProtocolSpec

    sections = _reference_sections()
    types = [FERData, Pixels, DatasetSpec, ProtocolSpec, MethodSpec, MetricSpec, LossSpec, LossInput, MixInfo,
             Batch, DataInfo, OptimizerSlot, StepContext, RunInfo]
    for cls in types:
        (section,) = [body for heading, body in sections.items() if f"`{cls.__name__}`" in heading]
        missing = [name for name in _public_members(cls) if f"`{name}`" not in section and f"`{name}(" not in section]
        assert not missing, f"CONTRIBUTING.md's reference of {cls.__name__} lacks {missing}"


def test_contributing_references_engine_defaults_emotions_and_file_helpers() -> None:
    import inspect

    from ferbench import datafiles, pixelcache
    from ferbench.config import ENGINE_DEFAULTS, OPTIM_DEFAULTS, flatten
    from ferbench.emotions import BASIC8

    sections = _reference_sections()
    keys = [*flatten(ENGINE_DEFAULTS), *(f"optim.{key}" for key in OPTIM_DEFAULTS)]
    defaults = sections["Engine defaults (`ferbench.config`)"]
    assert not [key for key in keys if f"| `{key}` |" not in defaults]
    emotions = sections["`ferbench.emotions`"]
    assert all(f"`{name}`" in emotions for name in BASIC8)
    helpers = sections["Reading files and pixels (`ferbench.datafiles`, `ferbench.pixelcache`)"]
    for module in (datafiles, pixelcache):
        for _, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__ and not fn.__name__.startswith("_"):
                assert f"| `{_short_signature(fn)}` |" in helpers, f"{_short_signature(fn)} is not in the reference"


def test_readme_screenshots_and_the_committed_demo_site_open_without_installing_anything() -> None:
    """The README's leaderboard screenshots exist, and leaderboards/synthfer-demo/ is a small, self-contained
    site: every page's links resolve inside it, nothing is fetched from elsewhere, no file is large."""
    from urllib.parse import unquote, urlparse

    from conftest import foreign_scripts

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert {"docs/images/leaderboard-board.png", "docs/images/leaderboard-run.png"} <= set(images)
    assert all((ROOT / image).is_file() and (ROOT / image).stat().st_size < 600_000 for image in images)
    site = ROOT / "leaderboards" / "synthfer-demo"
    pages = sorted(site.rglob("*.html"))
    assert (site / "index.html") in pages and (site / "data" / "predictions.parquet").is_file()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not foreign_scripts(text) and not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", text), page
        for link in re.findall(r'(?:href|src)="([^"#]*)', text):
            if link and not link.startswith(("https:", "http:")):
                assert (page.parent / unquote(urlparse(link).path)).resolve().is_file(), (page, link)
    files = [path for path in site.rglob("*") if path.is_file()]
    assert max(path.stat().st_size for path in files) < 2_000_000
    assert sum(path.stat().st_size for path in files) < 12_000_000
