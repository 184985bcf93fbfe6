"""The ``ferbench`` command line."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .errors import FerbenchError
from .weights_cli import weights as weights_group


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str, allow_nan=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ferbench")
def cli() -> None:
    """ferbench: run FER methods under declared protocols and compare them on leaderboards."""


_RUN_OPTIONS = [
    click.option("--method", "-m", required=True, help="Method name (see `ferbench methods`)."),
    click.option("--dataset", "-d", required=True, help="Dataset name (see `ferbench datasets`)."),
    click.option("--protocol", "-p", help="Evaluation protocol of the dataset (default: the dataset's)."),
    click.option("--preset", help="Method preset, e.g. tiny or paper (default: the method's, usually paper)."),
    click.option("--config", "config_file", help="YAML file with config overrides (sections model/train/data/...)."),
    click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                 help="Override one config key, e.g. --set train.epochs=5 (repeatable)."),
    click.option("--seed", type=click.IntRange(min=0, max=2**63 - 1), default=0, show_default=True,
                 help="Seed for initialisation, order and augmentation."),
    click.option("--fold", type=click.IntRange(min=0), help="Only this fold of the protocol (default: all folds)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
    click.option("--data-root", help="Folder holding the dataset's files (or set FERBENCH_DATA_ROOT)."),
    click.option("--db", help="Results database (default: $FERBENCH_DB or ~/.ferbench/ferbench.duckdb)."),
    click.option("--fresh", is_flag=True, help="Start a new run even if an interrupted identical run can be resumed."),
    click.option("--progress/--no-progress", default=None, help="Show progress bars (default: when on a terminal)."),
    click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary instead of text."),
]


def run_options(command: Any) -> Any:
    """The options shared by ``run``, ``pretrain`` and ``eval``."""
    for option in reversed(_RUN_OPTIONS):
        command = option(command)
    return command


def _execute(kind: str, as_json: bool, assignments: tuple[str, ...], **fields: Any) -> None:
    """Plan and execute a run of ``kind``, then print its summary."""
    from .config import parse_assignment
    from .planning import RunRequest
    from .runner import run as execute
    from .settings import RunKind

    if fields["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise FerbenchError("--device cuda was asked for but no CUDA device is available; use --device auto")
    request = RunRequest(kind=RunKind(kind), assignments=[parse_assignment(a) for a in assignments], **fields)
    summary = execute(request, echo=_echo_err if as_json else click.echo)
    if as_json:
        _print_json(summary)
        return
    trained = f", {summary['train_seconds']}s of training over all sessions" if summary["train_seconds"] else ""
    click.echo(f"{kind} run {summary['run_id']} completed in {summary['seconds']}s{trained}")
    for name, stats in summary["aggregate"].items():
        click.echo(f"  {name:<22} {100 * stats['mean']:6.2f} +- {100 * stats['std']:.2f}  (n={stats['n']})")
    if kind == "pretrain":
        click.echo(f"fine-tune from it with --set model.weights=run:{summary['run_id']}")
    click.echo(f"results: {summary['db']}")


@cli.command()
@run_options
@click.option("--allow-test-images-in-pretraining", is_flag=True,
              help="Fine-tune from a pre-training run that saw this protocol's test images (the run is marked).")
def run(as_json: bool, assignments: tuple[str, ...], **fields: Any) -> None:
    """Train and evaluate METHOD on DATASET under a protocol; record everything in the database."""
    _execute("train", as_json, assignments, **fields)


@cli.command()
@run_options
def pretrain(as_json: bool, assignments: tuple[str, ...], **fields: Any) -> None:
    """Pre-train METHOD (a pre-trainer such as mae) on the training images of each fold of DATASET's
    protocol, without labels; keeps its weights for `--set model.weights=run:<id>` fine-tunes."""
    _execute("pretrain", as_json, assignments, **fields)


@cli.command("eval")
@run_options
@click.option("--weights", required=True, help="Weights to score: run:<id>[/fold-K], hf://..., timm:..., or a file.")
def evaluate(as_json: bool, assignments: tuple[str, ...], **fields: Any) -> None:
    """Score WEIGHTS of METHOD on the test part of each fold of DATASET without training (recorded as an
    evaluation-only run)."""
    _execute("eval", as_json, assignments, **fields)


@cli.command()
@click.option("--db", help="Results database.")
@click.option("--method", help="Only runs of this method.")
@click.option("--dataset", help="Only runs on this dataset.")
@click.option("--json", "as_json", is_flag=True)
def runs(db: str | None, method: str | None, dataset: str | None, as_json: bool) -> None:
    """List recorded runs with their mean metrics."""
    from .store import Store

    where, params = [], []
    for column, value in (("method", method), ("dataset", dataset)):
        if value:
            where.append(f"r.{column} = ?")
            params.append(value)
    from .settings import Selection
    rows = Store(db).query(
        "SELECT r.run_id, r.method, r.dataset, r.protocol, r.preset, r.seed, r.status, r.selection_rule, "
        "r.started_at, count(DISTINCT m.fold) AS folds_done, "
        "avg(CASE WHEN m.metric = 'accuracy' THEN m.value END) AS accuracy, "
        "avg(CASE WHEN m.metric = 'mean_class_accuracy' THEN m.value END) AS mean_class_accuracy "
        "FROM runs r LEFT JOIN fold_metrics m USING (run_id) "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "GROUP BY ALL ORDER BY r.started_at", params)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no runs recorded")
        return
    click.echo(f"{'run id':<23} {'method':<14} {'dataset/protocol':<24} {'preset':<7} {'seed':>4} "
               f"{'status':<11} {'folds':>5} {'acc':>6} {'mca':>6}")
    for r in rows:
        acc = "" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}"
        mca = "" if r["mean_class_accuracy"] is None else f"{100 * r['mean_class_accuracy']:.2f}"
        flag = "*" if r["selection_rule"] == Selection.TEST else ""
        click.echo(f"{r['run_id']:<23} {r['method']:<14} {r['dataset'] + '/' + r['protocol']:<24} "
                   f"{r['preset']:<7} {r['seed']:>4} {r['status']:<11} {r['folds_done']:>5} {acc:>6}{flag} {mca:>6}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def plugins(as_json: bool) -> None:
    """List installed plugins (distribution and version) and what each provides."""
    from .plugins import describe_plugins

    described = describe_plugins()
    if as_json:
        _print_json(described)
        return
    for plugin in described:
        dist = f"{plugin['distribution']} {plugin['version']}" if plugin["distribution"] else "(not from a distribution)"
        click.echo(f"{plugin['name']}  [{dist}]  module {plugin['module']}")
        for kind, names in plugin["provides"].items():
            if names:
                click.echo(f"    {kind}: {', '.join(names)}")
        click.echo(f"    hooks: {', '.join(plugin['hooks'])}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def methods(as_json: bool) -> None:
    """List methods with their presets and source papers."""
    from .plugins import registry

    table = [{"name": m.name, "presets": list(m.presets), "default_preset": m.default_preset,
              "modalities": list(m.modalities), "paper": m.paper, "description": m.description}
             for m in sorted(registry().methods.values(), key=lambda m: m.name)]
    if as_json:
        _print_json(table)
        return
    for m in table:
        click.echo(f"{m['name']:<16} presets: {', '.join(m['presets'])}; {m['description']}")


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def datasets(as_json: bool) -> None:
    """List datasets with their classes and protocols."""
    from .plugins import registry

    table = [{"name": d.name, "classes": list(d.classes), "modalities": list(d.modalities),
              "protocols": {p.name: p.description for p in d.protocols.values()},
              "default_protocol": d.default_protocol, "needs_data_root": d.needs_data_root,
              "options": dict(d.options), "layouts": d.layouts, "description": d.description}
             for d in sorted(registry().datasets.values(), key=lambda d: d.name)]
    if as_json:
        _print_json(table)
        return
    for d in table:
        protocols = ", ".join(p + ("*" if p == d["default_protocol"] else "") for p in d["protocols"])
        click.echo(f"{d['name']:<12} {len(d['classes'])} classes, {'+'.join(d['modalities'])}; "
                   f"protocols: {protocols}; {d['description']}")
        if d["layouts"]:
            click.echo(f"{'':<12} layouts: {d['layouts']}")


@cli.group()
def data() -> None:
    """Inspect datasets on disk."""


@data.command("check")
@click.option("--dataset", "-d", required=True, help="Dataset name (see `ferbench datasets`).")
@click.option("--data-root", help="Folder holding the dataset's files (or set FERBENCH_DATA_ROOT).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Dataset option, e.g. --set dataset.label_mode=majority (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def data_check(dataset: str, data_root: str | None, assignments: tuple[str, ...], as_json: bool) -> None:
    """Validate a dataset's layout: counts per split and class beside the official counts, and what
    is missing or unreadable."""
    from .config import parse_assignment
    from .datacheck import check
    from .planning import dataset_options, resolve_data_root
    from .plugins import registry

    spec = registry().dataset(dataset)
    options = dataset_options(spec, [parse_assignment(a) for a in assignments])
    report = check(spec, resolve_data_root(spec, data_root), options)
    if as_json:
        _print_json(report.to_json())
        return
    click.echo("\n".join(report.lines()))


@cli.command()
@click.option("--db", help="Results database.")
@click.option("--out", "out_dir", default="leaderboards/site", show_default=True, help="Output folder.")
@click.option("--paper-results", type=click.Path(exists=True, dir_okay=False),
              help="YAML of published accuracies (default: the table shipped with ferbench).")
def leaderboard(db: str | None, out_dir: str, paper_results: str | None) -> None:
    """Render static HTML leaderboards from the database."""
    from .leaderboard import load_paper_results, render_leaderboard
    from .store import Store

    index = render_leaderboard(Store(db), Path(out_dir), load_paper_results(Path(paper_results) if paper_results else None))
    click.echo(f"leaderboard: {index.resolve()}")


@cli.command()
@click.option("--db", help="Results database.")
@click.option("--out", "out_dir", required=True, help="Folder for one file per table.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
def export(db: str | None, out_dir: str, fmt: str) -> None:
    """Export every table of the database to CSV or Parquet."""
    from .store import Store

    for path in Store(db).export(Path(out_dir), fmt):
        click.echo(str(path))


cli.add_command(weights_group)


def main() -> None:
    """Console entry point: user mistakes become one line on stderr and a non-zero exit."""
    try:
        from .plugins import plugin_manager

        plugin_manager().hook.register_commands(cli=cli)
        cli.main(standalone_mode=False)
    except FerbenchError as exc:
        _echo_err(f"ferbench: error: {exc}")
        sys.exit(2)
    except click.ClickException as exc:
        _echo_err(f"ferbench: error: {exc.format_message()}")
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):  # click turns Ctrl-C into Abort
        _echo_err("ferbench: interrupted; run the same command again to resume")
        sys.exit(130)
