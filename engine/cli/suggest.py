"""Suggest: what to bill for an encounter."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ._app import app
from ._options import KnownOnOpt, PoliciesOpt, ShortFormat, count, load_tree, out, parse_date


@app.command()
def suggest(
    file: Optional[Path] = typer.Argument(None, help="A claim or encounter in the DESIGN.md JSON (lines ignored)."),
    payer: Optional[str] = typer.Option(None, "--payer"),
    state: Optional[str] = typer.Option(None, "--state"),
    date: Optional[str] = typer.Option(None, "--date", callback=parse_date, metavar="DATE", help="Date of service."),
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
    from ..suggest import suggest as run_suggest

    policy = load_tree(policies)
    raw: dict = {}
    if file is not None:
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            raise typer.BadParameter(f"{file} is not a JSON claim or encounter")
        several = raw["claims"] if isinstance(raw, dict) and isinstance(raw.get("claims"), list) else raw
        if isinstance(several, list):
            if len(several) != 1:
                raise typer.BadParameter(f"{file} holds {count(len(several), 'encounter')}; suggest answers for "
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
        from ..reference.lookup import reference_path

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
