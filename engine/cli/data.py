"""``payerpolicy data``: import CMS releases, list them, show a code's rows, diff two quarters."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ._options import DbOpt, err, open_store, out, parse_date
from ..reference.layouts import KINDS

data_app = typer.Typer(help="CMS reference data (NCCI PTP, MUE and add-on edits, MPFS indicators, the Medicare "
                            "telehealth list): import releases, list, show, diff.", no_args_is_help=True)
MARKS = {"added": "+", "removed": "-", "changed": "~"}
KIND_HELP = f"One of: {', '.join(KINDS)}."
ProgramOpt = typer.Option("medicare", "--program", help="medicare or medicaid (whose NCCI program published it).")


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise typer.BadParameter(f"unknown kind '{kind}'; {KIND_HELP}", param_hint="KIND")
    return kind


@data_app.command("import")
def data_import(
    kind: str = typer.Argument(..., help=KIND_HELP),
    files: list[Path] = typer.Argument(..., help="The files as downloaded from CMS: .txt, .csv, .xlsx, or the .zip "
                                                 "they come in (a practitioner PTP release is several files)."),
    release: str = typer.Option(..., "--release", help="The period the files are for: 2026Q1, or 2026 for a "
                                                        "calendar-year list; a correction gets a suffix (2026Q1r1)."),
    program: str = ProgramOpt,
    published: Optional[str] = typer.Option(None, "--published", metavar="DATE", callback=parse_date, help="When CMS published it (the "
                                            "date its rows became known; default: the first day of the period)."),
    db: Optional[str] = DbOpt,
) -> None:
    """Import one release of CMS reference data into the store, all or nothing.

    Importing the same release again changes nothing; other rows under a name already imported
    are refused (import a correction under its own name).
    """
    from ..reference.layouts import LayoutError
    from ..reference.releases import ReleaseError, import_release

    kind = _kind(kind)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        err.print(f"no such file: {', '.join(missing)}", style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    store = open_store(db)
    started = time.perf_counter()
    try:
        result = import_release(store, kind, program, release, files, published)
    except (LayoutError, ReleaseError) as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    r = result.release
    if result.created:
        out.print(f"imported {kind} {r.name} ({r.program}): {r.rows:,} rows from {len(files)} file(s), known from "
                  f"{r.published}, in {time.perf_counter() - started:.1f} s", highlight=False)
    else:
        out.print(f"{kind} {r.name} ({r.program}) is already imported with these rows: nothing changed",
                  highlight=False)


@data_app.command("list")
def data_list(db: Optional[str] = DbOpt,
              format: str = typer.Option("table", "--format", "-f", help="table or json.")) -> None:
    """Imported releases per kind and program, with their periods and when they became known."""
    from rich.table import Table

    from ..reference.releases import list_releases

    releases = list_releases(open_store(db))
    if format == "json":
        sys.stdout.write(json.dumps([{"kind": r.kind, "program": r.program, "release": r.name,
                                      "period": [r.period_start.isoformat(), r.period_end.isoformat()],
                                      "published": r.published.isoformat(), "rows": r.rows,
                                      "files": json.loads(r.files)} for r in releases], indent=2) + "\n")
        return
    if not releases:
        out.print("no CMS release imported yet (payerpolicy data import KIND FILE... --release 2026Q1)")
        return
    table = Table(box=None, header_style="bold")
    for column in ("kind", "program", "release", "period", "known from", "rows"):
        table.add_column(column, no_wrap=True, justify="right" if column == "rows" else "left")
    for r in releases:
        table.add_row(r.kind, r.program, r.name, f"{r.period_start} .. {r.period_end}", str(r.published),
                      f"{r.rows:,}")
    out.print(table)


@data_app.command("show")
def data_show(
    kind: str = typer.Argument(..., help=KIND_HELP),
    code: str = typer.Argument(..., help="A HCPCS/CPT code."),
    date: Optional[str] = typer.Option(None, "--date", metavar="DATE", callback=parse_date,
                                       help="Date of service (default today)."),
    known_on: Optional[str] = typer.Option(None, "--known-on", metavar="DATE", callback=parse_date, help="As known on this date "
                                           "(default today): releases published later are not seen."),
    program: str = ProgramOpt,
    db: Optional[str] = DbOpt,
    format: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """A code's rows in the release that governs a date of service, as known on a date."""
    from rich.table import Table

    from ..reference.releases import ReleaseError, show_rows

    kind = _kind(kind)
    today = clock.today()
    day = date or today
    known = known_on or today
    try:
        release, rows = show_rows(open_store(db), kind, program, code, day, known)
    except ReleaseError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    if format == "json":
        sys.stdout.write(json.dumps({"release": release.name if release else None, "date": day.isoformat(),
                                     "known_on": known.isoformat(), "rows": rows}, indent=2, default=str) + "\n")
        return
    if release is None:
        out.print(f"no imported {program} {kind} release covers {day} as known on {known}", highlight=False)
        raise typer.Exit(1)
    out.print(f"{kind} {release.name} ({program}, known from {release.published}) for {code.upper()} on {day}:",
              highlight=False)
    if not rows:
        out.print("  no rows for this code", highlight=False)
        return
    table = Table(box=None, header_style="bold")
    for column in rows[0]:
        table.add_column(column, no_wrap=True)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row.values()])
    out.print(table)


@data_app.command("diff")
def data_diff(
    kind: str = typer.Argument(..., help=KIND_HELP),
    first: str = typer.Argument(..., help="The earlier release (e.g. 2026Q1)."),
    second: str = typer.Argument(..., help="The later release (e.g. 2026Q2)."),
    program: str = ProgramOpt,
    samples: int = typer.Option(10, "--samples", min=0, help="Rows to show of each change."),
    db: Optional[str] = DbOpt,
    format: str = typer.Option("table", "--format", "-f", help="table or json."),
) -> None:
    """What changed between two releases: rows added, removed, and changed (deletion dates, modifier
    indicators, values), with counts and samples - the quarterly change report."""
    from ..reference.releases import ReleaseError, diff_releases

    kind = _kind(kind)
    try:
        d = diff_releases(open_store(db), kind, program, first, second, samples)
    except ReleaseError as exc:
        err.print(str(exc), style="red", markup=False, highlight=False)
        raise typer.Exit(2)
    if format == "json":
        sys.stdout.write(json.dumps({"kind": kind, "program": program, "from": first, "to": second,
                                     "added": d.added, "removed": d.removed, "changed": d.changed,
                                     "samples": d.samples}, indent=2, default=str) + "\n")
        return
    out.print(f"{kind} ({program}) {first} -> {second}: {d.added:,} added, {d.removed:,} removed, "
              + ", ".join(f"{n:,} with {column} changed" for column, n in d.changed.items()), highlight=False)
    for label in ("added", "removed", "changed"):
        for row in d.samples[label]:
            shown = ", ".join(f"{k}={'' if v is None else v}" for k, v in row.items())
            out.print(f"  {MARKS[label]} {shown}", highlight=False, markup=False)
