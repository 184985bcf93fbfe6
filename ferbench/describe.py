"""What ``ferbench methods NAME`` shows: every switch of a method, its presets and its losses."""
from __future__ import annotations

import json
from typing import Any

from .config import OPTIM_CHOICES, flatten, method_tree
from .errors import UsageError
from .plugins import Registry
from .specs import MethodSpec


def describe_method(reg: Registry, method: MethodSpec, preset: str | None = None) -> dict[str, Any]:
    """A method's config keys (values under ``preset``, valid choices), what each preset sets apart
    from the defaults, and the registered losses with their options."""
    preset = preset or method.default_preset
    if preset not in method.presets:
        raise UsageError(f"unknown preset {preset!r} for method {method.name}; choose one of: {', '.join(method.presets)}")
    tree = flatten(method_tree(method.defaults, method.presets[preset]))
    choices = {**OPTIM_CHOICES, **method.choices}
    keys = {path: {"value": value, **({"choices": list(choices[path])} if path in choices else {})}
            for path, value in sorted(tree.items()) if not path.startswith("loss.")}
    base = flatten(method_tree(method.defaults, {}))
    presets = {name: {path: value for path, value in sorted(flatten(method_tree(method.defaults, tree_)).items())
                      if base.get(path) != value}
               for name, tree_ in method.presets.items()}
    losses = {spec.name: {"options": dict(spec.options), "views": spec.views, "description": spec.description}
              for spec in sorted(reg.losses.values(), key=lambda spec: spec.name)}
    return {"name": method.name, "kind": method.kind, "paper": method.paper, "description": method.description,
            "modalities": list(method.modalities), "preset": preset, "keys": keys,
            "loss": tree.get("loss.name"), "losses": losses if "loss.name" in tree else {}, "presets": presets,
            "dataset_presets": {name: dict(per) for name, per in method.dataset_presets.items()}}


def method_lines(described: dict[str, Any]) -> list[str]:
    """The text form of :func:`describe_method`."""
    lines = [f"{described['name']} ({described['kind']}): {described['description']}",
             f"paper: {described['paper'] or '-'}; modalities: {', '.join(described['modalities'])}",
             f"switches (values under preset {described['preset']!r}; set with --set KEY=VALUE):"]
    for path, key in described["keys"].items():
        choice = f"   one of: {', '.join(map(str, key['choices']))}" if "choices" in key else ""
        lines.append(f"  {path:<34} {json.dumps(key['value'])}{choice}")
    if described["losses"]:
        lines.append(f"losses (--set loss.name=NAME; default {described['loss']}), with their options (--set loss.OPTION=...):")
        for name, loss in described["losses"].items():
            options = ", ".join(f"{k}={json.dumps(v)}" for k, v in loss["options"].items()) or "no options"
            views = f" [{loss['views']} views]" if loss["views"] > 1 else ""
            lines.append(f"  {name:<16}{views} {options}")
    lines.append("presets (what each sets apart from the method's defaults):")
    for name, changes in described["presets"].items():
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in changes.items() if not k.startswith("dataset."))
        lines.append(f"  {name}: {shown or '(the defaults)'}")
    for name, per in described["dataset_presets"].items():
        for dataset, overrides in per.items():
            lines.append(f"  {name} on {dataset}: {', '.join(f'{k}={json.dumps(v)}' for k, v in flatten(overrides).items())}")
    return lines
