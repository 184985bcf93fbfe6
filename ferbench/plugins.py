"""Plugin manager: loads built-in and third-party plugins from the ``ferbench`` entry-point group."""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pluggy

from . import hookspecs
from .errors import UsageError
from .specs import DatasetSpec, LossSpec, MethodSpec, MetricSpec

ENTRY_POINT_GROUP = "ferbench"
#: Comma-separated module names loaded as extra plugins (handy for a plugin under development).
PLUGINS_ENV = "FERBENCH_PLUGINS"

#: Each kind of spec and the name of its table in :class:`Registry` and in ``ferbench plugins``.
KINDS: dict[str, str] = {"dataset": "datasets", "method": "methods", "metric": "metrics", "loss": "losses"}

Spec = TypeVar("Spec", DatasetSpec, MethodSpec, MetricSpec, LossSpec)


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every installed plugin loaded."""
    pm = pluggy.PluginManager("ferbench")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for module_name in filter(None, os.environ.get(PLUGINS_ENV, "").split(",")):
        module = __import__(module_name.strip(), fromlist=["_"])
        if not pm.is_registered(module):
            pm.register(module, name=module_name.strip())
    return pm


@dataclass
class Registry:
    """Everything the plugins provide, by name, with the plugin that provided each entry."""

    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    methods: dict[str, MethodSpec] = field(default_factory=dict)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    losses: dict[str, LossSpec] = field(default_factory=dict)
    provider: dict[tuple[str, str], str] = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset called ``name``; a UsageError lists the valid names otherwise."""
        return _lookup(self.datasets, name, "dataset")

    def method(self, name: str) -> MethodSpec:
        """The method called ``name``; a UsageError lists the valid names otherwise."""
        return _lookup(self.methods, name, "method")

    def loss(self, name: str) -> LossSpec:
        """The loss called ``name``; a UsageError lists the valid names otherwise."""
        return _lookup(self.losses, name, "loss")


def _lookup(table: dict[str, Spec], name: str, kind: str) -> Spec:
    if name not in table:
        raise UsageError(f"unknown {kind} {name!r}; installed {kind}s: {', '.join(sorted(table)) or 'none'}")
    return table[name]


def _collect(pm: pluggy.PluginManager, hook_name: str, table: dict[str, Any], kind: str,
             registry: Registry) -> None:
    hook = getattr(pm.hook, hook_name)
    for impl in hook.get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)

        def register(spec: Any, _plugin: str = plugin_name) -> None:
            if spec.name in table:
                other = registry.provider[(kind, spec.name)]
                raise UsageError(f"{kind} {spec.name!r} is registered twice, by plugins {other!r} and {_plugin!r}")
            table[spec.name] = spec
            registry.provider[(kind, spec.name)] = _plugin

        impl.function(register=register)


@functools.cache
def registry() -> Registry:
    """Collect datasets, methods and metrics from all plugins (cached for the process)."""
    pm = plugin_manager()
    reg = Registry()
    _collect(pm, "register_datasets", reg.datasets, "dataset", reg)
    _collect(pm, "register_methods", reg.methods, "method", reg)
    _collect(pm, "register_metrics", reg.metrics, "metric", reg)
    _collect(pm, "register_losses", reg.losses, "loss", reg)
    return reg


def describe_plugins() -> list[dict[str, Any]]:
    """One entry per loaded plugin: name, distribution and version, hooks, and what it provides."""
    pm = plugin_manager()
    reg = registry()
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    described = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        dist = distributions.get(id(plugin))
        provides: dict[str, list[str]] = {table: [] for table in KINDS.values()}
        for (kind, spec_name), provider in reg.provider.items():
            if provider == name:
                provides[KINDS[kind]].append(spec_name)
        described.append({
            "name": name,
            "module": getattr(plugin, "__name__", repr(plugin)),
            "distribution": dist.project_name if dist else None,
            "version": dist.version if dist else None,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            "provides": {kind: sorted(names) for kind, names in provides.items()},
        })
    return described


def call_hook(name: str, **kwargs: Any) -> None:
    """Call a lifecycle hook; a failing tracker plugin is reported, never allowed to kill a run."""
    try:
        getattr(plugin_manager().hook, name)(**kwargs)
    except Exception as exc:  # noqa: BLE001 - third-party code; the run must go on
        print(f"ferbench: warning: plugin hook {name} failed: {exc!r}", file=sys.stderr)


