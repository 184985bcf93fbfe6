"""``ferbench weights``: pull, list, push and convert weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .errors import FerbenchError

_DB_OPTION = click.option("--db", help="Results database (default: $FERBENCH_DB or ~/.ferbench/ferbench.duckdb).")
_JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


def _print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str))


def _size(num_bytes: int) -> str:
    return f"{num_bytes / 2**20:.1f} MiB" if num_bytes >= 2**20 else f"{num_bytes} B"


@click.group("weights")
def weights() -> None:
    """Fetch, list, share and convert weights (references: timm:NAME, hf://ORG/REPO/PATH[@REV], a file,
    run:RUN_ID[/fold-K]; any may end in #sha256=HEX)."""


@weights.command("pull")
@click.argument("ref")
@_DB_OPTION
@_JSON_OPTION
def pull(ref: str, db: str | None, as_json: bool) -> None:
    """Download REF into the Hugging Face cache (or find it there) and print its path, size, revision and SHA-256."""
    from .store import Store
    from .weights import resolve

    resolved = resolve(ref, store=Store(db))
    if as_json:
        _print_json(resolved.to_json())
        return
    click.echo(f"path:     {resolved.path}")
    click.echo(f"size:     {_size(resolved.size)} ({resolved.size} bytes)")
    click.echo(f"revision: {resolved.revision or '-'}")
    click.echo(f"sha256:   {resolved.sha256}")
    click.echo(f"pinned:   {resolved.pinned}")


@weights.command("list")
@_DB_OPTION
@_JSON_OPTION
def list_weights(db: str | None, as_json: bool) -> None:
    """Weights files in the Hugging Face cache, and the folds whose weights runs kept."""
    from .hub import cached_weight_files, hub_settings
    from .store import Store
    from .weights import kept_run_weights

    store = Store(db)
    cached, kept = cached_weight_files(), kept_run_weights(store)
    if as_json:
        _print_json({"cache_dir": str(hub_settings().cache_dir), "cache": cached, "database": str(store.path),
                     "runs": kept})
        return
    click.echo(f"Hugging Face cache {hub_settings().cache_dir}:" + ("" if cached else " no weights files"))
    for entry in cached:
        refs = f" ({', '.join(entry['refs'])})" if entry["refs"] else ""
        click.echo(f"  {entry['ref']}{refs}  {_size(entry['size'])}")
    click.echo(f"runs in {store.path}:" + ("" if kept else " none kept weights"))
    for row in kept:
        click.echo(f"  {row['ref']:<36} {row['method']} on {row['dataset']}/{row['protocol']}  "
                   f"sha256 {row['weights_sha256']}  {row['weights_path']}")


@weights.command("push")
@click.argument("run_id")
@click.option("--repo", "repo_id", required=True, metavar="ORG/NAME", help="Hub model repository (created if missing).")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--revision", help="Branch to commit to (created if missing; default: main).")
@_DB_OPTION
@_JSON_OPTION
def push(run_id: str, repo_id: str, private: bool, revision: str | None, db: str | None, as_json: bool) -> None:
    """Upload RUN_ID's kept weights (per fold), its effective config and a model card to a Hub repository."""
    from .publish import push_run
    from .store import Store

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise FerbenchError(f"--repo {repo_id!r} is not ORG/NAME")
    result = push_run(run_id, repo_id, private=private, revision=revision, store=Store(db))
    if as_json:
        _print_json({"repo_id": result.repo_id, "url": result.url, "files": result.files})
        return
    click.echo(f"pushed run {run_id} to {result.url}: {', '.join(result.files)}")


@weights.command("convert")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--from-pickle", is_flag=True,
              help="SRC is a pickled model or checkpoint (e.g. HSEmotion's enet_b2_7.pt); needs --trust-pickle.")
@click.option("--trust-pickle", is_flag=True,
              help="Allow unpickling SRC, which runs code the file names: only for files from a source you trust.")
def convert(src: Path, dst: Path, from_pickle: bool, trust_pickle: bool) -> None:
    """Re-save the state dict of SRC as a safetensors file DST."""
    from .convert import pickled_state_dict
    from .weights import read_state_dict, save_state_dict

    if from_pickle and not trust_pickle:
        raise FerbenchError(f"unpickling {src} runs code from the file; add --trust-pickle if you trust its source")
    state = pickled_state_dict(src) if from_pickle else read_state_dict(src)
    sha = save_state_dict(state, dst)
    click.echo(f"wrote {len(state)} tensors to {dst} (sha256 {sha}); use it as {dst.absolute()}#sha256={sha}")
