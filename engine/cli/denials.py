"""Denials: past remittances re-judged as known at adjudication and today."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ..claims import Claim
from ..money import json_default, show_money
from ..pipeline import UsageError, iter_claim_files, read_encounters
from ._app import app
from ._options import (PROGRESS_MIN, DbOpt, KnownOnOpt, PoliciesOpt, ShortFormat, count, err, file_problem_text,
                       load_tree, open_store, out)


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
    fresh: bool = typer.Option(False, "--fresh", help="Keep these files in the store but analyse only them, not "
                               "what earlier runs kept."),
    policies: Optional[Path] = PoliciesOpt,
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Processes to judge with "
                                          "(default: every core for claim files over 2 MB, else 1)."),
) -> None:
    """Explain past denials: each remitted line re-judged as known at adjudication and today.

    Lines are predicted, overturned (a later retroactive change: reprocess or appeal),
    unexplained, false_positive or agreed_paid. With the store, claims and remits add to
    what earlier runs kept, and the same files twice count once; the first line of the output
    says how many claims came from earlier runs (--fresh or --no-store for these files only).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from ..denials import RemitFileError, analyze, read_remit_files, sort_inputs, worklist_csv
    from ..reports.denials import render

    policy = load_tree(policies)
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

    given = [0]
    problems: list = []

    def valid_claims(report_invalid: bool = True):
        for item in iter_claim_files(files, policy, side, files=problems if report_invalid else []):
            if isinstance(item, Claim):
                given[0] += 1
                yield item.model_copy(update={"payer": payer.lower()}) if payer else item
            elif report_invalid:
                err.print(f"claim {item.id or item.position} not analysed: "
                          + "; ".join(f"{e.field}: {e.reason}" for e in item.errors), highlight=False, markup=False)

    from ..reference.lookup import reference_path

    try:
        earlier = 0
        if no_store:
            claims, total = valid_claims(), None
        elif fresh:
            open_store(db).add_denial_history(valid_claims(), remits_read)
            claims, total = valid_claims(report_invalid=False), given[0]
        else:
            store = open_store(db)
            store.add_denial_history(valid_claims(), remits_read)
            remits_read.close()
            claims, remits_read, total = store.denial_claims(), store.denial_remits(), store.denial_claim_count()
            earlier = max(total - given[0], 0)
        show_progress = err.is_terminal and (total or 0) >= PROGRESS_MIN
        with Progress(TextColumn("re-judging"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=not show_progress) as bar:
            task = bar.add_task("denials", total=total)
            from ..batch import default_workers

            result = analyze(claims, remits_read, policy, known_on or clock.today(),
                             progress=lambda n: bar.advance(task, n), keep_lines=format is ShortFormat.json,
                             workers=workers or default_workers(sum(f.stat().st_size for f in files)),
                             reference=reference_path(db))
    except UsageError as exc:
        err.print(f"[red]{exc}[/]", highlight=False)
        raise typer.Exit(2)
    for problem in problems:  # outside every claim: said, never counted as a claim
        err.print(file_problem_text(problem), highlight=False, markup=False)
    if report:
        report.write_text(render(result), encoding="utf-8")
    if worklist:
        worklist.write_text(worklist_csv(result), encoding="utf-8")
    if format is ShortFormat.json:
        body = {"claims_from_earlier_runs": earlier, **result.as_dict(), "files": [p.as_dict() for p in problems]}
        sys.stdout.write(json.dumps(body, indent=2, default=json_default) + "\n")
        return
    if earlier:
        out.print(f"Includes {count(earlier, 'claim')} kept in the store by earlier runs (--fresh or --no-store "
                  f"analyses only the files given).", highlight=False)
    totals = result.totals()
    out.print(count(totals["lines"], "remitted line") + "".join(
        f"{': ' if not i else ', '}{n} {c.replace('_', ' ')}"
        for i, (c, n) in enumerate(sorted(totals["by_category"].items()))), highlight=False)
    for row in result.worklist(limit=20):
        out.print(f"  {show_money(row['charge']):>11}  {row['claim_id']} line {row['line']} {row['code']}: "
                  f"{row['action']} ({row['rule']})", highlight=False, markup=False)
    for pair in result.top_unexplained(5):
        out.print(f"  unexplained {pair['carc']} from {pair['payer']}: {count(pair['lines'], 'line')}",
                  highlight=False)
