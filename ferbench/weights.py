"""Weights references: one string names pretrained or trained weights wherever ferbench takes weights.

- ``timm:<name>``: the Hub file timm's pretrained config names for the model (e.g. ``timm:vit_base_patch16_224.mae``);
- ``hf://<org>/<repo>/<path/in/repo>[@<revision>]``: a file of a Hugging Face Hub model repository;
- a local file path;
- ``run:<run_id>[/fold-<k>]``: the weights a completed ferbench run kept for a fold.

Any of them may end in ``#sha256=<hex>``: a file with another hash is refused. :func:`resolve` turns a
reference into a :class:`ResolvedWeights` (local path, SHA-256, size, Hub commit), downloading Hub files
into huggingface-hub's cache (:mod:`ferbench.hub`). Reading and loading state dicts lives in
:mod:`ferbench.statedict` and is re-exported here.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import FerbenchError, UsageError
from .statedict import (Adapted, LoadReport, adapter_names, exact_adapter, file_sha256, get_adapter, load_weights,
                        read_state_dict, register_adapter, save_state_dict)

if TYPE_CHECKING:
    from .store import Store

__all__ = ["Adapted", "LoadReport", "ResolvedWeights", "WeightsRef", "adapter_names", "exact_adapter", "file_sha256", "get_adapter",
           "kept_run_weights", "load_weights", "parse_ref", "read_state_dict", "register_adapter", "resolve",
           "save_state_dict", "timm_source", "REF_FORMS"]

REF_FORMS = ("timm:<name>, hf://<org>/<repo>/<path>[@<revision>], a local file, or run:<run_id>[/fold-<k>], "
             "each optionally ending in #sha256=<hex>")
_PIN = re.compile(r"#sha256=(?P<sha>[0-9a-fA-F]*)$")
_RUN = re.compile(r"run:(?P<run_id>[^/\s]+)(?:/fold-(?P<fold>\d+))?")
_HF = re.compile(r"hf://(?P<repo_id>[^/@\s]+/[^/@\s]+)/(?P<filename>[^@]+?)(?:@(?P<revision>[^@\s]+))?")
#: safetensors twins of timm's PyTorch file names on the Hub (timm prefers them when they exist).
_SAFETENSORS_TWINS = {"pytorch_model.bin": "model.safetensors",
                      "open_clip_pytorch_model.bin": "open_clip_model.safetensors"}


@dataclass(frozen=True)
class WeightsRef:
    """A parsed weights reference; which fields are set depends on ``kind`` (timm, hf, file, run)."""

    text: str
    kind: str
    sha256: str | None = None
    name: str | None = None          # timm
    repo_id: str | None = None       # hf
    filename: str | None = None      # hf
    revision: str | None = None      # hf
    path: str | None = None          # file
    run_id: str | None = None        # run
    fold: int | None = None          # run


def parse_ref(text: str) -> WeightsRef:
    """Split a reference into its parts; a UsageError says which forms are valid."""
    body, sha = text.strip(), None
    pin = _PIN.search(body)
    if pin:
        sha = pin.group("sha").lower()
        if len(sha) != 64:
            raise UsageError(f"weights reference {text!r}: #sha256= needs 64 hexadecimal digits")
        body = body[:pin.start()]
    if not body:
        raise UsageError(f"empty weights reference {text!r}; use {REF_FORMS}")
    if body.startswith("timm:"):
        name = body[len("timm:"):]
        if not name:
            raise UsageError(f"weights reference {text!r} names no timm model, e.g. timm:vit_base_patch16_224.mae")
        return WeightsRef(text, "timm", sha, name=name)
    if body.startswith("hf://"):
        match = _HF.fullmatch(body)
        if not match:
            raise UsageError(f"weights reference {text!r} is not hf://<org>/<repo>/<path/in/repo>[@<revision>]")
        return WeightsRef(text, "hf", sha, repo_id=match["repo_id"], filename=match["filename"],
                          revision=match["revision"])
    if body.startswith("run:"):
        match = _RUN.fullmatch(body)
        if not match:
            raise UsageError(f"weights reference {text!r} is not run:<run_id>[/fold-<k>]")
        return WeightsRef(text, "run", sha, run_id=match["run_id"],
                          fold=None if match["fold"] is None else int(match["fold"]))
    if re.match(r"[a-z][a-z0-9+.-]*://", body):
        raise UsageError(f"weights reference {text!r}: unknown scheme; use {REF_FORMS}")
    return WeightsRef(text, "file", sha, path=body)


@dataclass(frozen=True, kw_only=True)
class ResolvedWeights:
    """A weights reference resolved to a local file, with what identifies that file."""

    ref: str                  # as written
    kind: str                 # timm, hf, file or run
    path: Path                # local file (in the Hugging Face cache for timm/hf)
    sha256: str
    size: int                 # bytes
    revision: str | None      # Hub commit hash (timm/hf), else None
    filename: str             # file name (path inside the Hub repository for timm/hf)
    repo_id: str | None       # Hub repository (timm/hf), else None
    pinned: str               # a reference naming exactly this file: commit/fold and hash included

    def to_json(self) -> dict[str, Any]:
        """Plain-type form, as recorded with a run."""
        return {**asdict(self), "path": str(self.path)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedWeights:
        """The inverse of :meth:`to_json`."""
        return cls(**{**data, "path": Path(data["path"])})


def resolve(ref: str, *, store: Store | None = None) -> ResolvedWeights:
    """Resolve ``ref`` to a local file, downloading Hub files into the cache, and check its pinned hash.

    ``store`` is the results database that ``run:`` references look in (default: ferbench's database).
    """
    parsed = parse_ref(ref)
    recorded_sha = None
    repo_id = revision = None
    if parsed.kind in ("timm", "hf"):
        from .hub import download

        if parsed.kind == "timm":
            repo_id, revision, filenames = _cached_timm_source(parsed.name or "") or timm_source(parsed.name or "")
        else:
            repo_id, revision, filenames = parsed.repo_id, parsed.revision, [parsed.filename or ""]
        hub_file = download(repo_id or "", filenames, revision, ref)
        path, filename, revision = hub_file.path, hub_file.filename, hub_file.commit
        pinned = f"hf://{repo_id}/{filename}@{revision}"
    elif parsed.kind == "file":
        path = Path(parsed.path or "").expanduser().absolute()
        if not path.is_file():
            raise FerbenchError(f"weights file {path} does not exist (reference {ref!r}); use {REF_FORMS}")
        filename, pinned = path.name, str(path)
    else:
        fold, path, recorded_sha = _kept_fold(parsed, store)
        filename, pinned = path.name, f"run:{parsed.run_id}/fold-{fold}"
    sha = file_sha256(path)
    if recorded_sha and sha != recorded_sha:
        raise FerbenchError(f"weights {ref}: {path} has sha256 {sha}, but the run recorded {recorded_sha} when it kept "
                            "them; the file was changed after the run")
    if parsed.sha256 and sha != parsed.sha256:
        raise FerbenchError(f"weights {ref}: {path} has sha256 {sha}, but the reference pins {parsed.sha256}; the file "
                            "changed (or the pin is wrong): refusing it")
    return ResolvedWeights(ref=ref, kind=parsed.kind, path=path, sha256=sha, size=path.stat().st_size,
                           revision=revision, filename=filename, repo_id=repo_id, pinned=f"{pinned}#sha256={sha}")


def timm_source(name: str) -> tuple[str, str | None, list[str]]:
    """(Hub repository, revision, file names to try in order) of timm's pretrained weights ``name``."""
    import timm
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError as exc:
        tags = timm.list_pretrained(name.split(".")[0] + ".*")
        raise FerbenchError(f"weights timm:{name}: {exc} Pretrained tags: {', '.join(tags) or 'none'}") from None
    if cfg is None:
        close = difflib.get_close_matches(name, timm.list_pretrained(), n=3)
        raise FerbenchError(f"weights timm:{name}: timm {timm.__version__} has no pretrained model of that name"
                            + (f"; did you mean {', '.join(close)}?" if close else ""))
    if not cfg.hf_hub_id:
        raise FerbenchError(f"weights timm:{name}: timm hosts these weights outside the Hugging Face Hub "
                            f"({cfg.url or cfg.file}); download the file and pass its path")
    repo_id, _, revision = cfg.hf_hub_id.partition("@")
    filename = cfg.hf_hub_filename or "pytorch_model.bin"
    twin = _SAFETENSORS_TWINS.get(filename) or (filename[:-4] + ".safetensors" if filename.endswith(".bin") else None)
    return repo_id, revision or None, [twin, filename] if twin else [filename]


def _cached_timm_source(name: str) -> tuple[str, str | None, list[str]] | None:
    """Where timm's weights of ``name`` sit in the Hub cache when the Hub cannot be asked: ``timm/<name>``
    for a name with an explicit tag (timm hosts every tagged model there), so an offline machine finds
    cached weights, or fails, in a second, without importing timm (and torch) to read its config."""
    from .hub import hub_settings, unreachable_reason

    if "." not in name or unreachable_reason(hub_settings()) is None:
        return None
    return f"timm/{name}", None, ["model.safetensors", "pytorch_model.bin"]


def _kept_fold(ref: WeightsRef, store: Store | None) -> tuple[int, Path, str | None]:
    from .store import Store

    store = store or Store()
    text = ref.text
    if not store.query("SELECT 1 FROM runs WHERE run_id = ?", [ref.run_id]):
        raise FerbenchError(f"weights {text}: no run {ref.run_id} in {store.path}; `ferbench runs` lists the runs")
    rows = store.query("SELECT fold, weights_path, weights_sha256 FROM folds WHERE run_id = ? AND status = 'completed' "
                       "AND weights_path IS NOT NULL ORDER BY fold", [ref.run_id])
    if not rows:
        raise FerbenchError(f"weights {text}: run {ref.run_id} kept no weights (no completed fold saved any; "
                            "train.keep_weights may have been false)")
    choices = ", ".join(f"run:{ref.run_id}/fold-{row['fold']}" for row in rows)
    if ref.fold is None and len(rows) > 1:
        raise FerbenchError(f"weights {text}: run {ref.run_id} kept weights for {len(rows)} folds; name one: {choices}")
    row = rows[0] if ref.fold is None else next((r for r in rows if r["fold"] == ref.fold), None)
    if row is None:
        raise FerbenchError(f"weights {text}: run {ref.run_id} kept no weights for fold {ref.fold}; choices: {choices}")
    path = kept_path(store, row["weights_path"])
    if not path.is_file():
        raise FerbenchError(f"weights {text}: the kept file {path} of run {ref.run_id} fold {row['fold']} is gone")
    return row["fold"], path, row["weights_sha256"]


def kept_folds(run_id: str, store: Store | None = None) -> list[int]:
    """The folds of ``run_id`` that kept weights."""
    from .store import Store

    store = store or Store()
    if not store.path.exists():
        return []
    return [row["fold"] for row in store.query("SELECT fold FROM folds WHERE run_id = ? AND status = 'completed' "
                                               "AND weights_path IS NOT NULL ORDER BY fold", [run_id])]


def resolve_per_fold(ref: str, store: Store | None = None) -> dict[int, ResolvedWeights] | None:
    """For ``run:<id>`` naming no fold of a run that kept several: each fold's weights, by fold (a
    fine-tune or an evaluation then uses fold k's weights on its own fold k). None for any other reference."""
    parsed = parse_ref(ref)
    if parsed.kind != "run" or parsed.fold is not None:
        return None
    folds = kept_folds(parsed.run_id or "", store)
    if len(folds) < 2:
        return None
    if parsed.sha256:
        raise UsageError(f"weights reference {ref!r} pins a hash but names no fold of a run that kept {len(folds)}: "
                         f"name the fold, e.g. run:{parsed.run_id}/fold-{folds[0]}#sha256=...")
    return {fold: resolve(f"run:{parsed.run_id}/fold-{fold}", store=store) for fold in folds}


def source_run(ref: str) -> str | None:
    """The run a ``run:`` reference names (None for other references)."""
    parsed = parse_ref(ref)
    return parsed.run_id if parsed.kind == "run" else None


def kept_path(store: Store, stored: str) -> Path:
    """A fold's kept weights file: the recorded path, relative to the database's artifacts folder unless absolute."""
    path = Path(stored).expanduser()
    return path if path.is_absolute() else store.artifacts_dir / path


def kept_run_weights(store: Store) -> list[dict[str, Any]]:
    """Every fold whose weights a run kept: run, method, dataset, protocol, fold, path, sha256 and its reference."""
    if not store.path.exists():
        return []
    rows = store.query(
        "SELECT r.run_id, r.method, r.dataset, r.protocol, r.status, f.fold, f.weights_path, f.weights_sha256 "
        "FROM folds f JOIN runs r USING (run_id) WHERE f.weights_path IS NOT NULL ORDER BY r.started_at, f.fold")
    return [{**row, "weights_path": str(kept_path(store, row["weights_path"])),
             "ref": f"run:{row['run_id']}/fold-{row['fold']}"} for row in rows]
