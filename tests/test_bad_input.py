"""The bad-input catalogue (issue 10): every mistake below fails with exit 2, one ``ferbench: error:``
line, no traceback and an unchanged database, before any data loads.

One tiny run is recorded first (with a seed beyond 32 bits); most cases then call ``ferbench.cli.main``
in-process, since each fails while planning; a few run as real processes.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from click.testing import CliRunner

from conftest import assert_one_line_error, ferbench, run_id_of
from ferbench.cli import main
from ferbench.store import TABLES, Store

BIG_SEED = 1099511627776  # 2**40: once overflowed an INT32 column
RUN = ["run", "-m", "vit-baseline", "-d", "synthfer", "--preset", "tiny"]
#: The smallest run worth recording: 140 synthetic faces at 16 px, one block, one epoch.
TINIEST = [*RUN, "--set", "dataset.samples=140", "--set", "dataset.subjects=10", "--set", "data.image_size=16",
           "--set", "model.patch_size=8", "--set", "model.depth=1", "--set", "train.epochs=1"]


def _alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


#: Bad files a case names by key; written once into the module's folder.
FILES: dict[str, Callable[[Path], None]] = {
    "binary.yaml": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "utf16-no-bom.yaml": lambda p: p.write_bytes("train:\n  epochs: 2\n".encode("utf-16-le")),
    "latin1.yaml": lambda p: p.write_bytes("model:\n  arch: vit_caf\xe9\n".encode("latin-1")),
    "bomb.yaml": lambda p: p.write_text(_alias_bomb(12)),  # 110 aliases
    "small-bomb.yaml": lambda p: p.write_text(_alias_bomb(9)),  # 80 aliases, 10**9 values
    "huge.yaml": lambda p: p.write_text("# padding\n" * 110_000),
    "deep.yaml": lambda p: p.write_text("train: " + "[" * 100 + "]" * 100 + "\n"),
    "nan.yaml": lambda p: p.write_text("optim:\n  lr: .nan\n"),
    "section.yaml": lambda p: p.write_text("train: 5\n"),
    "papers-value.yaml": lambda p: p.write_text(
        "version: 2\nsources: {s: {title: S}}\nsettings: {x: {dataset: rafdb, protocol: official, classes: 7, "
        "training: t, selection: s}}\ntables:\n  - {source: s, table: T1, metric: accuracy, columns: [x], "
        "rows: [{method: m, values: [n/a]}]}\n"),
    "papers-list.yaml": lambda p: p.write_text("version: 2\nsources: {}\nsettings: {}\ntables: 3\n"),
    "papers-bomb.yaml": lambda p: p.write_text(_alias_bomb(12) + "version: 2\ntables: []\n"),
    "a-file": lambda p: p.write_text("not a folder\n"),
}

#: (arguments, fragments of the error line); ``<name>`` stands for the path of the bad file ``name``
#: (or of ``missing.duckdb``, ``site``: paths that must not exist).
CASES: list[tuple[list[str], list[str]]] = [
    # issue 10 item 2: junk that used to be scored
    ([*RUN, "--set", "optim.lr=1e309"], ["optim.lr", "expected a finite number"]),
    ([*RUN, "--set", "data.std=[0,0,0]"], ["data.std", "each > 0"]),
    ([*RUN, "--set", "train.epochs=0"], ["train.epochs", "in [1, 100000]"]),
    # issue 10 item 8: tracebacks, silently accepted values, hangs
    ([*RUN, "--set", "optim.lr=NaN"], ["optim.lr", "finite"]),
    ([*RUN, "--set", "optim.lr=-.inf"], ["optim.lr", "finite"]),
    ([*RUN, "--set", "train.batch_size=0"], ["train.batch_size", "in [1, 65536]"]),
    ([*RUN, "--set", "train.batch_size=-5"], ["train.batch_size", "in [1, 65536]"]),
    ([*RUN, "--set", "train.eval_batch_size=0"], ["train.eval_batch_size", "in [1, 65536]"]),
    ([*RUN, "--set", "train.grad_accum_steps=0"], ["train.grad_accum_steps", "in [1, 1024]"]),
    ([*RUN, "--set", "data.mean=[1,2]"], ["data.mean", "a list of 3 values"]),
    ([*RUN, "--set", "data.mean=[a,b,c]"], ["data.mean", "a list of numbers"]),
    ([*RUN, "--set", "data.augment.scale=[2]"], ["data.augment.scale", "a list of 2 values"]),
    ([*RUN, "--set", "data.augment.scale=[1.25,1.0]"], ["data.augment.scale", "ascending"]),
    ([*RUN, "--set", "optim.betas=[2,3]"], ["optim.betas", "each in [0, 1)"]),
    ([*RUN, "--set", "train.epochs=-1"], ["train.epochs", "in [1, 100000]"]),
    ([*RUN, "--set", "train.epochs=10**30"], ["train.epochs", "expected an integer"]),
    ([*RUN, "--set", f"train.epochs={10**30}"], ["train.epochs", "does not fit in 64 bits"]),
    ([*RUN, "--set", "train.epochs=1000000"], ["train.epochs", "in [1, 100000]"]),
    ([*RUN, "--set", "train.val_fraction=1.5"], ["train.val_fraction", "in [0, 1)"]),
    ([*RUN, "--set", "data.augment.hflip=5"], ["data.augment.hflip", "in [0, 1]"]),
    ([*RUN, "--set", "optim.milestones=[a]"], ["optim.milestones", "a list of integers"]),
    ([*RUN, "--set", "model.num_heads=7"], ["model.num_heads", "divide model.embed_dim = 96", "1, 2, 3, 4, 6, 8"]),
    ([*RUN, "--set", "model.patch_size=0"], ["model.patch_size", ">= 1"]),
    ([*RUN, "--set", "model.patch_size=7"], ["model.patch_size", "divide data.image_size = 48"]),
    ([*RUN, "--set", "model.arch=org/vit"], ["model.arch", "timm architecture name"]),
    ([*RUN, "--set", "loss.label_smoothing=1"], ["loss.label_smoothing", "in [0, 1)"]),
    # unknown names: the nearest one is suggested
    ([*RUN, "--set", "train.epoch=3"], ["did you mean 'train.epochs'?"]),
    ([*RUN, "--set", "trian.epochs=3"], ["unknown config section 'trian'", "did you mean 'train'?"]),
    ([*RUN, "--set", "optim.name=adamww"], ["did you mean 'adamw'?"]),
    ([*RUN, "--set", "loss.name=cee"], ["did you mean 'ce'?"]),
    (["run", "-m", "vit-baseline", "-d", "synthfer", "--preset", "tinyy"], ["did you mean 'tiny'?"]),
    # YAML in --set values and config files
    ([*RUN, "--set", "train.epochs=*undefined"], ["malformed --set", "not valid YAML"]),
    ([*RUN, "--set", "model.arch=&a [*a]"], ["malformed --set", "expands to more than"]),
    ([*RUN, "--config", "<binary.yaml>"], ["binary.yaml", "is a binary file"]),
    ([*RUN, "--config", "<utf16-no-bom.yaml>"], ["is a binary file"]),
    ([*RUN, "--config", "<latin1.yaml>"], ["is not UTF-8 text", "save it as UTF-8"]),
    ([*RUN, "--config", "<bomb.yaml>"], ["bomb.yaml", "more than 100 YAML aliases"]),
    ([*RUN, "--config", "<small-bomb.yaml>"], ["expands to more than 100000 values"]),
    ([*RUN, "--config", "<huge.yaml>"], ["is larger than 1 MiB"]),
    ([*RUN, "--config", "<deep.yaml>"], ["levels deep"]),
    ([*RUN, "--config", "<nan.yaml>"], ["optim.lr", "finite"]),
    ([*RUN, "--config", "<section.yaml>"], ["train is a section"]),
    ([*RUN, "--config", "<a-file>"], ["must hold a mapping of sections"]),
    # command-line options
    ([*RUN, "--seed", str(2**63)], ["--seed"]),
    ([*RUN, "--seed", "-1"], ["--seed"]),
    # outputs and databases
    (["leaderboard", "--out", "<a-file>"], ["a-file is not a folder"]),
    (["export", "--out", "<a-file>"], ["a-file is not a folder"]),
    (["export", "--out", "<a-file>/sub"], ["is not a folder", "a-file is a file"]),
    (["leaderboard", "--db", "<missing.duckdb>", "--out", "<site>"], ["no results database at", "missing.duckdb"]),
    (["export", "--db", "<missing.duckdb>", "--out", "<site>"], ["no results database at", "missing.duckdb"]),
    (["leaderboard", "--out", "<site>", "--paper-results", "<papers-value.yaml>"], ["papers-value.yaml", "rows[0] (m): value 'n/a'"]),
    (["leaderboard", "--out", "<site>", "--paper-results", "<papers-list.yaml>"], ["'tables' must be a list"]),
    (["leaderboard", "--out", "<site>", "--paper-results", "<papers-bomb.yaml>"], ["more than 100 YAML aliases"]),
    (["leaderboard", "--out", "<site>", "--paper-results", "<binary.yaml>"], ["is a binary file"]),
]
#: Cases that also run as real processes, as a user types them (picked by their last argument).
SUBPROCESS_CASES = [case for case in CASES
                    if case[0][-1] in ("optim.lr=1e309", "<bomb.yaml>", "<site>")][:3]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A home with one recorded run, the bad files, and the database's content before any case."""
    folder = tmp_path_factory.mktemp("bad-input")
    for name, write in FILES.items():
        write(folder / name)
    env = {"FERBENCH_HOME": str(folder / "home"), "FERBENCH_DB": str(folder / "home" / "results.duckdb")}
    process_env = {**{k: v for k, v in os.environ.items() if k != "FERBENCH_DATA_ROOT"}, **env}
    run_id = run_id_of(ferbench(*TINIEST, "--seed", str(BIG_SEED), "--json", env=process_env))
    store = Store(env["FERBENCH_DB"])
    assert store.query("SELECT seed FROM runs WHERE run_id = ?", [run_id]) == [{"seed": BIG_SEED}]
    return {"folder": folder, "env": env, "process_env": process_env, "store": store, "before": _tables(store)}


def _tables(store: Store) -> dict[str, list[str]]:
    """Every row of every table, as text."""
    with store.connect(read_only=True) as con:
        return {table: sorted(map(repr, con.execute(f"SELECT * FROM {table}").fetchall())) for table in TABLES}


def _arguments(args: list[str], folder: Path) -> list[str]:
    """``args`` with each ``<name>`` replaced by the path ``folder/name``."""
    return [re.sub(r"<([\w.-]+)>", lambda match: str(folder / match.group(1)), arg) for arg in args]


def _in_process(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``ferbench ARGS`` through :func:`ferbench.cli.main` in this process, with captured output."""
    with CliRunner().isolation(env={"FERBENCH_DEBUG": None, **env, "FERBENCH_DATA_ROOT": None}) as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return subprocess.CompletedProcess(args, code, out.getvalue().decode(), err.getvalue().decode())


@pytest.mark.parametrize(("args", "fragments"), CASES, ids=[" ".join(a[-2:]) for a, _ in CASES])
def test_bad_input_fails_in_one_line_and_changes_nothing(args: list[str], fragments: list[str],
                                                         home: dict[str, Any]) -> None:
    args, folder = _arguments(args, home["folder"]), home["folder"]
    fragments = _arguments(fragments, folder)
    assert_one_line_error(_in_process(args, home["env"]), *fragments)
    assert _tables(home["store"]) == home["before"]
    assert not (folder / "site").exists()


@pytest.mark.parametrize(("args", "fragments"), SUBPROCESS_CASES, ids=[a[-1] for a, _ in SUBPROCESS_CASES])
def test_bad_input_in_a_real_process(args: list[str], fragments: list[str], home: dict[str, Any]) -> None:
    args, fragments = _arguments(args, home["folder"]), _arguments(fragments, home["folder"])
    assert_one_line_error(ferbench(*args, env=home["process_env"], check=False, timeout=120), *fragments)
    assert _tables(home["store"]) == home["before"]


def _assert_traceback_then_line(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr and "ferbench.errors.UsageError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("ferbench: error: invalid value 0 for train.epochs")


def test_debug_flag_shows_the_traceback_before_the_line(home: dict[str, Any]) -> None:
    before = os.environ.get("FERBENCH_DEBUG")
    _assert_traceback_then_line(_in_process([*RUN, "--set", "train.epochs=0", "--debug"], home["env"]))
    assert os.environ.get("FERBENCH_DEBUG") == before  # the in-process call's setting did not leak


def test_debug_environment_variable_shows_the_traceback(home: dict[str, Any]) -> None:
    env = {**home["process_env"], "FERBENCH_DEBUG": "1"}
    _assert_traceback_then_line(ferbench(*RUN, "--set", "train.epochs=0", env=env, check=False, timeout=120))


def test_an_unexpected_exception_is_one_line_with_exit_1(home: dict[str, Any],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import ferbench.runner

    def broken(*_: Any, **__: Any) -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(ferbench.runner, "run", broken)
    result = _in_process([*RUN], home["env"])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "ferbench: error: unexpected ZeroDivisionError: division by zero; rerun with --debug for the traceback "
        "and report it if your input was right"]
