"""The command line: one entry point, ``payerpolicy``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import clock
from .cases import run_cases
from .claims import Claim
from .pipeline import UsageError, read_claim_files, replay, scrub_items
from .policy.fields import describe
from .policy.loader import PolicyLoadError, load_policies
from .policy.model import PolicySet
from .policy.snapshot import resolve
from .report import print_table, to_html, to_json
from .store import Store

app = typer.Typer(help="A payer-policy rules engine for professional claims: scrub, explain, ask what-if.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
policy_app = typer.Typer(help="Validate, test and inspect the policy tree.", no_args_is_help=True)
runs_app = typer.Typer(help="Stored scrub runs: list, show, replay.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(runs_app, name="runs")

out = Console(soft_wrap=True)
err = Console(stderr=True)
PROGRESS_MIN = 200


class Format(str, Enum):
    table = "table"
    json = "json"
    html = "html"


class ShortFormat(str, Enum):
    table = "table"
    json = "json"


def _date(value: Optional[str]) -> Optional[dt.date]:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)") from None


PoliciesOpt = typer.Option(None, "--policies", help="Policy tree to use (default: the bundled one).",
                           file_okay=False, dir_okay=True)
KnownOnOpt = typer.Option(None, "--known-on", help="Judge by the rules as known on this date (default today).",
                          callback=_date, metavar="DATE")
DbOpt = typer.Option(None, "--db", help="SQLAlchemy URL of the store (default: $PAYERPOLICY_DB or a SQLite "
                                         "file in the user data directory).")


def _load(policies: Optional[Path]) -> PolicySet:
    try:
        return load_policies(policies)
    except PolicyLoadError as exc:
        for e in exc.errors:
            err.print(f"[red]{e}[/]", highlight=False)
        raise typer.Exit(2)


@app.command()
def scrub(
    files: list[Path] = typer.Argument(..., help="Claim files: JSON (object, list, {claims: [...]}) or JSON Lines."),
    format: Format = typer.Option(Format.table, "--format", "-f", help="table, json or html."),
    known_on: Optional[str] = KnownOnOpt,
    payer: Optional[str] = typer.Option(None, "--payer", help="Judge every claim as this payer key."),
    db: Optional[str] = DbOpt,
    no_store: bool = typer.Option(False, "--no-store", help="Neither read history from nor write to the store."),
    policies: Optional[Path] = PoliciesOpt,
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report here instead of stdout."),
) -> None:
    """Judge claims line by line: what the payer will deny, why, the citation, the CARC and the fix.

    Exit code 0 when no claim is rejected or invalid, 1 when one is, 2 for usage errors.
    """
    policy = _load(policies)
    if payer is not None and payer.lower() not in policy.payers:
        raise typer.BadParameter(f"unknown payer '{payer}'; known: {', '.join(sorted(policy.payers))}",
                                 param_hint="--payer")
    try:
        items = read_claim_files(files)
    except UsageError as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    if payer:
        items = [i.model_copy(update={"payer": payer.lower()}) if isinstance(i, Claim) else i for i in items]
    day = known_on or clock.today()
    store = None if no_store else Store(db)
    options = {"payer": payer, "format": format.value}
    show_progress = err.is_terminal and len(items) >= PROGRESS_MIN
    with Progress(TextColumn("scrubbing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not show_progress) as bar:
        task = bar.add_task("scrub", total=len(items))
        outcome = scrub_items(items, policy, day, store, options, progress=lambda n: bar.advance(task, n))
    result = outcome.result
    if format is Format.json:
        text = to_json(result)
    elif format is Format.html:
        text = to_html(result)
    else:
        text = None
    if text is not None:
        if output:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    else:
        console = Console(file=output.open("w", encoding="utf-8"), width=160) if output else out
        print_table(result, console, outcome.run_id)
    raise typer.Exit(result.exit_code)


@policy_app.command("validate")
def policy_validate(policies: Optional[Path] = PoliciesOpt) -> None:
    """Load and check the policy tree; print every problem as file:line: message (exit 1 on any)."""
    try:
        policy = load_policies(policies)
    except PolicyLoadError as exc:
        for e in exc.errors:
            out.print(str(e), highlight=False, markup=False)
        out.print(f"{len(exc.errors)} problem(s)")
        raise typer.Exit(1)
    rules = sum(len(layer.rules) for layer in policy.layers.values())
    out.print(f"ok: {len(policy.layers)} layers, {rules} rule revisions, {len(policy.cases)} cases, "
              f"{len(policy.payers)} payers ({policy.digest})", highlight=False)


@policy_app.command("lint")
def policy_lint(policies: Optional[Path] = PoliciesOpt, known_on: Optional[str] = KnownOnOpt) -> None:
    """Checks beyond validity: code-life gaps, coverage both ways, low-confidence errors, unused sources.

    Exit 1 when any check reports something.
    """
    from .lint import lint

    report = lint(_load(policies), known_on or clock.today())
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
    table = Table(box=None, header_style="bold")
    table.add_column("run", no_wrap=True)
    table.add_column("started", no_wrap=True)
    for column in ("known on", "policy", "claims", "clean", "review", "reject", "invalid"):
        table.add_column(column)
    for run in Store(db).runs(limit):
        table.add_row(run.id, run.started_at.strftime("%Y-%m-%d %H:%M"), str(run.known_on),
                      run.policy_digest[7:15], str(run.claims), str(run.clean), str(run.review),
                      str(run.reject), str(run.invalid))
    out.print(table)


@runs_app.command("replay")
def runs_replay(run_id: str, db: Optional[str] = DbOpt) -> None:
    """Re-run a stored run from its receipt (stored policy version, input, known_on) and compare."""
    store = Store(db)
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
    app()


if __name__ == "__main__":
    main()
