"""The ``ferbench`` command line."""
from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

import click

from .db_cli import db as db_group
from .errors import DEBUG_ENV, FerbenchError, UsageError, debug_enabled
from .sweep_cli import sweep as sweep_group
from .weights_cli import weights as weights_group

if TYPE_CHECKING:
    from .store import Store

#: Shows the full traceback behind an error; accepted anywhere on the command line.
DEBUG_FLAG = "--debug"


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _print_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, default=str, allow_nan=True))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ferbench")
@click.option(DEBUG_FLAG, is_flag=True, expose_value=False,
              help=f"Show the full traceback behind an error (anywhere on the line; or set {DEBUG_ENV}=1).")
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
    click.option("--wait", is_flag=True, help="When another process executes the same run, wait for it instead of "
                 "refusing (a run it completes meanwhile is reported, not repeated)."),
    click.option("--deterministic", is_flag=True, help="Deterministic algorithms only (torch, cuDNN): needed for "
                 "bit-identical results on CUDA; recorded with the run."),
    click.option("--progress/--no-progress", default=None, help="Show progress bars (default: when on a terminal)."),
    click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary instead of text."),
    click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
                 help="Processes (GPUs) for this run: starts torchrun --standalone --nproc-per-node N."),
]


def run_options(command: Any) -> Any:
    """The options shared by ``run``, ``pretrain`` and ``eval``."""
    for option in reversed(_RUN_OPTIONS):
        command = option(command)
    return command


def _execute(kind: str, as_json: bool, assignments: tuple[str, ...], **fields: Any) -> None:
    """Plan and execute a run of ``kind``, then print its summary."""
    from .config import parse_assignment
    from .distributed import env_world_size, is_main_process, relaunch_with_torchrun
    from .planning import RunRequest
    from .runner import run as execute
    from .settings import RunKind

    nproc = fields.pop("nproc")
    if nproc > 1 and env_world_size() == 1:
        relaunch_with_torchrun(nproc, _without_nproc(sys.argv[1:]))
    if fields["device"] == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise FerbenchError("--device cuda was asked for but no CUDA device is available; use --device auto")
    request = RunRequest(kind=RunKind(kind), assignments=[parse_assignment(a) for a in assignments], **fields)
    summary = execute(request, echo=_echo_err if as_json else click.echo)
    if not is_main_process():
        return  # rank 0 reports the run
    if as_json:
        _print_json(summary)
        return
    from .plugins import registry

    trained = f", {summary['train_seconds']}s of training over all sessions" if summary["train_seconds"] else ""
    click.echo(f"{kind} run {summary['run_id']} completed in {summary['seconds']}s{trained}")
    for name, stats in summary["aggregate"].items():
        spec = registry().metric_spec(name)
        click.echo(f"  {name:<22} {spec.format_value(stats['mean']):>6} +- {spec.format_value(stats['std'])}"
                   f"{' %' if spec.percent else ''}  (n={stats['n']})")
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
    """List recorded runs with their mean metrics (``--json``: every scalar metric, plugins' included)."""
    from .plugins import registry
    from .settings import ACCURACY, MEAN_CLASS_ACCURACY, Selection
    from .store import Store

    where, params = [], []
    for column, value in (("method", method), ("dataset", dataset)):
        if value:
            where.append(f"r.{column} = ?")
            params.append(value)
    store = Store(db)
    rows = store.query(
        "SELECT r.run_id, r.method, r.dataset, r.protocol, r.preset, r.seed, r.status, r.selection_rule, "
        "r.started_at, count(DISTINCT m.fold) AS folds_done "
        "FROM runs r LEFT JOIN fold_metrics m USING (run_id) "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "GROUP BY ALL ORDER BY r.started_at", params)
    means: dict[str, dict[str, float]] = {}
    for row in store.query("SELECT run_id, metric, avg(value) AS mean FROM fold_metrics GROUP BY ALL ORDER BY metric"):
        means.setdefault(row["run_id"], {})[row["metric"]] = row["mean"]
    for row in rows:
        row["metrics"] = means.get(row["run_id"], {})
        row[ACCURACY], row[MEAN_CLASS_ACCURACY] = row["metrics"].get(ACCURACY), row["metrics"].get(MEAN_CLASS_ACCURACY)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("no runs recorded")
        return
    click.echo(f"{'run id':<23} {'method':<14} {'dataset/protocol':<24} {'preset':<7} {'seed':>4} "
               f"{'status':<11} {'folds':>5} {'acc':>6} {'mca':>6}")
    shown = {name: registry().metric_spec(name).format_value for name in (ACCURACY, MEAN_CLASS_ACCURACY)}
    for r in rows:
        acc, mca = ("" if r[name] is None else shown[name](r[name]) for name in (ACCURACY, MEAN_CLASS_ACCURACY))
        flag = "*" if r["selection_rule"] == Selection.TEST else ""
        click.echo(f"{r['run_id']:<23} {r['method']:<14} {r['dataset'] + '/' + r['protocol']:<24} "
                   f"{r['preset']:<7} {r['seed']:>4} {r['status']:<11} {r['folds_done']:>5} {acc:>6}{flag} {mca:>6}")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins (distribution and version), what each provides, and the broken ones."""
    if ctx.invoked_subcommand is not None:
        return
    from .plugins import describe_plugins

    described = describe_plugins()
    if as_json:
        _print_json(described)
        return
    for plugin in described:
        dist = f"{plugin['distribution']} {plugin['version']}" if plugin["distribution"] else "(not from a distribution)"
        click.echo(f"{plugin['name']}  [{dist}]  module {plugin['module']}{'  BROKEN' if plugin['error'] else ''}")
        if plugin["error"]:
            click.echo(f"    {plugin['error']}")
            continue
        for kind, names in plugin["provides"].items():
            if names:
                click.echo(f"    {kind}: {', '.join(names)}")
        click.echo(f"    hooks: {', '.join(plugin['hooks'])}")


@plugins.command("check")
@click.argument("name")
@click.option("--data-root", help="Folder of a dataset's files (or set FERBENCH_DATA_ROOT).")
@click.option("--image-size", type=click.IntRange(min=8), default=32, show_default=True,
              help="Resolution at which a dataset's pixels are loaded and checked.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Dataset option, e.g. --set dataset.layout=csv (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def plugins_check(name: str, data_root: str | None, image_size: int, assignments: tuple[str, ...],
                  as_json: bool) -> None:
    """Check NAME (a plugin, or one dataset, method or metric) against ferbench's contracts: load each
    dataset and its pixels, train each method for a few steps on synthfer, score each metric."""
    from .config import parse_assignment
    from .testing import check_plugin

    results = check_plugin(name, data_root=data_root, image_size=image_size,
                           assignments=[parse_assignment(a) for a in assignments])
    if as_json:
        _print_json([result.to_json() for result in results])
    else:
        for result in results:
            click.echo(result.line())
    failed = [result for result in results if result.status == "failed"]
    if failed:
        raise FerbenchError(f"{len(failed)} of {len(results)} check(s) failed; first: {failed[0].detail}")


@cli.command()
@click.argument("name", required=False)
@click.option("--preset", help="Show the switches' values under this preset (default: the method's).")
@click.option("--json", "as_json", is_flag=True)
def methods(name: str | None, preset: str | None, as_json: bool) -> None:
    """List methods with their presets and source papers; with NAME, every switch of that method: its
    config keys with the preset's values and valid choices, what each preset changes, and the options
    of every registered loss it can train with (``loss.name``)."""
    from .describe import describe_method, method_lines
    from .plugins import registry

    reg = registry()
    if name is not None:
        described = describe_method(reg, reg.method(name), preset)
        if as_json:
            _print_json(described)
            return
        click.echo("\n".join(method_lines(described)))
        return
    table = [{"name": m.name, "kind": m.kind, "presets": list(m.presets), "default_preset": m.default_preset,
              "modalities": list(m.modalities), "paper": m.paper, "description": m.description}
             for m in sorted(reg.methods.values(), key=lambda m: m.name)]
    if as_json:
        _print_json(table)
        return
    for m in table:
        kind = " (pre-trainer)" if m["kind"] != "classifier" else ""
        click.echo(f"{m['name']:<16} presets: {', '.join(m['presets'])}; {m['description']}{kind}")
    click.echo("`ferbench methods NAME` lists a method's switches.")


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
              help="Published-results file (default: leaderboards/published-results.yaml, shipped with ferbench).")
def leaderboard(db: str | None, out_dir: str, paper_results: str | None) -> None:
    """Render the static HTML leaderboard of the database: boards with 95% intervals and shared ranks,
    run pages and per-sample browsers, every published number with its verification status, and a
    Parquet export of the tables (data/)."""
    from .leaderboard import load_paper_results, render_leaderboard

    published = load_paper_results(Path(paper_results) if paper_results else None)
    index = render_leaderboard(_existing_store(db), _output_folder(out_dir), published)
    click.echo(f"leaderboard: {index.resolve()}")


@cli.command()
@click.option("--db", help="Results database.")
@click.option("--out", "out_dir", required=True, help="Folder for one file per table.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True)
def export(db: str | None, out_dir: str, fmt: str) -> None:
    """Export every table of the database to CSV or Parquet."""
    store, folder = _existing_store(db), _output_folder(out_dir)
    for path in store.export(folder, fmt):
        click.echo(str(path))


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--into", "output", required=True, type=click.Path(dir_okay=False),
              help="The merged database (an existing one is an input too and is replaced).")
def merge(inputs: tuple[str, ...], output: str) -> None:
    """Combine results databases (e.g. one per worker where the file system's locks do not hold across
    machines) into one: every run once, each fold from where it was recorded, artifacts copied beside it."""
    from .merge import merge_databases

    for line in merge_databases(inputs, output).lines():
        click.echo(line)


def _without_nproc(args: list[str]) -> list[str]:
    """Command-line arguments without ``--nproc N`` (torchrun starts the processes instead)."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            kept.append(arg)
    return kept


def _existing_store(db: str | None) -> Store:
    """The results database to read, opened once so that a missing one (a mistyped ``--db``) fails in one
    line before any output is written (it must not look like an empty database)."""
    from .store import Store

    store = Store(db)
    with store.connect(read_only=True):
        pass
    return store


def _output_folder(out: str) -> Path:
    """``--out`` as a folder (created later, when there is something to write); a UsageError when it, or
    the nearest existing folder above it, is a file."""
    folder = Path(out).expanduser()
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "" if existing == folder else f" ({existing} is a file)"
        raise UsageError(f"--out {out} is not a folder{where}; pass a folder, which is created if missing")
    return folder


cli.add_command(weights_group)
cli.add_command(db_group)
cli.add_command(sweep_group)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: user mistakes become one line on stderr and a non-zero exit (2 for input the
    user can fix, 1 for anything unexpected); ``--debug`` or ``FERBENCH_DEBUG=1`` adds the traceback."""
    args = list(sys.argv[1:] if argv is None else argv)
    if DEBUG_FLAG in args:
        args = [arg for arg in args if arg != DEBUG_FLAG]
        os.environ[DEBUG_ENV] = "1"  # plugin loading and worker processes read it too
    try:
        from .plugins import add_commands

        add_commands(cli)
        code = cli.main(args=args, prog_name="ferbench", standalone_mode=False)
    except FerbenchError as exc:
        _fail(exc, str(exc), 2)
    except click.ClickException as exc:
        _fail(exc, exc.format_message(), exc.exit_code)
    except (KeyboardInterrupt, click.exceptions.Abort):  # click turns Ctrl-C into Abort
        _echo_err("ferbench: interrupted; run the same command again to resume")
        sys.exit(130)
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        _fail(exc, f"cannot use{where}: {exc.strerror or exc}; check the path, its permissions and free space", 2)
    except Exception as exc:  # noqa: BLE001 - the last resort: one line, the traceback on request
        message = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
        _fail(exc, f"unexpected {type(exc).__name__}{': ' + message if message else ''}; rerun with {DEBUG_FLAG} "
                   "for the traceback and report it if your input was right", 1)
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(exc: BaseException, message: str, code: int) -> NoReturn:
    """Print the one-line error (after the traceback when debugging) and exit with ``code``."""
    if debug_enabled():
        traceback.print_exception(exc, file=sys.stderr)
    _echo_err(f"ferbench: error: {' '.join(message.split())}")
    sys.exit(code)
