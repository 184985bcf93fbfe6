"""The one place ferbench unpickles: turning a pickled full model into a plain state dict.

Used only by ``ferbench weights convert --from-pickle --trust-pickle`` (e.g. HSEmotion's ``enet_b2_7.pt``, a
whole timm EfficientNet saved with ``torch.save(model)``). Unpickling imports and runs whatever the file
names, hence the explicit flag. Classes that moved in later timm versions are looked up at their new
home (``timm.models.layers.*`` -> ``timm.layers.*``, ``timm.models.<x>`` -> ``timm.models._<x>``).
"""
from __future__ import annotations

import importlib
import pickle
import types
import warnings
from pathlib import Path
from typing import Any

from .errors import FerbenchError
from .statedict import unwrap_state_dict


def _moved_homes(module: str) -> list[str]:
    """Where timm keeps today what an older timm had in ``module``."""
    homes = []
    if module.startswith("timm.models.layers"):
        homes.append("timm.layers" + module[len("timm.models.layers"):])
    if module.startswith("timm.models.") and module.count(".") == 2:
        homes.append("timm.models._" + module.rsplit(".", 1)[1])
    return homes


class _RelocatingUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError) as first_error:
            for home in _moved_homes(module):
                try:
                    return getattr(importlib.import_module(home), name)
                except (ImportError, AttributeError):
                    continue
            raise first_error


#: A ``pickle``-like module for ``torch.load(pickle_module=...)``.
_relocating_pickle = types.ModuleType("ferbench_relocating_pickle")
_relocating_pickle.__dict__.update(Unpickler=_RelocatingUnpickler, load=pickle.load, loads=pickle.loads)


def pickled_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a pickled model (``model.state_dict()``) or checkpoint, unpickling ``path``."""
    import torch
    from torch import nn

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)   # timm's deprecated module aliases, expected here
            obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_relocating_pickle)
    except (ImportError, AttributeError) as exc:
        import timm

        raise FerbenchError(f"cannot unpickle {path}: {exc} (torch {torch.__version__}, timm {timm.__version__}); run "
                            "the conversion where the library versions the file was saved with are installed "
                            "(HSEmotion's enet_b2_7.pt: timm 0.9.x)") from None
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise FerbenchError(f"cannot unpickle {path}: {str(exc).splitlines()[0]}") from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    return unwrap_state_dict(obj, str(path))
