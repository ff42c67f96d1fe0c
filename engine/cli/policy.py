"""``payerpolicy policy``: validate, test and inspect the policy tree."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ..policy.fields import describe
from ..policy.loader import PolicyLoadError, load_policies
from ..policy.model import PolicySet
from ..policy.snapshot import resolve
from ._options import (DbOpt, KnownOnOpt, PoliciesOpt, ShortFormat, count, err, load_tree, open_store, out,
                       parse_date)


policy_app = typer.Typer(help="Validate, test and inspect the policy tree.", no_args_is_help=True)


@policy_app.command("validate")
def policy_validate(policies: Optional[Path] = PoliciesOpt) -> None:
    """Load and check the policy tree; print every problem as file:line: message (exit 2 on any, as for
    every command given a broken tree)."""
    try:
        policy = load_policies(policies)
    except PolicyLoadError as exc:
        for e in exc.errors:
            out.print(str(e), highlight=False, markup=False)
        out.print(count(len(exc.errors), "problem"))
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
    from ..policy.lint import lint
    from ..reference.lookup import imported_releases

    today = clock.today()
    report = lint(load_tree(policies), known_on or today, imported_releases(db), today)
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

    from ..policy.cases import run_cases
    policy = load_tree(policies)
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
    date: Optional[str] = typer.Option(None, "--date", callback=parse_date, metavar="DATE",
                                       help="Date of service (default today)."),
    state: Optional[str] = typer.Option(None, "--state", help="State, for state layers."),
    known_on: Optional[str] = KnownOnOpt,
    match: Optional[str] = typer.Option(None, "--match", help="Only rules whose id or title contains this text "
                                                                "(e.g. telehealth, telephone, prolonged, 90863)."),
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """The rules in force for a payer on a date of service, as known on a date, with sources."""
    policy = load_tree(policies)
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
    policy = load_tree(policies)
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
    from ..policy.diff import diff_policies

    changes = diff_policies(_policy_ref(old, db), _policy_ref(new, db))
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps([c.as_dict() for c in changes], indent=2) + "\n")
        return
    for c in changes:
        out.print(f"{c.layer:<20} {c.kind:<7} {c.change:<10} {c.id}" + (f"\n{'':<40}{c.detail}" if c.detail else ""),
                  highlight=False, markup=False)
    out.print(count(len(changes), "change"))


@policy_app.command("between")
def policy_between(
    payer: str = typer.Argument(..., help="Payer key from payers.yaml."),
    first: str = typer.Argument(..., metavar="DATE", callback=parse_date, help="The first date of service."),
    second: Optional[str] = typer.Argument(None, metavar="DATE", callback=parse_date,
                                           help="The second date of service (default: the first)."),
    code: Optional[str] = typer.Option(None, "--code", help="Only what touches this procedure code."),
    state: Optional[str] = typer.Option(None, "--state", help="State, for state layers."),
    known_on: Optional[str] = KnownOnOpt,
    then_known_on: Optional[str] = typer.Option(None, "--then-known-on", callback=parse_date, metavar="DATE",
                                                help="Knowledge date of the second view (default: --known-on)."),
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """What changed for a payer between two dates of service, or between two knowledge dates.

    'policy between medicare 2024-12-31 2025-01-01 --code 99442' shows the deletion of 99442;
    'policy between medicare 2025-10-15 --known-on 2025-10-20 --then-known-on 2025-11-20'
    shows what a retroactive extension changed about the same dates of service.
    """
    from ..policy.diff import View, diff_views

    policy = load_tree(policies)
    key = payer.lower()
    if key not in policy.payers:
        raise typer.BadParameter(f"unknown payer '{payer}'; known: {', '.join(sorted(policy.payers))}")
    known = known_on or clock.today()
    views = View(first, known), View(second or first, then_known_on or known)
    changes = diff_views(policy, key, state.upper() if state else None, *views, code)
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps({"payer": key, "code": code.upper() if code else None,
                                     "first": {"date_of_service": str(views[0].date_of_service),
                                               "known_on": str(views[0].known_on)},
                                     "second": {"date_of_service": str(views[1].date_of_service),
                                                "known_on": str(views[1].known_on)},
                                     "changes": [c.as_dict() for c in changes]}, indent=2) + "\n")
        return
    out.print(f"[bold]{policy.payers[key].name}[/]{' ' + code.upper() if code else ''}: from {views[0]} to {views[1]}",
              highlight=False)
    for c in changes:
        out.print(f"{c.layer:<20} {c.kind:<5} {c.change:<10} {c.id}\n{'':<38}{c.detail}", highlight=False,
                  markup=False)
    out.print(count(len(changes), "change"))


def _policy_ref(ref: str, db: Optional[str]) -> PolicySet:
    if ref.startswith("sha256:"):
        try:
            return open_store(db).load_policy(ref)
        except KeyError:
            raise typer.BadParameter(f"no stored policy version {ref}")
    path = Path(ref)
    if not path.is_dir():
        raise typer.BadParameter(f"{ref} is neither a policy folder nor a stored digest")
    return load_tree(path)


@policy_app.command("query")
def policy_query(
    text: Optional[str] = typer.Argument(None, help="A question in words: 'which payers pay audio-only E/M in TX on "
                                                    "2025-06-01', 'does Medicare cover 99213 modifier 93 at home'."),
    code: Optional[str] = typer.Option(None, "--code"),
    modifier: list[str] = typer.Option([], "--modifier"),
    pos: Optional[str] = typer.Option(None, "--pos"),
    modality: Optional[str] = typer.Option(None, "--modality", help="in-person, video, audio-only, portal"),
    location: Optional[str] = typer.Option(None, "--location", help="where the patient is: home, office, clinic"),
    provider: Optional[str] = typer.Option(None, "--provider", help="provider type: MD, NP, LCSW, ..."),
    payer: list[str] = typer.Option([], "--payer", help="Payer key(s); default every payer."),
    state: Optional[str] = typer.Option(None, "--state"),
    date: Optional[str] = typer.Option(None, "--date", callback=parse_date, metavar="DATE"),
    known_on: Optional[str] = KnownOnOpt,
    policies: Optional[Path] = PoliciesOpt,
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """Who pays a code on a date, and what they want: answered by the rules, with their ids and sources.

    The question may be words: a code or a kind of code ("audio-only E/M", "psychotherapy
    add-on", "office visit"), payers by name, a state by code or name, a date of service (ISO,
    6/1/2025 or June 1, 2025) and "as known on" a date, modifiers, POS, where the patient is and
    the provider type. Options override what the words say. The question as read is printed
    first; words it does not understand are named, and nothing is answered.
    """
    from dataclasses import replace

    from ..policy.query import ask_all, code_kinds, settle
    from ..policy.question_text import QuestionError, ReadQuestion, code_list, read_question

    policy = load_tree(policies)
    read = ReadQuestion()
    try:
        if text:
            read = read_question(text, policy.payer_names(), code_kinds(policy))
        # options say more precisely what the words said
        read = replace(read, codes=[code.upper()] if code else read.codes,
                       payers=[p.lower() for p in payer] or read.payers,
                       state=state.upper() if state else read.state, date=date or read.date,
                       known_on=known_on or read.known_on,
                       modifiers=[m.upper() for m in modifier] or read.modifiers, pos=pos or read.pos,
                       modality=modality or read.modality, location=location or read.location,
                       provider=provider or read.provider)
        asked = settle(policy, read, clock.today())
        answers = ask_all(policy, asked)
    except QuestionError as exc:
        err.print(f"policy query: {exc}", style="red", highlight=False, markup=False)
        raise typer.Exit(2)
    except ValueError as exc:
        raise typer.BadParameter(str(exc))
    codes, left_out, day = asked.codes, asked.not_in_force, asked.date
    if format is ShortFormat.json:
        sys.stdout.write(json.dumps({"question": dict(asked.as_dict(), text=text),
                                     "answers": [a.as_dict() for a in answers]}, indent=2) + "\n")
        return
    out.print(asked.sentence(), highlight=False)
    if left_out:
        out.print(f"  not asked: {code_list(left_out)}, not in force on {day}", highlight=False)
    style = {"accepted": "green", "at risk": "yellow", "denied": "red", "cannot tell": "magenta"}
    groups: dict[tuple, list] = {}
    for a in answers:
        decided = tuple((f.severity, f.rule) for f in a.findings if f.severity != "info")
        groups.setdefault((a.payer, a.state, a.verdict, decided), []).append(a)
    for (payer_key, payer_state, verdict, _), same in groups.items():
        place = payer_key + (f" ({payer_state})" if payer_state else "")
        which = "" if len(codes) == 1 else "  " + code_list([a.code for a in same])
        out.print(f"  [{style[verdict]}]{verdict:<11}[/] {place}{which}", highlight=False)
        for f in same[0].findings:
            if f.severity != "info":
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
    from ..policy.diff import code_history

    policy = load_tree(policies)
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
    from ..policy.fields import CODE_ATTRIBUTES, FIELDS

    for spec in FIELDS.values():
        source = f"  (from {spec.input})" if spec.input else ""
        out.print(f"{spec.name:<38} {spec.kind:<5} {spec.doc}{source}", highlight=False, markup=False)
    out.print("derived.<name>                         bool  a fact a derive: rule produced for the line",
              highlight=False, markup=False)
    out.print("\ncode-table attributes: " + ", ".join(f"{k} ({v})" for k, v in CODE_ATTRIBUTES.items()),
              highlight=False, markup=False)
