"""User mistakes end in one line on stderr, a non-zero exit and no traceback."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_one_line_error, ferbench


def bad_config(tmp_path: Path) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text("train: {epochs: [\n")
    return str(path)


CASES = [
    (["run", "--method", "nope", "--dataset", "synthfer"], "unknown method 'nope'; installed methods:"),
    (["run", "--method", "vit-baseline", "--dataset", "nope"], "installed datasets: "),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--set", "train.epochs"], "malformed --set"),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--set", "train.epoch=2"], "unknown config key 'train.epoch'"),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--set", "train.selection=best"], "choose one of: final, val, test"),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--config", "/no/such/file.yaml"], "cannot read config file"),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--config", bad_config], "is not valid YAML"),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--protocol", "loso"], "choose one of: official"),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--preset", "huge"], "choose one of: paper, "),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--seed", "x"], "'x' is not a valid integer"),
    (["run", "-m", "vit-baseline"], "Missing option '--dataset'"),
    (["runs", "--db", "/no/such/dir/x.duckdb"], "no results database"),
]


@pytest.mark.parametrize(("args", "message"), CASES)
def test_one_line_error(args: list, message: str, fb_env: dict[str, str], tmp_path: Path) -> None:
    args = [a(tmp_path) if callable(a) else a for a in args]
    assert_one_line_error(ferbench(*args, env=fb_env, check=False, timeout=60), message)


def test_missing_data_root_names_the_option(fb_env: dict[str, str], tmp_path: Path) -> None:
    from ferbench.errors import UsageError
    from ferbench.planning import RunRequest, plan_run
    from ferbench.specs import DatasetSpec, ProtocolSpec
    from ferbench.plugins import registry

    reg = registry()
    spec = DatasetSpec("needsfiles", "x:y", ("a", "b"), {"official": ProtocolSpec("official", "official")},
                       "official")
    reg.datasets["needsfiles"] = spec
    try:
        with pytest.raises(UsageError, match="needs its files: pass --data-root DIR"):
            plan_run(RunRequest(method="vit-baseline", dataset="needsfiles", preset="tiny"))
        with pytest.raises(UsageError, match="is not a directory"):
            plan_run(RunRequest(method="vit-baseline", dataset="needsfiles", preset="tiny",
                                data_root=str(tmp_path / "absent")))
    finally:
        del reg.datasets["needsfiles"]
