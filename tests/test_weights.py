"""Weights references, the Hub download path (against a stand-in Hub on 127.0.0.1), loading and adapters, push."""
from __future__ import annotations

import hashlib
import http.server
import io
import json
import socket
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import timm
import torch
import yaml
from click.testing import CliRunner
from torch import nn

from conftest import assert_one_line_error, ferbench
from ferbench.errors import FerbenchError, UsageError
from ferbench.store import Store
from ferbench.weights import load_weights, parse_ref, read_state_dict, resolve, save_state_dict
from ferbench.weights_cli import weights as weights_cli


# --- a stand-in for the Hugging Face Hub -------------------------------------------------------
class StandInHub:
    """Answers the HEAD and GET ``/<repo>/resolve/<revision>/<file>`` requests of ``hf_hub_download``.

    Each file is served like an LFS file of the real Hub: ``X-Repo-Commit``, its SHA-256 as ``ETag``,
    ``Content-Length``; no Xet headers, so huggingface-hub downloads over plain HTTP.
    """

    def __init__(self) -> None:
        self.refs: dict[tuple[str, str], str] = {}          # (repo, branch) -> commit
        self.files: dict[tuple[str, str, str], bytes] = {}  # (repo, commit, file) -> content
        self.requests: list[tuple[str, str]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, repo_id: str, filename: str, content: bytes, branch: str = "main") -> str:
        """Commit ``content`` as ``filename`` on ``branch``; returns the commit hash."""
        commit = hashlib.sha1(f"{repo_id}/{branch}/{filename}/{len(self.files)}".encode()).hexdigest()
        for (repo, old_commit, name), data in list(self.files.items()):
            if repo == repo_id and old_commit == self.refs.get((repo_id, branch)):
                self.files[(repo, commit, name)] = data
        self.refs[(repo_id, branch)] = commit
        self.files[(repo_id, commit, filename)] = content
        return commit

    def _answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        parts = path.lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        repo_id, revision, filename = "/".join(parts[:2]), unquote(parts[3]), unquote("/".join(parts[4:]))
        if not any(repo == repo_id for repo, _ in self.refs):
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        commits = {commit for (repo, _), commit in self.refs.items() if repo == repo_id}
        commit = self.refs.get((repo_id, revision), revision if revision in commits else None)
        if commit is None:
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        content = self.files.get((repo_id, commit, filename))
        if content is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b""
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(content).hexdigest()}"',
                     "Content-Length": str(len(content))}, content

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _reply(self, with_body: bool) -> None:
                hub.requests.append((self.command, self.path))
                status, headers, body = hub._answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", "0")
                self.end_headers()
                if with_body and status == 200:
                    self.wfile.write(body)

            def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
                self._reply(with_body=False)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(with_body=True)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> StandInHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fb_env: dict[str, str]) -> Any:
    """A running stand-in Hub, with HF_ENDPOINT pointed at it and an empty cache under tmp_path."""
    with StandInHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        yield server


TENSORS = {"layer.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3), "layer.bias": torch.ones(2)}


def _safetensors_bytes(tmp_path: Path, state: dict[str, torch.Tensor] = TENSORS) -> bytes:
    path = tmp_path / "built.safetensors"
    save_state_dict(state, path)
    return path.read_bytes()


def _one_line(exc: pytest.ExceptionInfo[BaseException], *fragments: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    assert all(fragment in message for fragment in fragments), message
    return message


def _refused(ref: str, *fragments: str, store: Store | None = None) -> str:
    """Resolving ``ref`` fails with one line holding ``fragments``."""
    with pytest.raises(FerbenchError) as exc:
        resolve(ref, store=store)
    return _one_line(exc, *fragments)


# --- references --------------------------------------------------------------------------------
def test_references_parse_into_their_parts() -> None:
    sha = "ab" * 32
    hf = parse_ref(f"hf://org/repo/sub/model.safetensors@v1.0#sha256={sha.upper()}")
    assert (hf.kind, hf.repo_id, hf.filename, hf.revision, hf.sha256) == ("hf", "org/repo", "sub/model.safetensors", "v1.0", sha)
    assert parse_ref("hf://org/repo/model.bin").revision is None
    assert (parse_ref("timm:vit_base_patch16_224.mae").name, parse_ref("run:abc/fold-3").fold) == ("vit_base_patch16_224.mae", 3)
    assert parse_ref("run:abc").fold is None and parse_ref("~/w.pt").kind == "file"
    for bad in ("hf://org/model.bin", "timm:", "run:a/fold-x", "https://x.org/w.pt", "w.pt#sha256=12", ""):
        with pytest.raises(UsageError):
            parse_ref(bad)


# --- the Hub path ------------------------------------------------------------------------------
def test_pull_records_revision_commit_size_and_sha256(hub: StandInHub, tmp_path: Path) -> None:
    content = _safetensors_bytes(tmp_path)
    commit = hub.add("org/tiny", "weights/model.safetensors", content, branch="v1")
    resolved = resolve("hf://org/tiny/weights/model.safetensors@v1")
    sha = hashlib.sha256(content).hexdigest()
    assert (resolved.revision, resolved.sha256, resolved.size) == (commit, sha, len(content))
    assert (resolved.kind, resolved.repo_id, resolved.filename) == ("hf", "org/tiny", "weights/model.safetensors")
    assert resolved.path.is_relative_to(tmp_path / "hf-cache") and resolved.path.read_bytes() == content
    assert resolved.pinned == f"hf://org/tiny/weights/model.safetensors@{commit}#sha256={sha}"
    assert [method for method, _ in hub.requests] == ["HEAD", "GET"]
    assert all(torch.equal(read_state_dict(resolved.path)[k], v) for k, v in TENSORS.items())
    assert resolve(resolved.pinned).path == resolved.path          # the pinned form names the same file


def test_wrong_pinned_hash_is_refused_with_both_hashes(hub: StandInHub, tmp_path: Path) -> None:
    content = _safetensors_bytes(tmp_path)
    hub.add("org/tiny", "model.safetensors", content)
    _refused("hf://org/tiny/model.safetensors#sha256=" + "0" * 64, hashlib.sha256(content).hexdigest(), "0" * 64,
             "refusing")


def test_missing_file_repo_and_revision_are_one_line_errors(hub: StandInHub, tmp_path: Path) -> None:
    hub.add("org/tiny", "model.safetensors", _safetensors_bytes(tmp_path))
    _refused("hf://org/tiny/other.safetensors", "org/tiny", "has no file other.safetensors")
    _refused("hf://org/nothing/model.safetensors", "no such repository")
    _refused("hf://org/tiny/model.safetensors@v9", "no revision 'v9'")


def test_offline_with_an_empty_cache_fails_at_once_without_asking_the_hub(
        hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add("org/tiny", "model.safetensors", _safetensors_bytes(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _refused("hf://org/tiny/model.safetensors", "org/tiny/model.safetensors", "HF_HUB_OFFLINE is set",
             "ferbench weights pull hf://org/tiny/model.safetensors", "~/.cache/huggingface/hub", "HF_HUB_CACHE")
    assert hub.requests == []


def test_an_unreachable_endpoint_fails_fast(hub: StandInHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    started = time.monotonic()
    _refused("hf://org/tiny/model.safetensors", "is unreachable", "ferbench weights pull hf://org/tiny/model.safetensors")
    assert time.monotonic() - started < 10     # huggingface-hub alone retries for about 25 s


def test_a_cached_file_resolves_offline_and_unreachable(
        hub: StandInHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add("org/tiny", "model.safetensors", _safetensors_bytes(tmp_path))
    online = resolve("hf://org/tiny/model.safetensors")
    asked = len(hub.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = resolve("hf://org/tiny/model.safetensors")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    unreachable = resolve(f"hf://org/tiny/model.safetensors@{online.revision}")
    assert online == offline and unreachable.path == online.path and unreachable.sha256 == online.sha256
    assert len(hub.requests) == asked


def test_timm_reference_uses_the_pretrained_cfg_and_falls_back_to_pytorch_model_bin(
        hub: StandInHub, tmp_path: Path) -> None:
    model = timm.create_model("test_vit", img_size=32, patch_size=8)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    hub.add("timm/test_vit.r160_in1k", "pytorch_model.bin", buffer.getvalue())
    resolved = resolve("timm:test_vit.r160_in1k")
    assert (resolved.kind, resolved.repo_id, resolved.filename) == ("timm", "timm/test_vit.r160_in1k", "pytorch_model.bin")
    assert [path.rsplit("/", 1)[1] for _, path in hub.requests] == ["model.safetensors", "pytorch_model.bin",
                                                                    "pytorch_model.bin"]
    assert set(read_state_dict(resolved.path)) == set(model.state_dict())
    _refused("timm:test_vit.nonsense", "test_vit.r160_in1k")


def test_cli_pull_prints_path_revision_and_hash(hub: StandInHub, tmp_path: Path, fb_env: dict[str, str]) -> None:
    content = _safetensors_bytes(tmp_path)
    commit = hub.add("org/tiny", "model.safetensors", content)
    env = {**fb_env, "HF_ENDPOINT": hub.url, "HF_HUB_CACHE": str(tmp_path / "hf-cache"),
           "HF_HOME": str(tmp_path / "hf-home"), "NO_PROXY": "127.0.0.1"}
    shown = json.loads(ferbench("weights", "pull", "hf://org/tiny/model.safetensors", "--json", env=env).stdout)
    assert (shown["revision"], shown["sha256"], shown["size"]) == (commit, hashlib.sha256(content).hexdigest(), len(content))
    assert Path(shown["path"]).read_bytes() == content
    text = ferbench("weights", "pull", "hf://org/tiny/model.safetensors", env={**env, "HF_HUB_OFFLINE": "1"}).stdout
    assert commit in text and shown["sha256"] in text and shown["path"] in text
    missing = ferbench("weights", "pull", "hf://org/tiny/absent.safetensors", env={**env, "HF_HUB_OFFLINE": "1"},
                       check=False)
    assert_one_line_error(missing, "ferbench weights pull hf://org/tiny/absent.safetensors", "HF_HUB_CACHE")


# --- run: references ---------------------------------------------------------------------------
def _record_run(store: Store, run_id: str, kept: dict[int, str | Path], status: str = "completed",
                sha: dict[int, str] | None = None) -> None:
    """A run row and one completed fold row per entry of ``kept`` (fold -> weights path), as the runner writes them."""
    store.insert_run({"run_id": run_id, "method": "vit-baseline", "dataset": "synthfer", "protocol": "subject-5fold",
                      "preset": "tiny", "seed": 1, "config": {"model": {"depth": 2}, "train": {"epochs": 2}},
                      "manifest_hash": "m" * 16, "selection_rule": "final", "selected_on_test": False,
                      "val_rule": None, "versions": {"ferbench": "0.1.0", "torch": torch.__version__},
                      "git_commit": "c0ffee", "command": "ferbench run --method vit-baseline", "status": status,
                      "folds": sorted(kept), "weights": {"model.weights": {
                          "ref": "timm:test_vit.r160_in1k", "repo_id": "timm/test_vit.r160_in1k",
                          "pinned": "hf://timm/test_vit.r160_in1k/model.safetensors@abc#sha256=" + "1" * 64}}})
    with store.connect() as con:
        for fold, path in kept.items():
            digest = (sha or {}).get(fold) or hashlib.sha256(kept_file(store, path).read_bytes()).hexdigest()
            con.execute("INSERT INTO folds (run_id, fold, status, selected_epoch, weights_path, weights_sha256) "
                        "VALUES (?, ?, 'completed', ?, ?, ?)", [run_id, fold, 2 + fold, str(path), digest])


def kept_file(store: Store, path: str | Path) -> Path:
    return Path(path) if Path(path).is_absolute() else store.artifacts_dir / path


def _keep(store: Store, relative: str, state: dict[str, torch.Tensor] = TENSORS) -> str:
    save_state_dict(state, store.artifacts_dir / relative)
    return relative


def test_run_references_resolve_a_kept_fold(fb_env: dict[str, str]) -> None:
    store = Store()
    _record_run(store, "one", {0: _keep(store, "one/fold-0.safetensors")})
    _record_run(store, "two", {0: _keep(store, "two/fold-0.safetensors"),
                               1: store.artifacts_dir / _keep(store, "two/fold-1.safetensors", {"w": torch.zeros(3)})})
    single = resolve("run:one")
    assert single.path == store.artifacts_dir / "one/fold-0.safetensors" and single.kind == "run"
    assert single.pinned == f"run:one/fold-0#sha256={single.sha256}"
    assert set(read_state_dict(resolve("run:two/fold-1").path)) == {"w"}
    _refused("run:two", "run:two/fold-0, run:two/fold-1")
    _refused("run:two/fold-4", "fold 4")
    _refused("run:nobody", "no run nobody")
    _record_run(store, "none", {})
    _refused("run:none", "kept no weights")


def test_run_reference_refuses_kept_weights_changed_after_the_run(fb_env: dict[str, str]) -> None:
    store = Store()
    _record_run(store, "r", {0: _keep(store, "r/fold-0.safetensors")}, sha={0: "f" * 64})
    _refused("run:r", "f" * 64, "changed after the run")


# --- reading state dicts -----------------------------------------------------------------------
def test_pt_file_holding_a_pickled_object_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"model": nn.Linear(2, 2)}, path)
    with pytest.raises(FerbenchError) as exc:
        read_state_dict(path)
    _one_line(exc, "not a plain state dict", "never unpickles", "torch.nn.modules.linear.Linear")


def test_pt_state_dicts_load_and_containers_are_unwrapped(tmp_path: Path) -> None:
    for name, payload in (("plain.pth", TENSORS), ("nested.pt", {"model": TENSORS, "epoch": 3}),
                          ("lightning.bin", {"state_dict": TENSORS, "optimizer": {"lr": 0.1}})):
        torch.save(payload, tmp_path / name)
        loaded = read_state_dict(tmp_path / name)
        assert set(loaded) == set(TENSORS) and all(torch.equal(loaded[k], v) for k, v in TENSORS.items())
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(FerbenchError) as exc:
        read_state_dict(tmp_path / "empty.pt")
    _one_line(exc, "holds no state dict")


# --- loading into modules ----------------------------------------------------------------------
def _mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_load_weights_reports_by_name_and_enforces_min_fraction() -> None:
    source = _mlp().state_dict()
    source["extra.weight"] = torch.zeros(1)
    source["2.weight"] = torch.zeros(5, 4)            # another shape
    del source["2.bias"]
    target = _mlp()
    report = load_weights(target, source, min_fraction=0.5)
    assert report.loaded == ["0.bias", "0.weight"] and report.missing == ["2.bias"]
    assert report.unexpected == ["extra.weight"] and report.shape_mismatched == {"2.weight": ((5, 4), (2, 4))}
    assert report.fraction == 0.5 and torch.equal(target[0].weight, source["0.weight"])
    fresh = _mlp()
    before = fresh[0].weight.clone()
    with pytest.raises(FerbenchError) as exc:
        load_weights(fresh, source, min_fraction=0.9)
    _one_line(exc, "need 90%", "2.bias", "extra.weight")
    assert torch.equal(fresh[0].weight, before)     # nothing loaded when refused


def test_load_weights_prefix_takes_a_sub_module(tmp_path: Path) -> None:
    whole = nn.ModuleDict({"backbone": _mlp(), "head": nn.Linear(2, 2)})
    path = tmp_path / "whole.safetensors"
    save_state_dict(whole.state_dict(), path)
    part = _mlp()
    assert load_weights(part, path, prefix="backbone.").fraction == 1.0
    assert torch.equal(part[2].weight, whole["backbone"][2].weight)
    with pytest.raises(UsageError):
        load_weights(part, path, adapter="no-such-adapter")


def test_timm_adapter_loads_a_vit_checkpoint_at_another_image_size(tmp_path: Path) -> None:
    from timm.layers import resample_abs_pos_embed

    source = timm.create_model("test_vit", img_size=32, patch_size=8, num_classes=5)
    path = tmp_path / "vit.safetensors"
    save_state_dict(source.state_dict(), path)
    target = timm.create_model("test_vit", img_size=48, patch_size=8, num_classes=3)
    report = load_weights(target, path, adapter="timm")
    assert report.missing == ["head.weight", "head.bias"] and set(report.dropped) == {"head.weight", "head.bias"}
    assert report.unexpected == [] and report.shape_mismatched == {}
    expected = resample_abs_pos_embed(source.pos_embed.detach(), new_size=(6, 6), old_size=(4, 4), num_prefix_tokens=1)
    assert target.pos_embed.shape == (1, 37, 64) and torch.allclose(target.pos_embed, expected)
    assert torch.equal(target.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)


def test_mae_encoder_adapter_drops_decoder_and_the_final_norm_under_avg_pooling() -> None:
    encoder = timm.create_model("test_vit", img_size=32, patch_size=8, num_classes=0).state_dict()
    mae = {**encoder, "mask_token": torch.zeros(1, 1, 32), "decoder_embed.weight": torch.zeros(32, 64),
           "decoder_pos_embed": torch.zeros(1, 17, 32), "decoder_blocks.0.norm1.weight": torch.ones(32),
           "decoder_pred.weight": torch.zeros(192, 32)}
    target = timm.create_model("test_vit", img_size=32, patch_size=8, num_classes=7, global_pool="avg")
    report = load_weights(target, mae, adapter="mae-encoder")
    assert set(report.dropped) == {"mask_token", "decoder_embed.weight", "decoder_pos_embed",
                                   "decoder_blocks.0.norm1.weight", "decoder_pred.weight", "norm.weight", "norm.bias"}
    assert set(report.missing) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert any("fc_norm" in note for note in report.notes) and report.fraction == 76 / 80
    assert torch.equal(target.pos_embed, encoder["pos_embed"])
    with pytest.raises(FerbenchError) as exc:
        load_weights(target, encoder, adapter="mae")
    _one_line(exc, "no decoder", "mae-encoder")


def test_hsemotion_adapter_drops_the_affectnet_head_and_adapts_the_stem_to_depth() -> None:
    source = timm.create_model("test_efficientnet", num_classes=7).state_dict()
    target = timm.create_model("test_efficientnet", num_classes=3, in_chans=1)
    report = load_weights(target, source, adapter="hsemotion")
    assert set(report.dropped) == {"classifier.weight", "classifier.bias"} and report.shape_mismatched == {}
    assert torch.allclose(target.conv_stem.weight, source["conv_stem.weight"].sum(dim=1, keepdim=True))


def test_facenet_adapter_drops_the_identity_logits() -> None:
    class Embedder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.last_linear = nn.Linear(4, 3, bias=False)
            self.last_bn = nn.BatchNorm1d(3)

    source = {**Embedder().state_dict(), "logits.weight": torch.zeros(8631, 3), "logits.bias": torch.zeros(8631)}
    report = load_weights(Embedder(), source, adapter="facenet", min_fraction=1.0)
    assert set(report.dropped) == {"logits.weight", "logits.bias"} and report.unexpected == []


# --- convert -----------------------------------------------------------------------------------
def test_convert_unpickles_only_with_trust_and_writes_a_safetensors_state_dict(tmp_path: Path) -> None:
    model = _mlp()
    torch.save(model, tmp_path / "enet.pt")
    runner = CliRunner()
    refused = runner.invoke(weights_cli, ["convert", "--from-pickle", str(tmp_path / "enet.pt"), str(tmp_path / "o.safetensors")])
    assert isinstance(refused.exception, FerbenchError) and "--trust-pickle" in str(refused.exception)
    assert not (tmp_path / "o.safetensors").exists()
    done = runner.invoke(weights_cli, ["convert", "--from-pickle", "--trust-pickle", str(tmp_path / "enet.pt"),
                                       str(tmp_path / "o.safetensors")])
    assert done.exit_code == 0, done.output
    converted = read_state_dict(tmp_path / "o.safetensors")
    assert all(torch.equal(converted[k], v) for k, v in model.state_dict().items()) and len(converted) == 4
    assert hashlib.sha256((tmp_path / "o.safetensors").read_bytes()).hexdigest() in done.output


def test_convert_finds_classes_an_older_timm_kept_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferbench.convert import pickled_state_dict
    from timm.layers.activations import Swish

    old_home = types.ModuleType("timm.models.layers.activations")   # where timm < 0.9 defined Swish
    old_home.Swish = Swish
    monkeypatch.setitem(sys.modules, old_home.__name__, old_home)
    monkeypatch.setattr(Swish, "__module__", old_home.__name__)
    model = nn.Sequential(nn.Linear(2, 2), Swish())
    torch.save(model, tmp_path / "old.pt")
    monkeypatch.undo()
    assert old_home.__name__ not in sys.modules
    assert torch.equal(pickled_state_dict(tmp_path / "old.pt")["0.weight"], model[0].weight)


# --- list and push -----------------------------------------------------------------------------
def test_list_shows_cached_files_and_kept_run_weights(hub: StandInHub, tmp_path: Path) -> None:
    hub.add("org/tiny", "model.safetensors", _safetensors_bytes(tmp_path))
    pulled = resolve("hf://org/tiny/model.safetensors")
    store = Store()
    _record_run(store, "kept", {0: _keep(store, "kept/fold-0.safetensors")})
    listed = json.loads(CliRunner().invoke(weights_cli, ["list", "--json"]).output)
    assert [(e["ref"], e["refs"]) for e in listed["cache"]] == [(f"hf://org/tiny/model.safetensors@{pulled.revision}", ["main"])]
    assert [(r["ref"], r["weights_path"]) for r in listed["runs"]] == [
        ("run:kept/fold-0", str(store.artifacts_dir / "kept/fold-0.safetensors"))]


def _front_matter(readme: str) -> dict[str, Any]:
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_push_uploads_fold_weights_config_and_model_card(
        hub: StandInHub, monkeypatch: pytest.MonkeyPatch, fb_env: dict[str, str]) -> None:
    from huggingface_hub import HfApi

    store = Store()
    _record_run(store, "pushme", {0: _keep(store, "p/fold-0.safetensors"),
                                  1: _keep(store, "p/fold-1.safetensors", {"w": torch.ones(2)})})
    store.save_manifest("m" * 16, "synthfer", "subject-5fold", {"folds": [{}, {}, {}, {}, {}]})
    for fold, acc in ((0, 0.5), (1, 0.7)):
        store.save_fold_metrics("pushme", fold, {"accuracy": acc, "macro_f1": acc - 0.1})
    calls: dict[str, Any] = {}

    def upload_folder(self: HfApi, *, repo_id: str, folder_path: Path, revision: str | None, **kwargs: Any) -> None:
        folder = Path(folder_path)
        calls["upload"] = {"repo_id": repo_id, "revision": revision, "endpoint": self.endpoint,
                           "files": {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}}

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", (repo_id, kw)) and f"{self.endpoint}/{repo_id}")
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, branch, **kw: calls.setdefault("branch", branch))
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    pushed = CliRunner().invoke(weights_cli, ["push", "pushme", "--repo", "me/fer-vit", "--private", "--revision", "v1",
                                              "--json"])
    assert pushed.exit_code == 0, pushed.output
    assert calls["create"] == ("me/fer-vit", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["branch"] == "v1" and calls["upload"]["revision"] == "v1" and calls["upload"]["endpoint"] == hub.url
    files = calls["upload"]["files"]
    assert set(files) == {"fold-0/model.safetensors", "fold-1/model.safetensors", "config.json", "README.md"}
    assert files["fold-1/model.safetensors"] == (store.artifacts_dir / "p/fold-1.safetensors").read_bytes()
    assert json.loads(files["config.json"]) == {"model": {"depth": 2}, "train": {"epochs": 2}}
    meta = _front_matter(files["README.md"].decode())
    ((result,),) = [entry["results"] for entry in meta["model-index"]]
    assert {m["type"]: m["value"] for m in result["metrics"]} == pytest.approx({"accuracy": 60.0, "macro_f1": 50.0})
    assert (result["dataset"]["name"], result["dataset"]["config"], result["dataset"]["split"]) == (
        "synthfer", "subject-5fold", "test")
    assert result["dataset"]["args"] == {"manifest_hash": "m" * 16, "folds": [0, 1]}
    info = meta["ferbench"]
    assert (info["selection_rule"], info["manifest_hash"], info["versions"]["torch"]) == ("final", "m" * 16, torch.__version__)
    assert info["reproduce"] == ("ferbench run --method vit-baseline --dataset synthfer --protocol subject-5fold "
                                 "--preset tiny --seed 1 --config config.json")
    assert meta["base_model"] == ["timm/test_vit.r160_in1k"]
    assert [f["sha256"] for f in info["folds"]] == [hashlib.sha256(files[f"fold-{k}/model.safetensors"]).hexdigest()
                                                    for k in (0, 1)]
    body = files["README.md"].decode()
    assert "| accuracy | 60.00 | 14.14 | 50.00, 70.00 |" in body and "hf://me/fer-vit/fold-0/model.safetensors" in body
    assert json.loads(pushed.output)["files"] == sorted(files)


def test_push_refuses_unfinished_runs(fb_env: dict[str, str]) -> None:
    store = Store()
    _record_run(store, "halfway", {0: _keep(store, "h/fold-0.safetensors")}, status="interrupted")
    result = CliRunner().invoke(weights_cli, ["push", "halfway", "--repo", "me/x"])
    assert isinstance(result.exception, FerbenchError) and "not completed" in str(result.exception)


def test_an_older_database_gains_the_weights_columns(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:     # the tables as an older ferbench created them
        con.execute("CREATE TABLE runs (run_id VARCHAR PRIMARY KEY, status VARCHAR)")
        con.execute("CREATE TABLE folds (run_id VARCHAR, fold INTEGER, status VARCHAR, PRIMARY KEY (run_id, fold))")
        con.execute("INSERT INTO runs VALUES ('old', 'completed')")
    store = Store(path)
    assert store.query("SELECT weights FROM runs") == [{"weights": None}]
    _refused("run:old", "kept no weights", store=store)
