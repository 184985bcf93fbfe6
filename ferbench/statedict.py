"""State dicts: read them safely, save them as safetensors, and load them into a module through an adapter.

Reading never runs code from a file: safetensors first, PyTorch files only through
``torch.load(weights_only=True)``. An adapter turns a checkpoint's layout into the module's
(``(state_dict, module) -> state_dict``, or an :class:`Adapted` that also names what it dropped and why);
adapters register by name with :func:`register_adapter`. ferbench's core knows only ``exact``; the
built-in ones (timm, MAE, FaceNet, HSEmotion) live in ``ferbench_plugins.common.weight_adapters``,
imported the first time an unknown name is asked for.
"""
from __future__ import annotations

import hashlib
import logging
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Union

from .diskio import write_bytes
from .errors import FerbenchError, UsageError

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

#: Keys under which checkpoints commonly nest the state dict, tried in this order.
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model")
#: The module whose import registers the built-in adapters.
BUILTIN_ADAPTERS_MODULE = "ferbench_plugins.common.weight_adapters"
_HASH_CHUNK = 1 << 22


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes (memoised per path, size and modification time)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


_digests: dict[tuple[str, int, int], str] = {}


def _sha256(path: str, size: int, mtime_ns: int) -> str:
    key = (path, size, mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()
    return _digests[key]


# --- reading and saving ------------------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file: safetensors, or a PyTorch file loaded with ``weights_only=True``.

    Checkpoints nesting the state dict under ``state_dict``, ``model_state_dict`` or ``model`` are
    unwrapped. A PyTorch file holding pickled objects (a whole model, an argparse namespace) is refused.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FerbenchError(f"weights file {path} does not exist")
    if _is_safetensors(path):
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    return unwrap_state_dict(_torch_load_plain(path), str(path))


def _is_safetensors(path: Path) -> bool:
    # Layout: 8-byte little-endian header length, then a JSON header starting with "{".
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    (header_len,) = struct.unpack("<Q", head[:8])
    return head[8:9] == b"{" and header_len <= path.stat().st_size - 8


def _torch_load_plain(path: Path) -> Any:
    import pickle

    import torch

    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != b"PK\x03\x04" and magic[:1] != b"\x80":
        raise FerbenchError(f"{path} is neither a safetensors nor a PyTorch weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it refers to {found.group(1)})" if found else ""
        raise FerbenchError(
            f"{path} is not a plain state dict: it holds pickled Python objects{what}, and ferbench never unpickles "
            f"code; re-save it as a state dict (`ferbench weights convert --from-pickle --trust-pickle {path} OUT.safetensors` "
            "if you trust its source)") from None
    except (RuntimeError, EOFError) as exc:
        raise FerbenchError(f"{path} is not a readable PyTorch file: {str(exc).splitlines()[0]}") from None


def unwrap_state_dict(obj: Any, where: str) -> dict[str, torch.Tensor]:
    """The tensors of ``obj``, looking inside the usual checkpoint containers (``model``, ``state_dict``...)."""
    import torch

    while isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)} if isinstance(obj, Mapping) else {}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
        raise FerbenchError(f"{where} holds no state dict of tensors (found: {keys})")
    return tensors


def save_state_dict(state: Mapping[str, torch.Tensor], path: str | Path) -> str:
    """Write ``state`` as a safetensors file (atomically) and return its SHA-256."""
    from safetensors.torch import save

    path = Path(path)
    # Cloning breaks storage sharing (tied weights), which safetensors refuses to write.
    tensors = {name: tensor.detach().to("cpu").contiguous().clone() for name, tensor in state.items()}
    write_bytes(path, save(tensors, metadata={"format": "pt"}), "weights file")
    return file_sha256(path)


# --- adapters ----------------------------------------------------------------------------------
@dataclass
class Adapted:
    """What an adapter hands back: the state dict to load, the source keys it dropped on purpose, and why."""

    state_dict: dict[str, Any]
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Adapter = Callable[[dict[str, Any], "nn.Module"], Union[Mapping[str, Any], Adapted]]
_adapters: dict[str, Adapter] = {}


def register_adapter(name: str, fn: Adapter) -> None:
    """Make ``fn`` available to :func:`load_weights` as ``adapter=name``."""
    if name in _adapters and _qualified_name(_adapters[name]) != _qualified_name(fn):
        raise UsageError(f"weights adapter {name!r} is registered twice, by {_qualified_name(_adapters[name])} "
                         f"and {_qualified_name(fn)}")
    _adapters[name] = fn


def _qualified_name(fn: Adapter) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def adapter_names() -> list[str]:
    """Names of every registered adapter (the built-in ones included)."""
    _import_builtin_adapters()
    return sorted(_adapters)


def get_adapter(name: str) -> Adapter:
    """The adapter registered as ``name``; a UsageError lists the known names otherwise."""
    if name not in _adapters:
        _import_builtin_adapters()
    if name not in _adapters:
        raise UsageError(f"unknown weights adapter {name!r}; known adapters: {', '.join(sorted(_adapters))}")
    return _adapters[name]


def _import_builtin_adapters() -> None:
    import importlib

    importlib.import_module(BUILTIN_ADAPTERS_MODULE)


def exact_adapter(state_dict: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """Keys and shapes already match the module: load as is."""
    return state_dict


register_adapter("exact", exact_adapter)


# --- loading into a module ---------------------------------------------------------------------
@dataclass(frozen=True)
class LoadReport:
    """What a :func:`load_weights` call loaded, by tensor name."""

    source: str
    adapter: str
    total: int                                    # tensors in the module's state dict
    loaded: list[str]
    missing: list[str]                            # module tensors the (adapted) source lacks: left as initialised
    unexpected: list[str]                         # source tensors the module lacks
    shape_mismatched: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]   # name -> (source, module) shape
    dropped: list[str] = field(default_factory=list)   # source tensors the adapter dropped on purpose
    notes: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Share of the module's tensors that were loaded."""
        return len(self.loaded) / self.total if self.total else 1.0

    def summary(self) -> str:
        """One line: how much was loaded and which tensors were not."""
        parts = [f"loaded {len(self.loaded)}/{self.total} tensors ({100 * self.fraction:.1f}%) from {self.source} "
                 f"with adapter {self.adapter!r}"]
        for label, names in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("shape-mismatched", [f"{k} {list(a)} vs {list(b)}" for k, (a, b) in self.shape_mismatched.items()]),
                             ("dropped", self.dropped)):
            if names:
                parts.append(f"{label} {len(names)}: {_some(names)}")
        return "; ".join(parts + self.notes)

    def to_json(self) -> dict[str, Any]:
        """Plain-type form, for logs and the database."""
        return {"source": self.source, "adapter": self.adapter, "total": self.total, "fraction": self.fraction,
                "loaded": len(self.loaded), "missing": self.missing, "unexpected": self.unexpected,
                "shape_mismatched": {k: [list(a), list(b)] for k, (a, b) in self.shape_mismatched.items()},
                "dropped": self.dropped, "notes": self.notes}


def _some(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def load_weights(module: nn.Module, source: Any, adapter: str | Adapter = "exact", min_fraction: float = 0.9,
                 prefix: str = "") -> LoadReport:
    """Load ``source`` into ``module`` non-strictly and report, by name, what did not match.

    ``source`` is a resolved reference (anything with ``path`` and ``ref``), a file path or a state dict.
    ``prefix`` keeps only the source tensors under it and strips it (e.g. ``"backbone."`` to take a
    fine-tuned method's backbone). Raises a one-line FerbenchError, loading nothing, when less than
    ``min_fraction`` of the module's tensors would be loaded.
    """
    state, label = _source_state(source)
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise FerbenchError(f"weights {label} hold no tensor under the prefix {prefix!r}")
    adapter_name = adapter if isinstance(adapter, str) else getattr(adapter, "__name__", repr(adapter))
    fn = get_adapter(adapter) if isinstance(adapter, str) else adapter
    adapted = fn(state, module)
    if not isinstance(adapted, Adapted):
        adapted = Adapted(dict(adapted))
    own = module.state_dict()
    loadable, mismatched = {}, {}
    for name, tensor in adapted.state_dict.items():
        if name in own and tuple(tensor.shape) != tuple(own[name].shape):
            mismatched[name] = (tuple(tensor.shape), tuple(own[name].shape))
        elif name in own:
            loadable[name] = tensor
    report = LoadReport(
        source=label, adapter=adapter_name, total=len(own), loaded=sorted(loadable),
        missing=[k for k in own if k not in loadable and k not in mismatched],
        unexpected=[k for k in adapted.state_dict if k not in own], shape_mismatched=mismatched,
        dropped=list(adapted.dropped), notes=list(adapted.notes))
    if report.fraction < min_fraction:
        raise FerbenchError(f"weights {label} fit {type(module).__name__} too poorly (need {100 * min_fraction:.0f}%): "
                            f"{report.summary()}; check the model settings against the checkpoint or choose another adapter")
    module.load_state_dict(loadable, strict=False)
    log.info(report.summary())
    return report


def _source_state(source: Any) -> tuple[dict[str, Any], str]:
    if isinstance(source, Mapping):
        return dict(source), "the given state dict"
    if isinstance(source, (str, Path)):
        return read_state_dict(source), str(source)
    return read_state_dict(source.path), source.ref
