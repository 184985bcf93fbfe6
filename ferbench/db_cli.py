"""``ferbench db``: maintenance of the results database."""
from __future__ import annotations

import json
import sys

import click


@click.group("db")
def db() -> None:
    """Check and repair the results database."""


@db.command("check")
@click.option("--db", "db_path", help="Results database (default: $FERBENCH_DB or ~/.ferbench/ferbench.duckdb).")
@click.option("--repair", is_flag=True, help="Fix what can be fixed safely (each fix is listed).")
@click.option("--dry-run", is_flag=True, help="With --repair: list the fixes without applying them.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def check(db_path: str | None, repair: bool, dry_run: bool, as_json: bool) -> None:
    """Find orphan rows, folds without metrics, runs stuck at `running` whose process is gone, missing or
    changed kept-weights and artifact files, and files left by killed processes. Exits 1 while problems
    remain."""
    from . import dbcheck
    from .store import Store

    findings = dbcheck.check(Store(db_path))
    applying = repair and not dry_run
    left = dbcheck.repair(findings) if applying else findings
    if as_json:
        click.echo(json.dumps({"findings": [f.to_json() for f in findings], "repaired": applying,
                               "problems_left": len(left)}, indent=2))
    else:
        for finding in findings:
            action = ""
            if finding.repair_text:
                done = " (done)" if applying else " (dry run: not done)" if repair else " (with --repair)"
                action = f" -> {finding.repair_text}{done}"
            click.echo(f"{finding.kind}: {finding.text}{action}")
        fixable = sum(f.repair is not None for f in left)
        hint = f"; `ferbench db check --repair` fixes {fixable}" if fixable and not repair else ""
        click.echo(f"{len(findings)} finding(s), {len(left)} left{hint}" if findings else "no problems found")
    if left:
        sys.exit(1)
