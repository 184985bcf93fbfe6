"""The hooks a ferbench plugin can implement.

A plugin is any module with functions decorated by ``@ferbench.hookimpl`` whose names match the
specs below, registered under the ``ferbench`` entry-point group. The registration hooks run when
ferbench starts and must stay cheap (no torch import); the lifecycle hooks let a plugin follow a run,
e.g. to log to an outside experiment tracker. Every hook is documented in CONTRIBUTING.md.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    import click

    from .runinfo import RunInfo
    from .specs import DatasetSpec, LossSpec, MethodSpec, MetricSpec

hookspec = pluggy.HookspecMarker("ferbench")


@hookspec
def register_datasets(register: Callable[[DatasetSpec], None]) -> None:
    """Register datasets by calling ``register(DatasetSpec(...))`` once per dataset.

    Runs every time ferbench starts: import nothing heavy here, point ``DatasetSpec.loader`` at the
    module that reads the data instead.
    """


@hookspec
def register_methods(register: Callable[[MethodSpec], None]) -> None:
    """Register methods by calling ``register(MethodSpec(...))`` once per method.

    Presets are plain dictionaries; ``MethodSpec.factory`` names the model module, imported only
    when a run of the method starts.
    """


@hookspec
def register_metrics(register: Callable[[MetricSpec], None]) -> None:
    """Register metrics by calling ``register(MetricSpec(...))``.

    Metrics receive the stored per-sample predictions of one fold, never the model, so any metric
    can be recomputed from the database alone.
    """


@hookspec
def register_losses(register: Callable[[LossSpec], None]) -> None:
    """Register training losses by calling ``register(LossSpec(...))``.

    A method builds the loss named by its config's ``loss.name`` (``ferbench.losses.build_loss``), so a
    registered loss is selectable by every method that uses that seam, e.g.
    ``ferbench run --method vit-baseline --set loss.name=f-pdls``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``ferbench`` command line with ``@cli.command()``, e.g. a dataset
    plugin's converter. Import heavy modules inside the command function, not here."""


@hookspec
def on_run_start(run: RunInfo) -> None:
    """Called once when a run starts or resumes, before the first fold trains.

    ``run`` carries the run id, method, dataset, protocol, effective config and seed.
    """


@hookspec
def on_epoch_end(run: RunInfo, fold: int, epoch: int, metrics: dict[str, float]) -> None:
    """Called after every training epoch with its curves (training losses, validation scores)."""


@hookspec
def on_fold_end(run: RunInfo, fold: int, metrics: dict[str, Any]) -> None:
    """Called once a fold's predictions and metrics are stored in the database."""


@hookspec
def on_run_end(run: RunInfo, status: str, summary: dict[str, Any]) -> None:
    """Called when a run ends; ``status`` is ``completed``, ``failed`` or ``interrupted``.

    ``summary`` holds per-fold metrics and their mean and standard deviation.
    """
