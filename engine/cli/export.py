"""Export: claims as an X12 837P interchange."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from .. import clock
from ..claims import Claim
from ._app import app
from ._options import PoliciesOpt, err, load_tree, read_batch


@app.command()
def export(
    files: list[Path] = typer.Argument(..., help="Claim files (JSON or JSON Lines)."),
    format: str = typer.Option("837", "--format", "-f", help="837 (005010X222A1)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o"),
    policies: Optional[Path] = PoliciesOpt,
) -> None:
    """Write claims as an X12 837P interchange (names, addresses and tax id are UNKNOWN placeholders)."""
    from ..x12.write837 import write_837

    if format != "837":
        raise typer.BadParameter("the only export format is 837", param_hint="--format")
    policy = load_tree(policies)
    items, problems = read_batch(files, policy)
    from ..x12.write837 import not_exportable

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
    raise typer.Exit(0 if len(claims) == len(items) and not problems else 1)
