"""Remits: what was read from 835 remittances."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..money import show_money
from ._app import app
from ._options import ShortFormat, err, out


@app.command()
def remits(
    files: list[Path] = typer.Argument(..., help="X12 835 remittance files."),
    format: ShortFormat = typer.Option(ShortFormat.table, "--format", "-f"),
) -> None:
    """Show what was read from 835 remittances: claims, lines, every CAS adjustment, remarks, PLB."""
    from ..x12.remit835 import read_835

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
                  f"payment {show_money(remit.payment)}", highlight=False)
        for e in remit.errors:
            out.print(f"  [red]{e}[/]", highlight=False)
        for c in remit.claims:
            adj = "; ".join(f"{a.group}-{a.carc} {show_money(a.amount)}" for a in c.adjustments)
            owed = f", patient owes {show_money(c.patient_responsibility)}" if c.patient_responsibility is not None else ""
            out.print(f"  claim {c.claim_id}: {c.status_text or c.status}, charge {show_money(c.charge)}, "
                      f"paid {show_money(c.paid)}"
                      + owed + (f", adjustments {adj}" if adj else "")
                      + (f", remarks {', '.join(c.remarks)}" if c.remarks else ""), highlight=False, markup=False)
            for ln in c.lines:
                mods = ("-" + "-".join(ln.modifiers)) if ln.modifiers else ""
                adj = "; ".join(f"{a.group}-{a.carc} {show_money(a.amount)}" for a in ln.adjustments)
                out.print(f"    line {ln.position} {ln.code}{mods} {ln.service_date or ''}: charge {show_money(ln.charge)}, "
                          f"paid {show_money(ln.paid)}, units {ln.units:g}" + (f", {adj}" if adj else "")
                          + (f", remarks {', '.join(ln.remarks)}" if ln.remarks else ""), highlight=False, markup=False)
        for plb in remit.provider_adjustments:
            out.print(f"  provider adjustment {plb.reason} {show_money(plb.amount)}", highlight=False, markup=False)
    raise typer.Exit(1 if any(r.errors for _, r in found) else 0)
