"""Findings -> what a person reads: one claim's lines of the readable report, and its summary.

The streaming writers (``writers.py``) use these for the table; JSON, JSON Lines,
Parquet and HTML are written there too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.text import Text

STATUS_STYLE = {"clean": "green", "review": "yellow", "reject": "bold red", "invalid": "magenta", "history": "dim"}
SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": "cyan"}


# A claim's status as people say it (the HTML report and the workbench).
STATUS_WORDS = {"clean": "expected to be paid", "review": "review before sending", "reject": "will be denied",
                "invalid": "cannot be judged"}


def fix_text(fix: dict | None) -> str:
    """A fix as a sentence: the policy's own words, then the exact change when there is one."""
    if not fix:
        return ""
    change = []
    if fix.get("to"):
        change.append(f"bill {fix['to']}")
    if fix.get("add_modifiers"):
        change.append("add modifier " + ", ".join(fix["add_modifiers"]))
    if fix.get("remove_modifiers"):
        change.append("remove modifier " + ", ".join(fix["remove_modifiers"]))
    text = (fix.get("text") or "").strip()
    if not change:
        return text
    said = "; ".join(change)
    return f"{text} (In short: {said}.)" if text else said[:1].upper() + said[1:] + "."


def claim_lines(claim: dict[str, Any], position: int) -> list[Text]:
    """One claim result (as in the JSON ``claims[]``) as the lines of the readable report."""
    label = claim["id"] or f"(claim {position}, no id)"
    lines = [Text.assemble((f"{label}  ", "bold"), (claim["status"].upper(), STATUS_STYLE[claim["status"]]))]
    for e in claim.get("errors", ()):
        lines.append(Text.assemble("  ", ("invalid ", "magenta"), f"{e['field']}: {e['reason']}"))
    for e in claim.get("notes", ()):
        lines.append(Text.assemble("  ", ("x12 note ", "yellow"), f"{e['field']}: {e['reason']}"))
    for f in claim.get("findings", ()):
        carc = f"{f['group'] or ''}-{f['carc']}" + ((" " + ",".join(f["rarc"])) if f["rarc"] else "") if f["carc"] else ""
        lines.append(Text.assemble(
            f"  line {f['line']} {f['code']}  ", (f"{f['severity']:<7}", SEVERITY_STYLE[f["severity"]]), "  ",
            (f"{carc}  " if carc else ""), (f["rule"], "bold"), (f"  [{f['confidence']}]", "dim")))
        lines.append(Text("      " + f["message"]))
        if f["fix"]:
            lines.append(Text("      fix: " + fix_text(f["fix"]), style="dim"))
    return lines


def summary_line(s: dict[str, int], known_on: dt.date, policy_version: str, run_id: str | None,
                 file_problems: int = 0) -> str:
    return (f"\n{s['claims']:,} claim{'' if s['claims'] == 1 else 's'}: [green]{s['clean']} clean[/], [yellow]{s['review']} review[/], "
            f"[red]{s['reject']} reject[/], [magenta]{s['invalid']} invalid[/]"
            + (f", {s['history']} history" if s["history"] else "")
            + (f"; [magenta]{file_problems} file problem{'s' if file_problems != 1 else ''}[/]" if file_problems else "")
            + f"  (known on {known_on}, policy {policy_version[:19]}…"
            + (f", run {run_id}" if run_id else "") + ")")
