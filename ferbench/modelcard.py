"""The model card (README.md) ``ferbench weights push`` uploads with a run's weights.

Its YAML front matter is the Hub's metadata: ``model-index`` holds one result per scalar metric (mean over
the run's folds, in the unit its ``MetricSpec`` declares: percent for accuracies) on the run's dataset and
protocol, written by huggingface-hub's own ``ModelCardData``; a ``ferbench`` block holds what makes the
number reproducible (manifest hash, epoch-selection rule, versions, the command). The body repeats it for
people.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from .metrics import mean_std
from .plugins import registry

_ENV = jinja2.Environment(lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
_ENV.filters["metric"] = lambda value, name: registry().metric_spec(name).format_value(value)
BODY = _ENV.from_string("""\
# {{ r.method }} on {{ r.dataset }} ({{ r.protocol }})

Weights trained with ferbench, a benchmark harness for facial expression recognition,
run `{{ r.run_id }}`: method `{{ r.method }}`, preset `{{ r.preset }}`, seed {{ r.seed }}, dataset `{{ r.dataset }}`
under protocol `{{ r.protocol }}` (split manifest `{{ r.manifest_hash }}`).
{% if r.selected_on_test %}
**Warning:** the epoch was selected on the test split (`train.selection=test`); the scores below are optimistic.
{% endif %}
## Results (test split, mean over {{ c.folds | length }} fold{{ "s" if c.folds | length != 1 }}; accuracy, recall and F1 in percent)

| metric | mean | std | per fold |
|---|---|---|---|
{% for name, values in c.metrics.items() -%}
| {{ name }} | {{ stats[name].mean | metric(name) }} | {{ stats[name].std | metric(name) }} | {% for v in values %}{{ v | metric(name) }}{{ ", " if not loop.last }}{% endfor %} |
{% endfor %}
Epoch selection: `{{ r.selection_rule }}`{% if r.val_rule %} (validation part: {{ r.val_rule }}){% endif %}.

## Files

| fold | selected epoch | file | sha256 |
|---|---|---|---|
{% for f in c.folds -%}
| {{ f.fold }} | {{ f.selected_epoch }} | `{{ f.path_in_repo }}` | `{{ f.sha256 }}` |
{% endfor %}
`config.json` is the run's effective configuration. Use a fold's weights in ferbench as
`hf://{{ c.repo_id }}/{{ c.folds[0].path_in_repo }}`, e.g.

```bash
ferbench eval --method {{ r.method }} --weights hf://{{ c.repo_id }}/{{ c.folds[0].path_in_repo }} --dataset {{ r.dataset }} --protocol {{ r.protocol }} --fold {{ c.folds[0].fold }}
```

## Reproduce

```bash
{{ c.reproduce }}
```
{% if r.command %}
Recorded command: `{{ r.command }}`{% endif %}
{% if c.starting_weights %}
Started from: {% for w in c.starting_weights %}`{{ w }}`{{ ", " if not loop.last }}{% endfor %}.
{% endif %}
Versions: {% for name, version in (r.versions or {}).items() %}{{ name }} {{ version }}{{ ", " if not loop.last }}{% endfor %}{% if r.git_commit %}; ferbench commit `{{ r.git_commit }}`{% endif %}.
""")


@dataclass(frozen=True)
class CardFold:
    """One fold's uploaded weights."""

    fold: int
    selected_epoch: int | None
    path_in_repo: str
    sha256: str


#: Columns of the ``runs`` row copied into the card's ``ferbench`` metadata block.
PROVENANCE = ("run_id", "method", "preset", "seed", "dataset", "protocol", "manifest_hash", "selection_rule",
              "selected_on_test", "val_rule", "versions", "git_commit", "command")


@dataclass(frozen=True)
class CardInfo:
    """What the model card says about a run."""

    repo_id: str
    run: dict[str, Any]                    # the run's row in the ``runs`` table, as recorded
    folds: list[CardFold]
    metrics: dict[str, list[float]]        # scalar metric -> value per uploaded fold (fractions)
    reproduce: str                         # the ``ferbench run`` command that repeats the run

    @property
    def starting_weights(self) -> list[str]:
        """Pinned references of the weights the run started from."""
        return [w.get("pinned") or w["ref"] for w in (self.run.get("weights") or {}).values()]

    @property
    def base_models(self) -> list[str]:
        """Hub repositories among the starting weights."""
        return sorted({w["repo_id"] for w in (self.run.get("weights") or {}).values() if w.get("repo_id")})


def render_model_card(card: CardInfo) -> str:
    """README.md text: YAML front matter (Hub metadata, model-index) and a body for people."""
    from huggingface_hub import EvalResult, ModelCardData

    run = card.run
    stats = {name: mean_std(values) for name, values in card.metrics.items()}
    specs = {name: registry().metric_spec(name) for name in card.metrics}
    results = [EvalResult(task_type="image-classification", task_name="Facial expression recognition",
                          dataset_type=run["dataset"], dataset_name=run["dataset"], dataset_config=run["protocol"],
                          dataset_split="test", dataset_args={"manifest_hash": run["manifest_hash"],
                                                              "folds": [f.fold for f in card.folds]},
                          metric_type=name, metric_value=round(specs[name].shown(stats[name]["mean"]), 4),
                          metric_name=f"{name} ({'%, ' if specs[name].percent else ''}mean of {len(values)} folds)")
               for name, values in card.metrics.items()]
    provenance = {**{key: run.get(key) for key in PROVENANCE}, "reproduce": card.reproduce,
                  "starting_weights": card.starting_weights,
                  "folds": [{"fold": f.fold, "selected_epoch": f.selected_epoch, "file": f.path_in_repo,
                             "sha256": f.sha256} for f in card.folds]}
    data = ModelCardData(
        model_name=card.repo_id.split("/")[-1], library_name="ferbench", pipeline_tag="image-classification",
        tags=["ferbench", "facial-expression-recognition", run["method"], run["dataset"]],
        metrics=list(card.metrics), eval_results=results or None, base_model=card.base_models or None,
        ferbench=provenance)
    body = BODY.render(c=card, r=run, stats=stats)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"
