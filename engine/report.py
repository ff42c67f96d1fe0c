"""Findings -> what a person or a pipeline reads: a Rich table, JSON, or one HTML page."""

from __future__ import annotations

import html
import json

from rich.console import Console
from rich.text import Text

from .scrub import ScrubResult

STATUS_STYLE = {"clean": "green", "review": "yellow", "reject": "bold red", "invalid": "magenta", "history": "dim"}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


def to_json(result: ScrubResult) -> str:
    return json.dumps(result.as_dict(), indent=2)


def _fix_text(fix: dict | None) -> str:
    if not fix:
        return ""
    parts = [fix["text"]]
    if fix.get("to"):
        parts.append(f"-> {fix['to']}")
    if fix.get("add_modifiers"):
        parts.append("+" + ",".join(fix["add_modifiers"]))
    return " ".join(parts)


def print_table(result: ScrubResult, console: Console, run_id: str | None = None) -> None:
    for claim in result.claims:
        label = claim.id or f"(claim {claim.position}, no id)"
        console.print(Text.assemble((f"{label}  ", "bold"), (claim.status.upper(), STATUS_STYLE[claim.status])))
        for e in claim.errors:
            console.print(Text.assemble("  ", ("invalid ", "magenta"), f"{e.field}: {e.reason}"))
        for f in claim.findings:
            carc = f"{f.group or ''}-{f.carc}" + ((" " + ",".join(f.rarc)) if f.rarc else "") if f.carc else ""
            console.print(Text.assemble(
                f"  line {f.line} {f.code}  ", (f"{f.severity:<7}", SEVERITY_STYLE[f.severity]), "  ",
                (f"{carc}  " if carc else ""), (f.rule, "bold"), (f"  [{f.confidence}]", "dim")))
            console.print(Text("      " + f.message))
            if f.fix:
                console.print(Text("      fix: " + _fix_text(f.fix), style="dim"))
    s = result.summary
    console.print(
        f"\n{s['claims']} claims: [green]{s['clean']} clean[/], [yellow]{s['review']} review[/], "
        f"[red]{s['reject']} reject[/], [magenta]{s['invalid']} invalid[/]"
        + (f", {s['history']} history" if s["history"] else "")
        + f"  (known on {result.known_on}, policy {result.policy_version[:19]}…"
        + (f", run {run_id}" if run_id else "") + ")", highlight=False)


def to_html(result: ScrubResult) -> str:
    """One self-contained page (no scripts, no network)."""
    e = html.escape
    rows = []
    for claim in result.claims:
        label = e(claim.id or f"claim {claim.position}")
        rows.append(f'<tr class="claim {claim.status}"><th colspan="6">{label} — {claim.status}</th></tr>')
        for err in claim.errors:
            rows.append(f'<tr><td></td><td></td><td>invalid</td><td>{e(err.field)}</td><td colspan="2">{e(err.reason)}</td></tr>')
        for f in claim.findings:
            carc = e(f"{f.group or ''}-{f.carc}" if f.carc else "")
            rows.append(
                f'<tr class="{f.severity}"><td>{f.line}</td><td>{e(f.code)}</td><td>{f.severity}</td>'
                f'<td>{e(f.rule)}<br><small>{e(f.source)} · {f.confidence}</small></td><td>{carc}</td>'
                f'<td>{e(f.message)}<br><small>{e(_fix_text(f.fix))}</small></td></tr>')
    s = result.summary
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>payerpolicy scrub</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse;width:100%}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}}
tr.claim th{{background:#f4f4f4}} tr.reject th{{color:#b00}} tr.review th{{color:#a60}} tr.clean th{{color:#070}}
tr.error td:nth-child(3){{color:#b00}} tr.warning td:nth-child(3){{color:#a60}} small{{color:#666}}
</style></head><body>
<h1>Scrub report</h1>
<p>Known on {result.known_on} · policy <code>{e(result.policy_version)}</code></p>
<p>{s['claims']} claims: {s['clean']} clean, {s['review']} review, {s['reject']} reject, {s['invalid']} invalid</p>
<table><tr><th>line</th><th>code</th><th>severity</th><th>rule</th><th>CARC</th><th>message / fix</th></tr>
{''.join(rows)}
</table></body></html>
"""
