"""``ferbench sweep FILE`` (plan and execute a sweep) and ``ferbench sweep status FILE``."""
from __future__ import annotations

import json
from typing import Any

import click

from .errors import FerbenchError

_SET_OPTION = click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
                           help="Override one config key of every run (repeatable).")
_DB_OPTION = click.option("--db", help="Results database (default: the sweep file's db, $FERBENCH_DB or "
                                       "~/.ferbench/ferbench.duckdb).")


class _SweepGroup(click.Group):
    """``ferbench sweep FILE`` is ``ferbench sweep run FILE``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("sweep", cls=_SweepGroup)
def sweep() -> None:
    """Run a grid of runs from a YAML file (`ferbench sweep FILE`), or show where it stands
    (`ferbench sweep status FILE`)."""


def _load(file: str, assignments: tuple[str, ...], db: str | None) -> tuple[Any, list[Any]]:
    from .config import parse_assignment
    from .sweep import load_sweep, run_states

    loaded = load_sweep(file, [parse_assignment(a) for a in assignments], db)
    return loaded, run_states(loaded.runs, loaded.stores())


def _state_line(state: Any) -> str:
    folds = f" {len(state.folds_done)}/{len(state.run.folds)} folds" if state.run_id else ""
    return f"{state.state:<8} {state.run.label}{f'  [{state.run_id}{folds}]' if state.run_id else ''}"


def _counts_line(states: list[Any]) -> str:
    from .sweep import state_counts

    return ", ".join(f"{n} {name}" for name, n in state_counts(states).items()) + f" (of {len(states)} runs)"


@sweep.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@_SET_OPTION
@_DB_OPTION
@click.option("--dry-run", is_flag=True, help="Print the runs, their state and the command of each; execute nothing.")
@click.option("--wait", is_flag=True, help="SLURM: wait for the submitted jobs and report how they ended.")
def run_sweep(file: str, assignments: tuple[str, ...], db: str | None, dry_run: bool, wait: bool) -> None:
    """Expand FILE into runs, skip those completed before, and execute the others (resuming unfinished ones)
    as its executor says: here, in local worker processes, or as SLURM job arrays through submitit."""
    from .store import Store
    from .sweep import DONE, run_states
    from .sweep_jobs import execute_sweep, units

    loaded, states = _load(file, assignments, db)
    executor = loaded.executor
    how = (f"slurm ({executor.cluster}), one job per {executor.jobs}" if executor.kind == "slurm"
           else f"local, {executor.workers} worker(s)")
    click.echo(f"sweep {loaded.name}: {_counts_line(states)}; executor {how}; database {Store(loaded.db).path}"
               + (f" and one per run in {loaded.runs_folder}" if executor.db_per_run else ""))
    for state in states:
        click.echo(f"  {_state_line(state)}")
        if dry_run and state.state != DONE:
            click.echo(f"           {state.run.command()}")
    if dry_run:
        click.echo(f"dry run: {len(units(loaded, states))} job unit(s) would execute")
        return
    outcomes = execute_sweep(loaded, states, click.echo, wait)
    if outcomes is None:
        return
    final = run_states(loaded.runs, loaded.stores())
    click.echo(f"sweep {loaded.name}: {_counts_line(final)}")
    if executor.db_per_run:
        click.echo(f"combine the runs' databases: ferbench merge {loaded.runs_folder}/*.duckdb --into "
                   f"{Store(loaded.db).path}")
    unfinished = [s for s in final if s.state != DONE]
    if unfinished:
        raise FerbenchError(f"{len(unfinished)} of {len(final)} run(s) are not completed (first: "
                            f"{unfinished[0].run.label}, {unfinished[0].state}); start the same sweep again to "
                            "resume them")


@sweep.command("status")
@click.argument("file", type=click.Path(dir_okay=False))
@_SET_OPTION
@_DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(file: str, assignments: tuple[str, ...], db: str | None, as_json: bool) -> None:
    """Show each run of FILE as done, running, partial, failed or pending, from the database."""
    loaded, states = _load(file, assignments, db)
    if as_json:
        click.echo(json.dumps([{"label": s.run.label, "state": s.state, "run_id": s.run_id,
                                "folds_done": sorted(s.folds_done), "folds": list(s.run.folds),
                                "command": s.run.command()} for s in states], indent=2))
        return
    for state in states:
        click.echo(_state_line(state))
    click.echo(_counts_line(states))
