"""Plugin manager: loads built-in and third-party plugins from the ``ferbench`` entry-point group.

A plugin that fails to import, implements a hook that does not exist (a misspelled name) or fails to
register is *broken*: it is reported in one line naming the plugin, its distribution and the exception
(``FERBENCH_DEBUG=1`` adds the traceback), and ferbench goes on without it. Every hook implementation
is called on its own, so one plugin's failure never hides an event from another plugin.
``FERBENCH_TRACE_PLUGINS=1`` prints each hook call with the plugin it goes to.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import os
import sys
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

import pluggy

from . import hookspecs
from .errors import PluginError, UsageError, did_you_mean
from .specs import DatasetSpec, LossSpec, MethodSpec, MetricSpec

ENTRY_POINT_GROUP = "ferbench"
#: Comma-separated module names loaded as extra plugins (handy for a plugin under development).
PLUGINS_ENV = "FERBENCH_PLUGINS"
#: ``1`` shows the full traceback of a plugin's failure.
DEBUG_ENV = "FERBENCH_DEBUG"
#: ``1`` prints every hook call with the plugin it goes to.
TRACE_ENV = "FERBENCH_TRACE_PLUGINS"

#: Each kind of spec and the name of its table in :class:`Registry` and in ``ferbench plugins``.
KINDS: dict[str, str] = {"dataset": "datasets", "method": "methods", "metric": "metrics", "loss": "losses"}
#: Registration hooks: the kind of spec each registers and the spec's type.
REGISTRATION_HOOKS: dict[str, tuple[str, type]] = {
    "register_datasets": ("dataset", DatasetSpec), "register_methods": ("method", MethodSpec),
    "register_metrics": ("metric", MetricSpec), "register_losses": ("loss", LossSpec)}

Spec = TypeVar("Spec", DatasetSpec, MethodSpec, MetricSpec, LossSpec)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def warn(message: str, details: str = "") -> None:
    """A one-line warning on stderr; ``details`` (a traceback) only with ``FERBENCH_DEBUG=1``."""
    print(f"ferbench: warning: {message}", file=sys.stderr)
    if details and env_flag(DEBUG_ENV):
        print(details.rstrip(), file=sys.stderr)


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` on one line, at most 300 characters."""
    message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin comes from: its name, module and distribution (None for ``FERBENCH_PLUGINS``)."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None

    @property
    def label(self) -> str:
        """``plugin 'name' (distribution version)``, as errors name it."""
        where = f"{self.distribution} {self.version}" if self.distribution else f"module {self.module}"
        return f"plugin {self.name!r} ({where})"


@dataclass(frozen=True)
class PluginProblem:
    """Why a plugin is left out: at which stage it failed and the exception, in one line."""

    source: PluginSource
    stage: str  # "import", "hooks" or the registration hook that raised
    error: str
    details: str = ""  # the traceback, shown with FERBENCH_DEBUG=1
    provided: tuple[tuple[str, str], ...] = ()  # (kind, name) it registered before failing

    def line(self) -> str:
        """The one-line report."""
        return f"{self.source.label} is broken and was left out ({self.stage}): {self.error}"


@dataclass
class LoadedPlugins:
    """The plugin manager with every plugin that loaded, and the plugins that could not."""

    pm: pluggy.PluginManager
    sources: dict[str, PluginSource] = field(default_factory=dict)
    problems: dict[str, PluginProblem] = field(default_factory=dict)

    def fail(self, source: PluginSource, stage: str, error: str, details: str = "",
             provided: tuple[tuple[str, str], ...] = ()) -> None:
        """Record ``source`` as broken and unregister it, so none of its hooks is called."""
        self.problems[source.name] = PluginProblem(source, stage, error, details, provided)
        if self.pm.get_plugin(source.name) is not None:
            self.pm.unregister(name=source.name)
        for name in [n for n in dir(self.pm.hook) if not n.startswith("_")]:
            caller = getattr(self.pm.hook, name)
            if not caller.has_spec() and not caller.get_hookimpls():
                delattr(self.pm.hook, name)  # the misspelled hook's caller, now empty

    def add(self, source: PluginSource, load: Callable[[], Any]) -> None:
        """Import a plugin and register its hooks; any failure marks it broken."""
        self.sources[source.name] = source
        try:
            plugin = load()
        except Exception as exc:  # noqa: BLE001 - third-party code: report it, go on without it
            self.fail(source, "import", describe_exception(exc), traceback.format_exc())
            return
        if self.pm.is_registered(plugin):
            del self.sources[source.name]  # an installed plugin also named in FERBENCH_PLUGINS
            return
        try:
            self.pm.register(plugin, name=source.name)
        except Exception as exc:  # noqa: BLE001 - e.g. a hook whose arguments match no hook spec
            self.fail(source, "hooks", describe_exception(exc), traceback.format_exc())
            return
        unknown = _unknown_hooks(self.pm, plugin)
        if unknown:
            self.fail(source, "hooks", "; ".join(unknown))


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """A line per hook implementation whose name matches no hook spec (a misspelled hook), and per
    wrapper (ferbench calls each implementation on its own, so wrappers cannot wrap anything)."""
    specs = [name for name in dir(pm.hook) if not name.startswith("_") and getattr(pm.hook, name).has_spec()]
    found = []
    for caller in pm.get_hookcallers(plugin) or []:
        for impl in caller.get_hookimpls():
            if impl.plugin is not plugin:
                continue
            if not caller.has_spec() and not impl.optionalhook:
                close = difflib.get_close_matches(caller.name, specs, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"ferbench's hooks: {', '.join(sorted(specs))}"
                found.append(f"hook {caller.name!r} matches no ferbench hook ({hint})")
            elif impl.hookwrapper or impl.wrapper:
                found.append(f"hook {caller.name!r} is a wrapper; ferbench hooks take plain implementations")
    return found


def _entry_point_plugins() -> Iterator[tuple[PluginSource, Callable[[], Any]]]:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        yield (PluginSource(ep.name, ep.value, dist.metadata["Name"] if dist else None, dist.version if dist else None),
               ep.load)


def _env_plugins() -> Iterator[tuple[PluginSource, Callable[[], Any]]]:
    for module_name in filter(None, (name.strip() for name in os.environ.get(PLUGINS_ENV, "").split(","))):
        yield PluginSource(module_name, module_name), functools.partial(importlib.import_module, module_name)


@functools.cache
def loaded_plugins() -> LoadedPlugins:
    """Every installed plugin, imported and registered once per process; broken ones recorded."""
    pm = pluggy.PluginManager("ferbench")
    pm.add_hookspecs(hookspecs)
    loaded = LoadedPlugins(pm)
    seen: set[str] = set()
    for source, load in [*_entry_point_plugins(), *_env_plugins()]:
        if source.name not in seen:
            seen.add(source.name)
            loaded.add(source, load)
    return loaded


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every plugin that loaded."""
    return loaded_plugins().pm


# --- calling hooks -----------------------------------------------------------------------------------

def _trace(hook: str, plugin: str, kwargs: dict[str, Any]) -> None:
    shown = ", ".join(f"{k}={v!r}" if isinstance(v, (int, float, str)) else k for k, v in kwargs.items())
    print(f"ferbench: trace: {hook}({shown}) -> plugin {plugin!r}", file=sys.stderr)


def call_impl(hook: str, impl: Any, kwargs: dict[str, Any]) -> Any:
    """Call one hook implementation with the arguments it declares (traced with FERBENCH_TRACE_PLUGINS=1)."""
    if env_flag(TRACE_ENV):
        _trace(hook, impl.plugin_name, kwargs)
    return impl.function(*(kwargs[name] for name in impl.argnames))


def _implementations(hook: str) -> list[Any]:
    """The hook's implementations in pluggy's call order (last registered first)."""
    return list(reversed(getattr(plugin_manager().hook, hook).get_hookimpls()))


def call_hook(name: str, **kwargs: Any) -> None:
    """Call a lifecycle hook on every plugin separately; a failing plugin is named in a warning and
    never stops the run or the other plugins."""
    for impl in _implementations(name):
        try:
            call_impl(name, impl, kwargs)
        except Exception as exc:  # noqa: BLE001 - third-party code; the run must go on
            warn(f"plugin {impl.plugin_name!r} failed in hook {name}: {describe_exception(exc)} "
                 "(the other plugins still received the event)", traceback.format_exc())


def add_commands(cli: Any) -> None:
    """Let every working plugin add sub-commands to the ``ferbench`` click group."""
    reg = registry()
    for impl in _implementations("register_commands"):
        try:
            call_impl("register_commands", impl, {"cli": cli})
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the command line down
            source = reg.sources.get(impl.plugin_name, PluginSource(impl.plugin_name, impl.plugin_name))
            warn(f"{source.label} could not add its commands: {describe_exception(exc)}", traceback.format_exc())


# --- the registry ------------------------------------------------------------------------------------

@dataclass
class Registry:
    """Everything the plugins provide, by name, with the plugin that provided each entry, and the
    plugins that are broken."""

    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    methods: dict[str, MethodSpec] = field(default_factory=dict)
    metrics: dict[str, MetricSpec] = field(default_factory=dict)
    losses: dict[str, LossSpec] = field(default_factory=dict)
    provider: dict[tuple[str, str], str] = field(default_factory=dict)
    sources: dict[str, PluginSource] = field(default_factory=dict)
    problems: dict[str, PluginProblem] = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetSpec:
        """The dataset called ``name``; a UsageError lists the valid names otherwise."""
        return self._lookup("dataset", name)

    def method(self, name: str) -> MethodSpec:
        """The method called ``name``; a UsageError lists the valid names otherwise."""
        return self._lookup("method", name)

    def loss(self, name: str) -> LossSpec:
        """The loss called ``name``; a UsageError lists the valid names otherwise."""
        return self._lookup("loss", name)

    def table(self, kind: str) -> dict[str, Any]:
        """The specs of one kind (``dataset``, ``method``, ``metric``, ``loss``) by name."""
        return getattr(self, KINDS[kind])

    def origin(self, kind: str, name: str) -> str:
        """``plugin 'p' (distribution version)`` for the plugin that registered ``kind`` ``name``."""
        plugin = self.provider.get((kind, name), "?")
        return self.sources.get(plugin, PluginSource(plugin, plugin)).label

    def metric_spec(self, name: str) -> MetricSpec:
        """The installed metric ``name``, or a plain stand-in (shown with four significant digits) for a
        metric recorded by a plugin that is no longer installed."""
        return self.metrics.get(name) or MetricSpec(name, "")

    def _lookup(self, kind: str, name: str) -> Any:
        table = self.table(kind)
        if name in table:
            return table[name]
        for problem in self.problems.values():
            if (kind, name) in problem.provided:
                raise PluginError(f"{kind} {name!r} comes from a broken plugin: {problem.line()}")
        message = (f"unknown {kind} {name!r}{did_you_mean(name, table)}; installed {kind}s: "
                   f"{', '.join(sorted(table)) or 'none'}")
        if self.problems:
            message += ("; broken plugins (see `ferbench plugins`): "
                        + "; ".join(p.line() for p in self.problems.values()))
        raise UsageError(message)

    def add(self, kind: str, spec_type: type, plugin: str, spec: Any) -> None:
        """What a plugin's ``register(spec)`` does: check the spec and add it under its name."""
        if not isinstance(spec, spec_type):
            raise PluginError(f"register() got a {type(spec).__name__}; the {KINDS[kind]} hook takes "
                              f"ferbench.specs.{spec_type.__name__}")
        spec.validate()
        table = self.table(kind)
        if spec.name in table:
            raise PluginError(f"{kind} {spec.name!r} is already registered by {self.origin(kind, spec.name)}")
        table[spec.name] = spec
        self.provider[(kind, spec.name)] = plugin

    def drop(self, plugin: str) -> tuple[tuple[str, str], ...]:
        """Remove everything ``plugin`` registered; returns what it was."""
        dropped = tuple(key for key, owner in self.provider.items() if owner == plugin)
        for kind, name in dropped:
            del self.table(kind)[name]
            del self.provider[(kind, name)]
        return dropped


@functools.cache
def registry() -> Registry:
    """Collect datasets, methods, metrics and losses from all working plugins (cached for the process);
    a plugin whose registration fails is reported once and left out."""
    loaded = loaded_plugins()
    reg = Registry(sources=loaded.sources, problems=loaded.problems)
    for hook, (kind, spec_type) in REGISTRATION_HOOKS.items():
        for impl in getattr(loaded.pm.hook, hook).get_hookimpls():
            plugin = impl.plugin_name
            try:
                call_impl(hook, impl, {"register": functools.partial(reg.add, kind, spec_type, plugin)})
            except Exception as exc:  # noqa: BLE001 - third-party code: report it, go on without it
                loaded.fail(loaded.sources[plugin], hook, describe_exception(exc), traceback.format_exc(),
                            reg.drop(plugin))
    for problem in loaded.problems.values():
        warn(problem.line(), problem.details)
    return reg


def describe_plugins() -> list[dict[str, Any]]:
    """One entry per plugin: name, module, distribution and version, status (``ok`` or ``broken`` with
    the error), hooks, and what it provides."""
    pm, reg = plugin_manager(), registry()
    described = []
    for name, source in sorted(reg.sources.items()):
        plugin = pm.get_plugin(name)
        provides: dict[str, list[str]] = {table: [] for table in KINDS.values()}
        for (kind, spec_name), provider in reg.provider.items():
            if provider == name:
                provides[KINDS[kind]].append(spec_name)
        problem = reg.problems.get(name)
        described.append({
            "name": name,
            "module": getattr(plugin, "__name__", source.module),
            "distribution": source.distribution,
            "version": source.version,
            "status": "broken" if problem else "ok",
            "error": problem.line() if problem else None,
            "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []) if plugin is not None else [],
            "provides": {kind: sorted(names) for kind, names in provides.items()},
        })
    return described
