"""The command line: one entry point, ``payerpolicy``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import clock
from .claims import Claim
from .pipeline import UsageError, iter_claim_files, read_claim_files, read_encounters, replay
from .policy.fields import describe
from .policy.loader import PolicyLoadError, load_policies
from .policy.model import PolicySet
from .policy.snapshot import resolve
from .terminal import DbOpt, err, open_store, out
from .terminal import parse_date as _date

app = typer.Typer(help="A payer-policy rules engine for professional claims: scrub, explain, ask what-if.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
from .reference.cli import data_app  # noqa: E402  (its heavy imports are inside the commands)

policy_app = typer.Typer(help="Validate, test and inspect the policy tree.", no_args_is_help=True)
runs_app = typer.Typer(help="Stored scrub runs: list and replay.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(runs_app, name="runs")
app.add_typer(data_app, name="data")
PROGRESS_MIN = 200


class Format(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    html = "html"
    parquet = "parquet"


class ShortFormat(str, Enum):
    table = "table"
    json = "json"


PoliciesOpt = typer.Option(None, "--policies", help="Policy tree to use (default: the bundled one).",
                           file_okay=False, dir_okay=True)
KnownOnOpt = typer.Option(None, "--known-on", help="Judge by the rules as known on this date (default today).",
                          callback=_date, metavar="DATE")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"payerpolicy {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """A payer-policy rules engine for professional claims: scrub, explain, ask what-if."""


def _load(policies: Optional[Path]) -> PolicySet:
    try:
        return load_policies(policies)
    except PolicyLoadError as exc:
        for e in exc.errors:
            err.print(f"[red]{e}[/]", highlight=False)
        raise typer.Exit(2)


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

    from .reports import writers
    from .pipeline import UsageError, scrub_files

    policy = _load(policies)
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
    from .reference.lookup import reference_path

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


@app.command()
def suggest(
    file: Optional[Path] = typer.Argument(None, help="A claim or encounter in the DESIGN.md JSON (lines ignored)."),
    payer: Optional[str] = typer.Option(None, "--payer"),
    state: Optional[str] = typer.Option(None, "--state"),
    date: Optional[str] = typer.Option(None, "--date", callback=_date, metavar="DATE", help="Date of service."),
    provider: Optional[str] = typer.Option(None, "--provider", help="Rendering provider type: MD, NP, LCSW, ..."),
    prescribing: bool = typer.Option(False, "--prescribing-psychologist"),
    modality: Optional[str] = typer.Option(None, "--modality", help="in-person, video, audio-only, portal, "
                                                                    "remote-monitoring"),
    video_declined: bool = typer.Option(False, "--video-declined"),
    minutes: Optional[int] = typer.Option(None, "--minutes", help="Total practitioner minutes on the date."),
    psychotherapy: Optional[int] = typer.Option(None, "--psychotherapy", help="Psychotherapy minutes."),
    mdm: Optional[str] = typer.Option(None, "--mdm", help="straightforward, low, moderate, high"),
    location: Optional[str] = typer.Option(None, "--location", help="Where the patient was: home, office, ..."),
    new_patient: bool = typer.Option(False, "--new-patient"),
    rpm_days: Optional[int] = typer.Option(None, "--rpm-days"),
    rpm_minutes: Optional[int] = typer.Option(None, "--rpm-minutes"),
    incident_to: Optional[str] = typer.Option(None, "--incident-to", help="Who performed it (RN, LPN, MA) under "
                                                                          "in-suite supervision."),
    known_on: Optional[str] = KnownOnOpt,
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
    db: Optional[str] = typer.Option(None, "--db", help="The store whose imported CMS releases are read: the "
                                     "fee schedule ranks the codings by value (nothing is written)."),
) -> None:
    """What to bill for an encounter: codes, modifiers, POS and units, with reasons and alternatives.

    Shows why each alternative loses and what the note must contain; every candidate coding
    is judged by the same rules as scrub.
    """
    from .suggest import suggest as run_suggest

    policy = _load(policies)
    raw: dict = {}
    if file is not None:
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise typer.BadParameter(f"{file} is not a JSON claim or encounter")
        several = raw["claims"] if isinstance(raw, dict) and isinstance(raw.get("claims"), list) else raw
        if isinstance(several, list):
            if len(several) != 1:
                raise typer.BadParameter(f"{file} holds {_count(len(several), 'encounter')}; suggest answers for "
                                         f"one at a time (scrub judges a batch)")
            raw = several[0]
        if not isinstance(raw, dict):
            raise typer.BadParameter(f"{file} is not a JSON claim or encounter")
    enc = dict(raw.get("encounter") or {})
    for key, value in (("modality", modality), ("total_minutes", minutes), ("psychotherapy_minutes", psychotherapy),
                       ("mdm", mdm), ("rpm_days", rpm_days), ("rpm_minutes", rpm_minutes)):
        if value is not None:
            enc[key] = value
    if video_declined:
        enc["video_declined"] = True
    if enc.get("modality") == "remote-monitoring" and "interactive_communication" not in enc:
        enc["interactive_communication"] = True
    raw["encounter"] = enc
    if payer:
        raw["payer"] = payer
    if state:
        raw["state"] = state
    if date:
        raw["service_date"] = date.isoformat()
    if provider or prescribing:
        raw["rendering_provider"] = dict(raw.get("rendering_provider") or {}, **({"type": provider} if provider else {}),
                                         **({"prescribing_psychologist": True} if prescribing else {}))
    if location or new_patient:
        raw["patient"] = dict(raw.get("patient") or {}, **({"location": location} if location else {}),
                              **({"new_patient": True} if new_patient else {}))
    if incident_to:
        raw["incident_to"] = {"performed_by": incident_to, "supervision": "in-suite"}
    raw.setdefault("service_date", clock.today().isoformat())
    if "payer" not in raw:
        raise typer.BadParameter("say which payer: --payer KEY (or a payer in the file)")
    try:
        from .reference.lookup import reference_path

        answer = run_suggest(raw, policy, known_on or clock.today(), reference_path(db))
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    data = answer.as_dict()
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    if answer.recommended is None:
        out.print("[red]No coding the rules accept.[/]")
    else:
        value = f", {answer.recommended.value} RVUs" if answer.recommended.value is not None else ""
        out.print(f"[bold]Bill:[/] {answer.recommended.label()}  [dim](level by {answer.recommended.basis}{value})[/]",
                  highlight=False)
        for item in data["recommended"]:
            out.print(f"  {item['code']}: {item['reason']} [{item['source']}]", highlight=False, markup=False)
        for w in data["warnings"]:
            out.print(f"  [yellow]at risk[/] {w['rule']}: {w['message']}", highlight=False)
    if data["alternatives"]:
        out.print("[bold]Considered:[/]")
        for alt in data["alternatives"]:
            out.print(f"  {alt['code']} ({alt['basis']}): {alt['why_not']}", highlight=False, markup=False)
    if data["documentation"]:
        out.print("[bold]The note must show:[/]")
        for doc in data["documentation"]:
            out.print(f"  - {doc}", highlight=False, markup=False)
    out.print(f"[dim]Ranked {answer.ranking}.[/]", highlight=False)
    for note in data["notes"]:
        out.print(f"[magenta]{note}[/]", highlight=False)


@app.command()
def whatif(
    files: list[Path] = typer.Argument(..., help="Claim files, as for scrub."),
    set_: list[str] = typer.Option([], "--set", help="PATH=VALUE[,VALUE...] to vary: payer, state, service_date, "
                                   "place_of_service, patient.location, encounter.modality, line1.modifiers=93, "
                                   "lines.units=2 ... Several --set make a grid of every combination."),
    known_on: list[str] = typer.Option([], "--known-on", metavar="DATE",
                                       help="One date to judge by; two dates compare the batch as known on each."),
    policies_b: Optional[Path] = typer.Option(None, "--policies-b", help="Compare against this second policy tree.",
                                              file_okay=False),
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Processes to judge with "
                                          "(default: every core for batches over 2,000 claims, else 1)."),
    db: Optional[str] = typer.Option(None, "--db", help="The store whose imported CMS releases are read "
                                     "(default: $PAYERPOLICY_DB or the user's store; nothing is written)."),
) -> None:
    """Ask what changes: the claims under other values, as known on two dates, or under two policy trees.

    Shows, per claim, findings added (+), removed (-) and changed (~), the status change and the
    charges at risk. Nothing is written to the store.
    """
    from .whatif import SetError, claim_variants, knowledge_dates, policy_trees

    dates = [_date(d) for d in known_on]
    if len(dates) > 2:
        raise typer.BadParameter("give at most two --known-on dates", param_hint="--known-on")
    policy = _load(policies)
    try:
        items = read_claim_files(files, policy)
    except UsageError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    today = clock.today()
    from .batch import cores

    from .reference.lookup import reference_path

    procs = workers or (cores() if len(items) > 2000 else 1)
    reference = reference_path(db)
    try:
        if policies_b is not None:
            comparisons = [policy_trees(items, policy, _load(policies_b), dates[0] if dates else today, procs,
                                        reference)]
        elif len(dates) == 2:
            comparisons = [knowledge_dates(items, policy, dates[0], dates[1], procs, reference)]
        elif set_:
            comparisons = claim_variants(items, policy, dates[0] if dates else today, set_, procs, reference)
        else:
            raise typer.BadParameter("say what to vary: --set, two --known-on dates, or --policies-b")
    except SetError as exc:
        raise typer.BadParameter(str(exc), param_hint="--set")
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps({"comparisons": [c.as_dict() for c in comparisons]}, indent=2) + "\n")
        return
    _print_comparisons(comparisons)


def _print_comparisons(comparisons) -> None:
    from rich.table import Table
    for comp in comparisons:
        changed = comp.changed
        risk_a = sum(c.at_risk_a for c in comp.changes)
        risk_b = sum(c.at_risk_b for c in comp.changes)
        out.print(f"[bold]{comp.b}[/] vs {comp.a}: {len(changed)} of {len(comp.changes)} claims change; "
                  f"charges at risk ${risk_a:,.2f} -> ${risk_b:,.2f}", highlight=False)
        for c in changed:
            out.print(f"  {c.id or c.position}  {c.status_a} -> {c.status_b}", highlight=False)
            for f in c.removed:
                out.print(f"    [green]-[/] line {f.line} {f.rule} ({f.severity})", highlight=False)
            for f in c.added:
                out.print(f"    [red]+[/] line {f.line} {f.rule} ({f.severity}): {f.message}", highlight=False)
            for a, b in c.changed:
                out.print(f"    [yellow]~[/] line {a.line} {a.rule}: {a.severity}/{a.carc} rev {a.revision} -> "
                          f"{b.severity}/{b.carc} rev {b.revision}", highlight=False)
        by_rule = comp.by_rule()
        if by_rule:
            out.print("  by rule:", highlight=False)
            for rule, ids in by_rule.items():
                out.print(f"    {rule}: {', '.join(str(i) for i in ids)}", highlight=False, markup=False)
    if len(comparisons) > 1:
        table = Table(box=None, header_style="bold")
        table.add_column("claim", no_wrap=True)
        table.add_column("as given")
        for comp in comparisons:
            table.add_column(comp.short or comp.b, no_wrap=True)
        for index, base in enumerate(comparisons[0].changes):
            table.add_row(str(base.id or base.position), base.status_a, *[c.changes[index].status_b for c in comparisons])
        out.print(table)


@app.command()
def denials(
    claims_path: list[Path] = typer.Argument(..., metavar="FILES",
                                             help="Claim and remittance files or folders, any number, in any "
                                                  "order: each is sorted by its content (837 or JSON claims, "
                                                  "835 or CSV remits)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the HTML report here."),
    worklist: Optional[Path] = typer.Option(None, "--worklist", help="Write the worklist CSV here."),
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
    payer: Optional[str] = typer.Option(None, "--payer", help="Judge every claim as this payer key."),
    encounters: Optional[Path] = typer.Option(None, "--encounters", help="JSON of facts an 837 does not carry "
                                              "(minutes, modality, where the patient was...), by claim id."),
    known_on: Optional[str] = KnownOnOpt,
    db: Optional[str] = DbOpt,
    no_store: bool = typer.Option(False, "--no-store", help="Analyse these files only; keep nothing."),
    policies: Optional[Path] = PoliciesOpt,
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Processes to judge with "
                                          "(default: every core for claim files over 2 MB, else 1)."),
) -> None:
    """Explain past denials: each remitted line re-judged as known at adjudication and today.

    Lines are predicted, overturned (a later retroactive change: reprocess or appeal),
    unexplained, false_positive or agreed_paid. With the store, claims and remits add to
    what earlier runs kept, and the same files twice count once.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from .denials import RemitFileError, analyze, read_remit_files, sort_inputs, worklist_csv
    from .reports.denials import render

    policy = _load(policies)
    if payer and payer.lower() not in policy.payers:
        raise typer.BadParameter(f"unknown payer '{payer}'", param_hint="--payer")
    try:
        files, remit_files = sort_inputs(claims_path)
        if not files or not remit_files:
            raise FileNotFoundError(f"no {'claim' if not files else 'remittance'} files among the paths given "
                                    f"(claims: 837 or JSON; remits: 835 or CSV)")
        side = read_encounters(encounters) if encounters else None
        remits_read = read_remit_files(remit_files)
    except (FileNotFoundError, RemitFileError, UsageError) as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2)

    def valid_claims():
        for item in iter_claim_files(files, policy, side):
            if isinstance(item, Claim):
                yield item.model_copy(update={"payer": payer.lower()}) if payer else item
            else:
                err.print(f"claim {item.id or item.position} not analysed: "
                          + "; ".join(f"{e.field}: {e.reason}" for e in item.errors), highlight=False, markup=False)

    from .reference.lookup import reference_path

    try:
        if no_store:
            claims, total = valid_claims(), None
        else:
            store = open_store(db)
            store.add_denial_history(valid_claims(), remits_read)
            remits_read.close()
            claims, remits_read, total = store.denial_claims(), store.denial_remits(), store.denial_claim_count()
        show_progress = err.is_terminal and (total or 0) >= PROGRESS_MIN
        with Progress(TextColumn("re-judging"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=not show_progress) as bar:
            task = bar.add_task("denials", total=total)
            from .batch import default_workers

            result = analyze(claims, remits_read, policy, known_on or clock.today(),
                             progress=lambda n: bar.advance(task, n), keep_lines=format is ShortFormat.json,
                             workers=workers or default_workers(sum(f.stat().st_size for f in files)),
                             reference=reference_path(db))
    except UsageError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2)
    if report:
        report.write_text(render(result), encoding="utf-8")
    if worklist:
        worklist.write_text(worklist_csv(result), encoding="utf-8")
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")
        return
    totals = result.totals()
    out.print(f"{totals['lines']} remitted lines: " + ", ".join(
        f"{n} {c.replace('_', ' ')}" for c, n in sorted(totals["by_category"].items())), highlight=False)
    for row in result.worklist(limit=20):
        out.print(f"  ${row['charge']:>9,.2f}  {row['claim_id']} line {row['line']} {row['code']}: {row['action']} "
                  f"({row['rule']})", highlight=False, markup=False)
    for pair in result.top_unexplained(5):
        out.print(f"  unexplained {pair['carc']} from {pair['payer']}: {_count(pair['lines'], 'line')}",
                  highlight=False)


@app.command()
def remits(
    files: list[Path] = typer.Argument(..., help="X12 835 remittance files."),
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """Show what was read from 835 remittances: claims, lines, every CAS adjustment, remarks, PLB."""
    from .x12.remit835 import read_835

    found = []
    for path in files:
        if not path.is_file():
            err.print(f"[red]{path}: no such file[/]")
            raise typer.Exit(2)
        for remit in read_835(path.read_text(encoding="utf-8", errors="replace")):
            found.append((path, remit))
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps([dict(file=str(p), **r.model_dump(mode="json")) for p, r in found], indent=2) + "\n")
        raise typer.Exit(1 if any(r.errors for _, r in found) else 0)
    for path, remit in found:
        out.print(f"[bold]{path.name}[/]: {remit.payer_name or 'payer ?'}"
                  f"{' (' + remit.payer_id + ')' if remit.payer_id else ''}, produced {remit.production_date}, "
                  f"payment {remit.payment}", highlight=False)
        for e in remit.errors:
            out.print(f"  [red]{e}[/]", highlight=False)
        for c in remit.claims:
            adj = "; ".join(f"{a.group}-{a.carc} {a.amount}" for a in c.adjustments)
            owed = f", patient {c.patient_responsibility}" if c.patient_responsibility is not None else ""
            out.print(f"  claim {c.claim_id}: {c.status_text or c.status}, charge {c.charge}, paid {c.paid}"
                      + owed + (f", adjustments {adj}" if adj else "")
                      + (f", remarks {', '.join(c.remarks)}" if c.remarks else ""), highlight=False, markup=False)
            for ln in c.lines:
                mods = ("-" + "-".join(ln.modifiers)) if ln.modifiers else ""
                adj = "; ".join(f"{a.group}-{a.carc} {a.amount}" for a in ln.adjustments)
                out.print(f"    line {ln.position} {ln.code}{mods} {ln.service_date or ''}: charge {ln.charge}, "
                          f"paid {ln.paid}, units {ln.units}" + (f", {adj}" if adj else "")
                          + (f", remarks {', '.join(ln.remarks)}" if ln.remarks else ""), highlight=False, markup=False)
        for plb in remit.provider_adjustments:
            out.print(f"  provider adjustment {plb.reason} {plb.amount}", highlight=False, markup=False)
    raise typer.Exit(1 if any(r.errors for _, r in found) else 0)


@app.command()
def export(
    files: list[Path] = typer.Argument(..., help="Claim files (JSON or JSON Lines)."),
    format: str = typer.Option("837", "--format", "-f", help="837 (005010X222A1)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    policies: Optional[Path] = PoliciesOpt,
) -> None:
    """Write claims as an X12 837P interchange (names, addresses and tax id are UNKNOWN placeholders)."""
    from .x12.write837 import write_837

    if format != "837":
        raise typer.BadParameter("the only export format is 837", param_hint="--format")
    policy = _load(policies)
    try:
        items = read_claim_files(files, policy)
    except UsageError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    from .x12.write837 import not_exportable

    claims = [i for i in items if isinstance(i, Claim) and not not_exportable(i)]
    for bad in items:
        reasons = (["; ".join(f"{e.field}: {e.reason}" for e in bad.errors)] if not isinstance(bad, Claim)
                   else [not_exportable(bad)] if not_exportable(bad) else [])
        for reason in reasons:
            err.print(f"claim {bad.id or bad.position} not exported: {reason}", highlight=False, markup=False)
    if not claims:
        err.print("nothing to export: no claim could be written as an 837", highlight=False, markup=False)
        raise typer.Exit(1)
    text = write_837(claims, policy, now=clock.now().replace(tzinfo=None))
    if output:
        output.write_text(text, encoding="ascii", errors="replace")
    else:
        sys.stdout.write(text)
    raise typer.Exit(0 if len(claims) == len(items) else 1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port"),
    tokens_file: Optional[Path] = typer.Option(None, "--tokens-file", help="Bearer tokens, one per line "
                                               "(also PAYERPOLICY_TOKENS, comma-separated)."),
    db: Optional[str] = DbOpt,
    no_store: bool = typer.Option(False, "--no-store"),
    policies: Optional[Path] = PoliciesOpt,
    max_body: int = typer.Option(5 * 2**20, "--max-body", help="Largest request body in bytes."),
    max_claims: int = typer.Option(2000, "--max-claims", help="Most claims in one request."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds a request may take."),
    openapi: bool = typer.Option(False, "--openapi", help="Print the OpenAPI schema and exit."),
    public_docs: bool = typer.Option(False, "--public-docs", help="Serve /docs and /openapi.json without a "
                                     "token (they describe the API and hold no data)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Server processes (each loads the policy "
                                "and compiles its rules once); throughput grows with cores."),
) -> None:
    """Serve the scrubber over HTTP: /v1/scrub, /v1/suggest, /v1/whatif, /v1/policy, /v1/runs, /healthz."""
    import logging

    import uvicorn

    from .service import Limits, create_app, load_tokens

    policy = _load(policies)
    tokens = load_tokens(tokens_file)
    limits = Limits(max_body_bytes=max_body, max_claims=max_claims, timeout_seconds=timeout, public_docs=public_docs)
    from .reference.lookup import reference_path

    store = None if no_store else open_store(db)
    reference = reference_path(db)
    app_ = create_app(policy, store, tokens, limits, reference)
    if openapi:
        sys.stdout.write(json.dumps(app_.openapi(), indent=2, sort_keys=True) + "\n")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not tokens:
        err.print("[yellow]no tokens configured (PAYERPOLICY_TOKENS or --tokens-file): every data request "
                  "will be refused[/]")
    # uvicorn's access log prints raw paths and queries; the service logs routes instead.
    if workers == 1:
        uvicorn.run(app_, host=host, port=port, access_log=False, timeout_graceful_shutdown=30, log_level="info")
        return
    if store is not None:
        store.import_policy(policy)  # once, before the workers race to do it
    config = json.dumps({
        "policies": policy.root, "db": store.url if store else None, "no_store": store is None,
        "reference": reference,
        "tokens_file": str(tokens_file) if tokens_file else None, "limits": limits.model_dump()})
    _run_workers(workers, host, port, config)


def _run_workers(workers: int, host: str, port: int, config: str) -> None:
    """Start the server processes, pass SIGTERM/SIGINT on to them, and wait for them to finish."""
    import multiprocessing
    import os
    import signal

    from .service import serve_worker

    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=serve_worker, args=(host, port, config)) for _ in range(workers)]
    for child in children:
        child.start()

    def forward(signum, _frame) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()


@policy_app.command("validate")
def policy_validate(policies: Optional[Path] = PoliciesOpt) -> None:
    """Load and check the policy tree; print every problem as file:line: message (exit 2 on any, as for
    every command given a broken tree)."""
    try:
        policy = load_policies(policies)
    except PolicyLoadError as exc:
        for e in exc.errors:
            out.print(str(e), highlight=False, markup=False)
        out.print(_count(len(exc.errors), "problem"))
        raise typer.Exit(2)
    rules = sum(len(layer.rules) for layer in policy.layers.values())
    out.print(f"ok: {len(policy.layers)} layers, {rules} rule revisions, {len(policy.cases)} cases, "
              f"{len(policy.payers)} payers ({policy.digest})", highlight=False)


@policy_app.command("lint")
def policy_lint(policies: Optional[Path] = PoliciesOpt, known_on: Optional[str] = KnownOnOpt,
                db: Optional[str] = DbOpt) -> None:
    """Checks beyond validity: code-life gaps, coverage both ways, low-confidence errors, unused sources,
    and imported CMS releases older than the current quarter.

    Exit 1 when any check reports something.
    """
    from .policy.lint import lint
    from .reference.lookup import imported_releases

    today = clock.today()
    report = lint(_load(policies), known_on or today, imported_releases(db), today)
    for check, items in report.checks.items():
        mark = "[green]ok[/]" if not items else f"[yellow]{len(items)}[/]"
        out.print(f"{mark}  {check}", highlight=False)
        for item in items:
            out.print(f"      {item}", highlight=False, markup=False)
    raise typer.Exit(1 if report.problems else 0)


@policy_app.command("test")
def policy_test(
    policies: Optional[Path] = PoliciesOpt,
    known_on: Optional[str] = KnownOnOpt,
    rule: Optional[str] = typer.Option(None, "--rule", help="Only cases that name rules containing this text."),
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """Run every `cases:` block beside the rules and report per-rule coverage (exit 1 on a failure)."""
    from rich.table import Table

    from .policy.cases import run_cases
    policy = _load(policies)
    report = run_cases(policy, known_on or clock.today(), rule)
    failed = [r for r in report.results if not r.passed]
    if format is ShortFormat.json:
        data = {"cases": len(report.results), "failed": [
            {"case": r.case.name, "where": str(r.case.where), "failures": r.failures} for r in failed],
            "coverage": report.rules}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        for r in failed:
            out.print(f"[red]FAIL[/] {r.case.where} {r.case.name}", highlight=False)
            for failure in r.failures:
                out.print(f"     {failure}", highlight=False, markup=False)
        table = Table(box=None, header_style="bold")
        table.add_column("rule", no_wrap=True)
        for column in ("fired in", "expected", "expected not", "covered"):
            table.add_column(column)
        for rule_id, c in report.rules.items():
            covered = "yes" if c["expected"] and c["expected_not"] else ("fires only" if c["expected"] else "no")
            style = "green" if covered == "yes" else "yellow"
            table.add_row(rule_id, str(c["fired"]), str(c["expected"]), str(c["expected_not"]), f"[{style}]{covered}[/]")
        out.print(table)
        full = sum(1 for c in report.rules.values() if c["expected"] and c["expected_not"])
        out.print(f"{len(report.results) - len(failed)}/{len(report.results)} cases passed; "
                  f"{full}/{len(report.rules)} rules covered both ways")
    raise typer.Exit(1 if failed else 0)


@policy_app.command("show")
def policy_show(
    payer: str = typer.Argument(..., help="Payer key from payers.yaml."),
    date: Optional[str] = typer.Option(None, "--date", callback=_date, metavar="DATE",
                                       help="Date of service (default today)."),
    state: Optional[str] = typer.Option(None, "--state", help="State, for state layers."),
    known_on: Optional[str] = KnownOnOpt,
    match: Optional[str] = typer.Option(None, "--match", help="Only rules whose id or title contains this text "
                                                                "(e.g. telehealth, telephone, prolonged, 90863)."),
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """The rules in force for a payer on a date of service, as known on a date, with sources."""
    policy = _load(policies)
    key = payer.lower()
    if key not in policy.payers:
        raise typer.BadParameter(f"unknown payer '{payer}'; known: {', '.join(sorted(policy.payers))}")
    day = date or clock.today()
    known = known_on or clock.today()
    snap = resolve(policy, key, state.upper() if state else None, known)
    in_force = [r for r in snap.rules if r.revision.effective.covers(day)]
    if match:
        needle = match.lower()
        in_force = [r for r in in_force if needle in r.rule_id.lower() or needle in r.revision.title.lower()]
    in_force.sort(key=lambda r: (snap.chain.index(r.revision.layer), r.rule_id))
    if format is ShortFormat.json:
        data = {"payer": key, "chain": list(snap.chain), "date_of_service": day.isoformat(),
                "known_on": known.isoformat(), "rules": [{
                    "rule": r.rule_id, "layer": r.revision.layer, "revision": r.revision.revision,
                    "title": r.revision.title, "kind": "derive" if r.revision.derive else "finding",
                    "severity": r.severity, "carc": r.revision.then.carc if r.revision.then else None,
                    "effective": r.revision.effective.as_dict(), "when": describe(r.cond),
                    "source": r.revision.source, "source_title": policy.sources[r.revision.source].title,
                    "confidence": r.revision.confidence} for r in in_force]}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    out.print(f"[bold]{policy.payers[key].name}[/]: {' -> '.join(snap.chain)}; date of service {day}, "
              f"known on {known}; {len(in_force)} rules in force", highlight=False)
    for r in in_force:
        rev = r.revision
        does = f"derives {rev.derive}" if rev.derive else f"{r.severity}" + (f" CARC {rev.then.carc}" if rev.then.carc else "")
        out.print(f"[bold]{r.rule_id}[/]  {does}  [dim]({rev.layer}, revision {rev.revision}, in force "
                  f"{rev.effective.from_}..{rev.effective.to or ''})[/]", highlight=False)
        out.print(f"    {rev.title}", highlight=False, markup=False)
        out.print(f"    when {describe(r.cond)}", highlight=False, markup=False, style="dim")
        out.print(f"    source: {policy.sources[rev.source].title} [{rev.confidence}]", highlight=False,
                  markup=False, style="dim")


@policy_app.command("layers")
def policy_layers(policies: Optional[Path] = PoliciesOpt) -> None:
    """Each payer's layer chain and state overlays, and what each layer adds, replaces or disables."""
    policy = _load(policies)
    for payer in policy.payers.values():
        states = "".join(f"; {state}: +{' +'.join(extra)}" for state, extra in sorted(payer.states.items()))
        out.print(f"[bold]{payer.key}[/] ({payer.name}): {' -> '.join(payer.layers)}{states}", highlight=False)
    out.print()
    for name, layer in sorted(policy.layers.items()):
        ids = sorted({r.rule_id for r in layer.rules})
        replaced = sorted({r.rule_id for r in layer.rules if r.replace})
        out.print(f"[bold]{name}[/]: {len(ids) - len(replaced)} rules added, {len(layer.codes)} codes valued, "
                  f"{len(layer.diagnosis_groups)} diagnosis groups", highlight=False)
        if replaced:
            out.print(f"    replaces: {', '.join(replaced)}", highlight=False, markup=False)
        if layer.disables:
            out.print(f"    disables: {', '.join(sorted(d.rule_id for d in layer.disables))}", highlight=False,
                      markup=False)


@policy_app.command("diff")
def policy_diff(
    old: str = typer.Argument(..., help="A policy tree folder, or a stored version digest (sha256:...)."),
    new: str = typer.Argument(..., help="A policy tree folder, or a stored version digest."),
    db: Optional[str] = DbOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """What changed between two policy versions, rule by rule and code by code (not a text diff)."""
    from .policy.diff import diff_policies

    changes = diff_policies(_policy_ref(old, db), _policy_ref(new, db))
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps([c.as_dict() for c in changes], indent=2) + "\n")
        return
    for c in changes:
        out.print(f"{c.layer:<20} {c.kind:<7} {c.change:<10} {c.id}" + (f"\n{'':<40}{c.detail}" if c.detail else ""),
                  highlight=False, markup=False)
    out.print(_count(len(changes), "change"))


def _policy_ref(ref: str, db: Optional[str]) -> PolicySet:
    if ref.startswith("sha256:"):
        try:
            return open_store(db).load_policy(ref)
        except KeyError:
            raise typer.BadParameter(f"no stored policy version {ref}")
    path = Path(ref)
    if not path.is_dir():
        raise typer.BadParameter(f"{ref} is neither a policy folder nor a stored digest")
    return _load(path)


@policy_app.command("query")
def policy_query(
    text: Optional[str] = typer.Argument(None, help='A short question: "covers 99213 modifier 93 pos 10 video home".'),
    code: Optional[str] = typer.Option(None, "--code"),
    modifier: list[str] = typer.Option([], "--modifier"),
    pos: Optional[str] = typer.Option(None, "--pos"),
    modality: Optional[str] = typer.Option(None, "--modality", help="in-person, video, audio-only, portal"),
    location: Optional[str] = typer.Option(None, "--location", help="where the patient is: home, office, clinic"),
    provider: Optional[str] = typer.Option(None, "--provider", help="provider type: MD, NP, LCSW, ..."),
    payer: list[str] = typer.Option([], "--payer", help="Payer key(s); default every payer."),
    state: Optional[str] = typer.Option(None, "--state"),
    date: Optional[str] = typer.Option(None, "--date", callback=_date, metavar="DATE"),
    known_on: Optional[str] = KnownOnOpt,
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """Who pays a code on a date, and what they want: answered by the rules, with their ids and sources."""
    from .policy.query import Question, ask, parse_text

    policy = _load(policies)
    parsed: dict = {"modifiers": []}
    if text:
        try:
            parsed = parse_text(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc))
    q = Question(code=(code or parsed.get("code") or ""), date=date or clock.today(),
                 modifiers=[m.upper() for m in modifier] or parsed["modifiers"], pos=pos or parsed.get("pos"),
                 state=state.upper() if state else None, modality=modality or parsed.get("modality"),
                 location=location or parsed.get("location"), provider=provider or parsed.get("provider"))
    if not q.code:
        raise typer.BadParameter("name a code: --code 99213 or in the question")
    keys = [p.lower() for p in payer] or list(policy.payers)
    unknown = [k for k in keys if k not in policy.payers]
    if unknown:
        raise typer.BadParameter(f"unknown payer(s) {', '.join(unknown)}", param_hint="--payer")
    try:
        answers = ask(policy, q, keys, known_on or clock.today())
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps({"question": {k: str(v) if isinstance(v, dt.date) else v
                                                  for k, v in q.__dict__.items()},
                                     "answers": [a.as_dict() for a in answers]}, indent=2) + "\n")
        return
    mods = ("-" + "-".join(q.modifiers)) if q.modifiers else ""
    out.print(f"[bold]{q.code}{mods}[/] on {q.date}" + (f", POS {q.pos}" if q.pos else "")
              + (f", {q.modality}" if q.modality else "") + (f", patient at {q.location}" if q.location else ""),
              highlight=False)
    style = {"accepted": "green", "at risk": "yellow", "denied": "red", "cannot tell": "magenta"}
    for a in answers:
        where = f"{a.payer}" + (f" ({a.state})" if a.state else "")
        out.print(f"  [{style[a.verdict]}]{a.verdict:<11}[/] {where}", highlight=False)
        for f in a.findings:
            out.print(f"      {f.severity} {f.rule}: {f.message} [{f.source}, {f.confidence}]", highlight=False,
                      markup=False)


@policy_app.command("history")
def policy_history(
    payer: str = typer.Argument(..., help="Payer key."),
    code: Optional[str] = typer.Argument(None, help="Procedure code (without one: every rule of the chain)."),
    state: Optional[str] = typer.Option(None, "--state"),
    policies: Optional[Path] = PoliciesOpt,
) -> None:
    """Each dated change to a code and to the rules about it, for one payer, by date published;
    without a code, every rule revision and disable in the payer's chain."""
    from .policy.diff import code_history

    policy = _load(policies)
    if payer.lower() not in policy.payers:
        raise typer.BadParameter(f"unknown payer '{payer}'")
    events = code_history(policy, payer.lower(), code, state.upper() if state else None)
    if not events:
        out.print(f"{code or 'the payer'} has no values or rules in {payer}'s chain")
        return
    for e in events:
        out.print(f"{e.published:<14} {e.layer:<18} {e.what}", highlight=False, markup=False)
        out.print(f"{'':<33}{e.detail} [{e.source}]", highlight=False, markup=False, style="dim")


@policy_app.command("fields")
def policy_fields() -> None:
    """The facts a rule's `when` can test, and the claim field each comes from."""
    from .policy.fields import CODE_ATTRIBUTES, FIELDS

    for spec in FIELDS.values():
        source = f"  (from {spec.input})" if spec.input else ""
        out.print(f"{spec.name:<38} {spec.kind:<5} {spec.doc}{source}", highlight=False, markup=False)
    out.print("derived.<name>                         bool  a fact a derive: rule produced for the line",
              highlight=False, markup=False)
    out.print("\ncode-table attributes: " + ", ".join(f"{k} ({v})" for k, v in CODE_ATTRIBUTES.items()),
              highlight=False, markup=False)


@runs_app.command("list")
def runs_list(db: Optional[str] = DbOpt, limit: int = typer.Option(20, "--limit")) -> None:
    """The most recent stored runs with their receipts."""
    from rich.table import Table
    table = Table(box=None, header_style="bold")
    table.add_column("run", no_wrap=True)
    table.add_column("started", no_wrap=True)
    for column in ("known on", "policy", "claims", "clean", "review", "reject", "invalid"):
        table.add_column(column)
    for run in open_store(db).runs(limit):
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


def main() -> None:
    try:
        app()
    except Exception as exc:
        # The store's errors are written for people and carry no claim data; any other error
        # from the database layer is named by its type only (its text could quote a statement).
        from_store = type(exc).__module__.startswith(("engine.store", "sqlalchemy"))
        if not from_store:
            raise
        reason = str(exc) if type(exc).__module__ == "engine.store" else type(exc).__name__
        err.print(f"store: {reason}", style="red", markup=False, highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
