"""``payerpolicy runs``: stored scrub runs, listed and replayed."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from ..pipeline import replay
from ._options import DbOpt, ShortFormat, err, open_store, out


runs_app = typer.Typer(help="Stored scrub runs: list and replay.", no_args_is_help=True)


@runs_app.command("list")
def runs_list(db: Optional[str] = DbOpt, limit: int = typer.Option(20, "--limit"),
              format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f")) -> None:
    """The most recent stored runs with their receipts."""
    runs = open_store(db).runs(limit)
    if format is ShortFormat.json:
        rows = [{"run": r.id, "started": r.started_at.isoformat(timespec="seconds"), "known_on": str(r.known_on),
                 "policy_version": r.policy_digest, "claims": r.claims, "clean": r.clean, "review": r.review,
                 "reject": r.reject, "invalid": r.invalid} for r in runs]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table
    table = Table(box=None, header_style="bold")
    table.add_column("run", no_wrap=True)
    table.add_column("started", no_wrap=True)
    for column in ("known on", "policy", "claims", "clean", "review", "reject", "invalid"):
        table.add_column(column)
    for run in runs:
        table.add_row(run.id, run.started_at.strftime("%Y-%m-%d %H:%M"), str(run.known_on),
                      run.policy_digest[7:15], str(run.claims), str(run.clean), str(run.review),
                      str(run.reject), str(run.invalid))
    out.print(table)


@runs_app.command("replay")
def runs_replay(run_id: str, db: Optional[str] = DbOpt) -> None:
    """Re-run a stored run from its receipt (stored policy version, input, known_on) and compare."""
    store = open_store(db)
    try:
        _, stored, fresh = replay(store, run_id)
    except KeyError as exc:
        err.print(f"[red]{exc.args[0]}[/]")
        raise typer.Exit(2)
    if stored == fresh:
        out.print(f"run {run_id}: replay gives the same {len(fresh)} findings")
        return
    out.print(f"[red]run {run_id}: replay differs[/] ({len(stored)} stored, {len(fresh)} now)")
    raise typer.Exit(1)
