"""Where ferbench calls plugin code: a dataset's loader and pixels, a metric's function.

Each call is checked once per load and cheaply (types, shapes, dtypes; never every pixel), and any
failure becomes a one-line :class:`~ferbench.errors.PluginError` that names the plugin and what to
fix, instead of a traceback or, worse, a run that trains on wrong inputs and scores chance. A
dataset's own :class:`~ferbench.errors.DataError` (missing files, an unknown layout) passes unchanged:
that is the user's data, not the plugin. ``FERBENCH_DEBUG=1`` prints the traceback of a plugin's
exception.
"""
from __future__ import annotations

import contextlib
import traceback
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from .data import FERData
from .errors import FerbenchError, PluginError
from .pixelcache import Pixels
from .plugins import DEBUG_ENV, Registry, describe_exception, env_flag, registry, warn
from .specs import DatasetSpec, load_object


class BlamedError(PluginError):
    """A PluginError whose message already names the plugin."""


@contextlib.contextmanager
def blamed_on(kind: str, name: str, reg: Registry | None = None) -> Iterator[None]:
    """Turn a contract violation or an exception of plugin code inside the block into a one-line
    PluginError naming the plugin that registered ``kind`` ``name``."""
    try:
        yield
    except FerbenchError as exc:
        if type(exc) is not PluginError:
            raise  # the user's mistake (e.g. a DataError about the data root), already one line
        raise BlamedError(f"{_where(kind, name, reg)}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - third-party code: any exception is the plugin's
        if env_flag(DEBUG_ENV):
            traceback.print_exc()
        raise BlamedError(f"{_where(kind, name, reg)} raised {describe_exception(exc)}") from exc


def _where(kind: str, name: str, reg: Registry | None) -> str:
    return f"{(reg or registry()).origin(kind, name)}, {kind} {name!r}"


def load_dataset(spec: DatasetSpec, data_root: Path | None, options: Mapping[str, Any]) -> FERData:
    """Call the dataset's loader and check its sample table (see :class:`~ferbench.data.FERData`)."""
    loader = load_object(spec.loader)
    with blamed_on("dataset", spec.name):
        data = loader(data_root, dict(options))
        if not isinstance(data, FERData):
            raise PluginError(f"the loader returned {type(data).__name__}; return a ferbench.data.FERData")
    return data


def load_pixels(spec: DatasetSpec, data: FERData, size: int) -> Pixels:
    """The dataset's pixels at ``size``, checked: uint8 ``[N, size, size, C]`` per modality, N the
    table's rows, 3 channels for RGB, 1 or 3 for depth."""
    with blamed_on("dataset", spec.name):
        return data.pixels(size)


def metric_value(name: str, labels: np.ndarray, probabilities: np.ndarray, num_classes: int,
                 reg: Registry | None = None) -> float:
    """Scalar metric ``name`` of predictions; a metric that raises or returns something other than a
    finite number is a one-line PluginError naming it and its plugin."""
    reg = reg or registry()
    spec = reg.metrics[name]
    function = spec.function
    with blamed_on("metric", name, reg):
        value = function(labels, probabilities.argmax(axis=1), probabilities, num_classes)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise PluginError(f"returned a {type(value).__name__}; a scalar metric returns one number") from None
        if not np.isfinite(number):
            raise PluginError(f"returned {number}; a scalar metric must return a finite number "
                              f"(on {len(labels)} predictions of {num_classes} classes)")
    return number


def scalar_metrics(labels: np.ndarray, probabilities: np.ndarray, num_classes: int,
                   reg: Registry | None = None) -> dict[str, float]:
    """Every installed scalar metric of the predictions. A metric that fails is named in a warning and
    left out (never averaged in as NaN); the stored predictions let it be computed once it is fixed."""
    reg = reg or registry()
    values = {}
    for name, spec in sorted(reg.metrics.items()):
        if spec.kind != "scalar":
            continue
        try:
            values[name] = metric_value(name, labels, probabilities, num_classes, reg)
        except PluginError as exc:
            warn(f"{exc}; not recorded (the predictions are stored, so it can be computed once fixed)")
    return values
