"""Scrub: judge claims line by line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ._app import app
from ._options import PROGRESS_MIN, DbOpt, Format, KnownOnOpt, PoliciesOpt, err, load_tree, open_store, out


@app.command()
def scrub(
    files: list[str] = typer.Argument(..., help="Claim files: JSON (object, list, {claims: [...]}), JSON Lines, "
                                                "X12 837P (.837/.x12/.edi, or any file starting with ISA), "
                                                "Parquet (files or folders, local or at an fsspec URL), or a Tuva "
                                                "medical_claim table (Parquet or CSV)."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table, json, jsonl, html or parquet."),
    encounters: Optional[Path] = typer.Option(None, "--encounters", help="JSON keyed by claim id with the facts an "
                                              "837 or a warehouse table does not carry (encounter, "
                                              "patient.location, state, ...)."),
    known_on: Optional[str] = KnownOnOpt,
    payer: Optional[str] = typer.Option(None, "--payer", help="Judge every claim as this payer key."),
    db: Optional[str] = DbOpt,
    no_store: bool = typer.Option(False, "--no-store", help="Neither read history from nor write to the store."),
    policies: Optional[Path] = PoliciesOpt,
    output: Optional[str] = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout "
                                         "(for parquet: a folder, or FILE.parquet beside FILE.claims.parquet)."),
    pretty: Optional[bool] = typer.Option(None, "--pretty/--compact", help="Indent JSON (default: indented on a "
                                          "terminal, compact otherwise)."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Processes to judge with "
                                          "(default: every core for inputs over 2 MB, else 1)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", envvar="DASK_SCHEDULER_ADDRESS",
                                            help="A Dask distributed scheduler (tcp://host:8786) to judge on."),
    dask: bool = typer.Option(False, "--dask", help="Judge on a Dask LocalCluster of --workers processes."),
    chunk_size: int = typer.Option(1000, "--chunk-size", min=1, help="Claims judged and written at a time."),
) -> None:
    """Judge claims line by line: what the payer will deny, why, the citation, the CARC and the fix.

    Claims are read, judged and written a chunk at a time, so a batch of any size runs in
    constant memory. Exit code 0 when no claim is rejected or invalid, 1 when one is, 2 for
    usage errors.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..reports import writers
    from ..pipeline import UsageError, scrub_files

    policy = load_tree(policies)
    if payer is not None and payer.lower() not in policy.payers:
        raise typer.BadParameter(f"unknown payer '{payer}'; known: {', '.join(sorted(policy.payers))}",
                                 param_hint="--payer")
    if format is Format.parquet and not output:
        raise typer.BadParameter("parquet needs --output (a folder or FILE.parquet)", param_hint="--output")
    day = known_on or clock.today()
    out_path = Path(output) if output and "://" not in output else None
    try:
        if format is Format.json:
            writer = writers.JsonWriter(policy.digest, day, out_path,
                                        pretty if pretty is not None else (out_path is None and out.is_terminal))
        elif format is Format.jsonl:
            writer = writers.JsonLinesWriter(policy.digest, day, out_path)
        elif format is Format.html:
            writer = writers.HtmlWriter(policy.digest, day, out_path)
        elif format is Format.parquet:
            writer = writers.ParquetWriter(policy.digest, day, output)
        else:
            writer = writers.TableWriter(policy.digest, day, out, out_path)
    except (writers.OutputError, OSError) as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2)
    from ..reference.lookup import reference_path

    store = None
    if not no_store:
        store = open_store(db)
    options = {"payer": payer, "format": format.value}
    with Progress(TextColumn("scrubbing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task("scrub", total=None)
        try:
            run = scrub_files([f if "://" in f else Path(f) for f in files], policy, day, writer, payer=payer.lower() if payer else None,
                              encounters=encounters, store=store, workers=workers, scheduler=scheduler, dask=dask,
                              options=options, chunk_size=chunk_size, progress=lambda n: bar.advance(task, n),
                              total=lambda n: bar.update(task, total=n) if n >= PROGRESS_MIN else None,
                              reference=reference_path(store.url if store else db))
        except (UsageError, writers.OutputError) as exc:
            err.print(f"[red]{exc}[/]", highlight=False)
            raise typer.Exit(2)
    if format is Format.parquet:  # the tables have no place for them: say them here
        for f in run.summary.files:
            err.print(f"file {f['name']}" + (f" segment {f['segment']}" if f["segment"] else "") + f": {f['reason']}",
                      style="magenta", markup=False, highlight=False)
    raise typer.Exit(run.summary.exit_code)
