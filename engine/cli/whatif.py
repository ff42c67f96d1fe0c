"""What-if: the claims under other values, other knowledge dates or another policy tree."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ..money import ZERO, show_money
from ._app import app
from ._options import PoliciesOpt, ShortFormat, load_tree, out, parse_date, read_batch


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
    from ..whatif import SetError, claim_variants, knowledge_dates, policy_trees

    dates = [parse_date(d) for d in known_on]
    if len(dates) > 2:
        raise typer.BadParameter("give at most two --known-on dates", param_hint="--known-on")
    policy = load_tree(policies)
    items, problems = read_batch(files, policy)
    today = clock.today()
    from ..batch import cores

    from ..reference.lookup import reference_path

    procs = workers or (cores() if len(items) > 2000 else 1)
    reference = reference_path(db)
    try:
        if policies_b is not None:
            comparisons = [policy_trees(items, policy, load_tree(policies_b), dates[0] if dates else today, procs,
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
        sys.stdout.write(json.dumps({"comparisons": [c.as_dict() for c in comparisons],
                                     "files": [p.as_dict() for p in problems]}, indent=2) + "\n")
        return
    _print_comparisons(comparisons)


def _print_comparisons(comparisons) -> None:
    from rich.table import Table
    for comp in comparisons:
        changed = comp.changed
        risk_a = sum((c.at_risk_a for c in comp.changes), ZERO)
        risk_b = sum((c.at_risk_b for c in comp.changes), ZERO)
        out.print(f"[bold]{comp.b}[/] vs {comp.a}: {len(changed)} of {len(comp.changes)} claims change; "
                  f"charges at risk {show_money(risk_a)} -> {show_money(risk_b)}", highlight=False)
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
