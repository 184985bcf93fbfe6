"""Hugging Face Hub access for weights: downloads through huggingface-hub's cache, failing fast offline.

huggingface-hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE`` once, when it is imported;
ferbench reads them again at each call (so a test or a plugin that sets them later is honoured) and
passes them explicitly. Before any request, a short TCP probe of the endpoint (or of the proxy that
reaches it) decides whether the Hub is reachable: when it is not, the file comes from the cache only,
instead of huggingface-hub's ~30 s of retries.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from .errors import FerbenchError

#: Seconds the reachability probe may take (DNS look-up and TCP connect together).
PROBE_TIMEOUT_S = 3.0
#: Where a connected machine keeps the files ``ferbench weights pull`` fetched.
CACHE_HINT = "$HF_HUB_CACHE, by default ~/.cache/huggingface/hub"


@dataclass(frozen=True)
class HubSettings:
    """Hub endpoint, cache folder and offline switch, as the environment says now."""

    endpoint: str
    cache_dir: Path
    offline: bool


def hub_settings() -> HubSettings:
    """Current ``HF_ENDPOINT``, ``HF_HUB_CACHE`` (or ``HF_HOME``/hub) and ``HF_HUB_OFFLINE``."""
    from huggingface_hub import constants

    env = os.environ
    if env.get("HF_HUB_CACHE"):
        cache = Path(env["HF_HUB_CACHE"])
    elif env.get("HF_HOME"):
        cache = Path(env["HF_HOME"]) / "hub"
    else:
        cache = Path(constants.HF_HUB_CACHE)
    offline_flag = env.get("HF_HUB_OFFLINE") or env.get("TRANSFORMERS_OFFLINE") or ""
    offline = offline_flag.strip().upper() in {"1", "ON", "YES", "TRUE"} or constants.is_offline_mode()
    endpoint = (env.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    return HubSettings(endpoint=endpoint, cache_dir=cache.expanduser(), offline=offline)


#: How long a probe's answer is reused within a process (resolving several references probes once).
PROBE_REUSE_S = 10.0
_probes: dict[HubSettings, tuple[float, str | None]] = {}


def unreachable_reason(settings: HubSettings, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """Why the Hub cannot be asked now (offline mode, no connection), or None when it can; a probe's
    answer is reused for :data:`PROBE_REUSE_S` seconds."""
    now = time.monotonic()
    if settings in _probes and now - _probes[settings][0] < PROBE_REUSE_S:
        return _probes[settings][1]
    reason = _probe(settings, timeout)
    _probes[settings] = (now, reason)
    return reason


def _probe(settings: HubSettings, timeout: float) -> str | None:
    if settings.offline:
        return "HF_HUB_OFFLINE is set"
    parts = urlsplit(settings.endpoint)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or 80
    return None if _can_connect(host, port, timeout) else f"{host}:{port} is unreachable"


def _can_connect(host: str, port: int, timeout: float) -> bool:
    # A thread bounds the DNS look-up too, which socket timeouts do not cover.
    done = threading.Event()
    outcome: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(True)
        except OSError:
            outcome.append(False)
        finally:
            done.set()

    threading.Thread(target=probe, name="ferbench-hub-probe", daemon=True).start()
    return done.wait(timeout) and outcome == [True]


@dataclass(frozen=True)
class HubFile:
    """A file of a Hub repository, in the local cache."""

    path: Path
    repo_id: str
    filename: str
    commit: str


def download(repo_id: str, filenames: Sequence[str], revision: str | None, ref: str) -> HubFile:
    """The first of ``filenames`` that ``repo_id`` holds at ``revision``, downloaded into (or found in) the cache.

    ``ref`` is the weights reference the user wrote; error messages quote it.
    """
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    settings = hub_settings()
    reason = unreachable_reason(settings)
    for filename in filenames:
        try:
            path = _hf_hub_download(repo_id, filename, revision, settings, local_only=reason is not None)
        except (EntryNotFoundError, LocalEntryNotFoundError) as exc:
            if isinstance(exc, LocalEntryNotFoundError) and reason is None:
                raise _hub_error(exc, repo_id, filename, revision) from None
            continue
        except Exception as exc:  # noqa: BLE001 - every Hub failure becomes one line
            raise _hub_error(exc, repo_id, filename, revision) from None
        return HubFile(path=Path(path), repo_id=repo_id, filename=filename, commit=_snapshot_commit(Path(path), filename))
    wanted = " or ".join(filenames)
    at = f" at revision {revision}" if revision else ""
    if reason is not None:
        raise FerbenchError(
            f"weights {ref} ({repo_id}/{wanted}{at}) are not in the Hugging Face cache {settings.cache_dir} and the Hub "
            f"cannot be asked ({reason}); on a connected machine run `ferbench weights pull {ref}`, then copy its cache "
            f"folder ({CACHE_HINT}) to {settings.cache_dir} here, or point HF_HUB_CACHE at the copy")
    raise FerbenchError(f"weights {ref}: {repo_id}{at} has no file {wanted} on {settings.endpoint}; "
                        "check the path in the repository")


def _hf_hub_download(repo_id: str, filename: str, revision: str | None, settings: HubSettings,
                     local_only: bool) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id, filename, revision=revision, cache_dir=settings.cache_dir,
                           endpoint=settings.endpoint, local_files_only=local_only)


def _snapshot_commit(path: Path, filename: str) -> str:
    # The cache keeps files at <repo folder>/snapshots/<commit>/<filename>.
    return path.parents[len(Path(filename).parts) - 1].name


def _hub_error(exc: Exception, repo_id: str, filename: str, revision: str | None) -> FerbenchError:
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id}/{filename}" + (f"@{revision}" if revision else "")
    if isinstance(exc, GatedRepoError):
        return FerbenchError(f"{where}: the repository is gated; accept its terms on the Hub and log in "
                             "(`hf auth login` or HF_TOKEN)")
    if isinstance(exc, RepositoryNotFoundError):
        return FerbenchError(f"{where}: no such repository (or it is private: log in with `hf auth login` or set HF_TOKEN)")
    if isinstance(exc, RevisionNotFoundError):
        return FerbenchError(f"{where}: the repository has no revision {revision!r}")
    if isinstance(exc, LocalEntryNotFoundError):
        return FerbenchError(f"{where}: the Hub did not answer and the file is not cached ({_first_line(exc)})")
    if isinstance(exc, HfHubHTTPError):
        return FerbenchError(f"{where}: the Hub refused the download ({_first_line(exc)})")
    return FerbenchError(f"{where}: download failed ({exc.__class__.__name__}: {_first_line(exc)})")


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0].strip() if lines else exc.__class__.__name__


#: Suffixes of files ``ferbench weights list`` reports from the cache.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def cached_weight_files() -> list[dict[str, Any]]:
    """Weights files in the Hugging Face cache: repo, commit, refs, file, size, path and an ``hf://`` reference."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    settings = hub_settings()
    try:
        info = scan_cache_dir(settings.cache_dir)
    except CacheNotFound:
        return []
    entries = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for revision in repo.revisions:
            for file in revision.files:
                relative = file.file_path.relative_to(revision.snapshot_path).as_posix()
                if not relative.endswith(WEIGHT_SUFFIXES):
                    continue
                entries.append({"repo_id": repo.repo_id, "commit": revision.commit_hash, "refs": sorted(revision.refs),
                                "filename": relative, "size": file.size_on_disk, "path": str(file.file_path),
                                "ref": f"hf://{repo.repo_id}/{relative}@{revision.commit_hash}"})
    return sorted(entries, key=lambda e: (e["repo_id"], e["filename"], e["commit"]))


def hf_api() -> Any:
    """An ``HfApi`` client for the current endpoint (token from huggingface-hub's usual places)."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=hub_settings().endpoint)
