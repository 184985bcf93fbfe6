"""``ferbench weights push``: a completed run's kept weights, effective config and model card to a Hub repository.

The upload is one commit of a staged folder: ``model.safetensors`` (one fold) or ``fold-<k>/model.safetensors``
(several), ``config.json`` and ``README.md`` (:mod:`ferbench.modelcard`).
"""
from __future__ import annotations

import json
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import FerbenchError
from .settings import Status
from .modelcard import CardFold, CardInfo, render_model_card
from .store import Store
from .weights import resolve

WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class PushResult:
    """Where the run went and which files it holds."""

    repo_id: str
    url: str
    files: list[str]


def push_run(run_id: str, repo_id: str, *, private: bool = False, revision: str | None = None,
             store: Store | None = None) -> PushResult:
    """Upload ``run_id``'s kept weights per fold, its config and a model card to ``repo_id`` in one commit."""
    from .hub import hf_api

    store = store or Store()
    run, folds = _completed_run(store, run_id)
    with tempfile.TemporaryDirectory(prefix="ferbench-push-") as tmp:
        folder = Path(tmp)
        stage(store, run, folds, repo_id, folder)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        api = hf_api()
        try:
            url = str(api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model"))
            if revision:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision, repo_type="model",
                              commit_message=f"ferbench run {run_id}: {run['method']} on {run['dataset']}/{run['protocol']}")
        except Exception as exc:  # noqa: BLE001 - any Hub failure becomes one line
            first = next((line for line in str(exc).splitlines() if line.strip()), exc.__class__.__name__)
            raise FerbenchError(f"cannot push run {run_id} to {repo_id}: {first.strip()}; log in with `hf auth login` "
                                "or set HF_TOKEN with write access") from None
    return PushResult(repo_id=repo_id, url=url, files=files)


def _completed_run(store: Store, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    runs = store.query("SELECT * FROM runs WHERE run_id = ?", [run_id])
    if not runs:
        raise FerbenchError(f"no run {run_id} in {store.path}; `ferbench runs` lists the runs")
    if runs[0]["status"] != Status.COMPLETED:
        raise FerbenchError(f"run {run_id} is {runs[0]['status']}, not completed; only completed runs can be pushed")
    folds = store.query("SELECT fold, selected_epoch FROM folds WHERE run_id = ? AND status = 'completed' "
                        "AND weights_path IS NOT NULL ORDER BY fold", [run_id])
    if not folds:
        raise FerbenchError(f"run {run_id} kept no weights (train.keep_weights was false?); nothing to push")
    return runs[0], folds


def stage(store: Store, run: dict[str, Any], folds: list[dict[str, Any]], repo_id: str, folder: Path) -> CardInfo:
    """Write the files of a push into ``folder`` and return what its model card says."""
    card_folds = []
    for row in folds:
        weights = resolve(f"run:{run['run_id']}/fold-{row['fold']}", store=store)
        path_in_repo = WEIGHTS_FILE if len(folds) == 1 else f"fold-{row['fold']}/{WEIGHTS_FILE}"
        (folder / path_in_repo).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights.path, folder / path_in_repo)
        card_folds.append(CardFold(row["fold"], row["selected_epoch"], path_in_repo, weights.sha256))
    (folder / "config.json").write_text(json.dumps(run["config"], indent=2, sort_keys=True) + "\n", encoding="utf-8")
    card = _card_info(store, run, card_folds, repo_id)
    (folder / "README.md").write_text(render_model_card(card), encoding="utf-8")
    return card


def _card_info(store: Store, run: dict[str, Any], folds: list[CardFold], repo_id: str) -> CardInfo:
    rows = store.query("SELECT metric, fold, value FROM fold_metrics WHERE run_id = ? ORDER BY metric, fold",
                       [run["run_id"]])
    kept = {f.fold for f in folds}
    metrics: dict[str, list[float]] = {}
    for row in rows:
        if row["fold"] in kept:
            metrics.setdefault(row["metric"], []).append(row["value"])
    return CardInfo(repo_id=repo_id, run=run, folds=folds, metrics=metrics, reproduce=reproduce_command(store, run))


def reproduce_command(store: Store, run: dict[str, Any]) -> str:
    """The ``ferbench run`` command that repeats ``run`` with the uploaded config.json."""
    args = ["ferbench", "run", "--method", run["method"], "--dataset", run["dataset"], "--protocol", run["protocol"],
            "--preset", run["preset"], "--seed", str(run["seed"]), "--config", "config.json"]
    ran = list(run.get("folds") or [])
    total = store.query("SELECT json_array_length(manifest, '$.folds') AS n FROM manifests WHERE manifest_hash = ?",
                        [run["manifest_hash"]])
    if len(ran) == 1 and total and (total[0]["n"] or 0) > 1:
        args += ["--fold", str(ran[0])]
    return shlex.join(args)
