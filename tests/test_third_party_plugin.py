"""The plugin example in CONTRIBUTING.md, installed from its own directory, works end to end."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import ferbench, ferbench_json

CONTRIBUTING = Path(__file__).parents[1] / "CONTRIBUTING.md"


def write_example_package(target: Path) -> None:
    text = CONTRIBUTING.read_text(encoding="utf-8")
    blocks = re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 4
    for name, body in blocks:
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")


def write_image_folders(root: Path) -> None:
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("test", 8)):
        for label, name in enumerate(("neutral", "happiness")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(0, 60, (20, 20, 3)) + (150 if label else 0) * (np.arange(20) > 10)[:, None, None]
                Image.fromarray(image.astype(np.uint8)).save(folder / f"{i}.png")


def test_installed_plugin_is_listed_and_runs(fb_env: dict[str, str], tmp_path: Path) -> None:
    package, site = tmp_path / "ferbench-example", tmp_path / "site"
    write_example_package(package)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True, capture_output=True)
    env = {**fb_env, "PYTHONPATH": str(site), "EXAMPLE_LOG": str(tmp_path / "events.jsonl")}

    listed = {p["name"]: p for p in ferbench_json("plugins", env=env)}
    example = listed["example"]
    assert (example["distribution"], example["version"]) == ("ferbench-example", "0.3.0")
    assert example["provides"] == {"datasets": ["example-folders"], "methods": ["example-cnn"],
                                   "metrics": ["top2_accuracy"], "losses": []}
    assert listed["vit_baseline"]["distribution"] == "ferbench"
    assert "example-cnn" in ferbench("plugins", env=env).stdout

    missing = ferbench("run", "-m", "example-cnn", "-d", "example-folders", env=env, check=False)
    assert missing.returncode == 2 and "needs its files: pass --data-root" in missing.stderr

    root = tmp_path / "faces"
    write_image_folders(root)
    (root / "train" / "neutral" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    checked = ferbench("plugins", "check", "example-folders", "--data-root", str(root), "--image-size", "16", env=env)
    assert checked.stdout.startswith("ok      dataset example-folders: 65 samples, 2 classes, rgb 16x16x3, 1 unreadable")
    run = ferbench("run", "-m", "example-cnn", "-d", "example-folders", "--data-root", str(root),
                   "--preset", "tiny", "--protocol", "kfold3", "--json", env=env)
    summary = json.loads(run.stdout)
    assert "1 unreadable image(s) left out of every split" in run.stderr  # skipped, not a crash
    assert sorted(summary["folds"]) == ["0", "1", "2"]
    assert summary["aggregate"]["top2_accuracy"]["mean"] == 1.0  # two classes: always in the top two
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == (["run_start"] + (["epoch_end"] * 2 + ["fold_end"]) * 3 + ["run_end"])
    assert events[-1]["status"] == "completed"
