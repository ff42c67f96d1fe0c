"""The denial analysis as one self-contained HTML page: totals, charts (inline SVG), the
rule table, the unexplained pairs and the worklist. No scripts, no network."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from ..denials import DenialReport
from ..money import ZERO, show_money
from .reasons import carc_text

TEMPLATES = Path(__file__).parent / "templates"

COLORS = {"predicted": "#c0392b", "overturned": "#8e44ad", "unexplained": "#7f8c8d",
          "false_positive": "#e67e22", "agreed_paid": "#27ae60"}


def _bars(title: str, items: list[tuple[str, Any]], color: str = "#2c7fb8", money: bool = False,
          chart_id: str = "") -> str:
    if not items:
        return f'<figure class="chart" id="{chart_id}"><figcaption>{html.escape(title)}</figcaption><p>none</p></figure>'
    width, bar_h, label_w = 640, 22, 170
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        w = int((width - label_w - 90) * value / top)
        y = i * (bar_h + 6)
        shown = show_money(value) if money else f"{value:,.0f}"
        rows.append(f'<text x="0" y="{y + 16}" class="label">{html.escape(label)}</text>'
                    f'<rect class="bar" x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" fill="{color}"/>'
                    f'<text x="{label_w + w + 6}" y="{y + 16}" class="value">{shown}</text>')
    height = len(items) * (bar_h + 6)
    return (f'<figure class="chart" id="{chart_id}"><figcaption>{html.escape(title)}</figcaption>'
            f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">{"".join(rows)}</svg>'
            f'</figure>')


CATEGORIES = {
    "predicted": ("denied, and a rule in force when the payer adjudicated explains it",
                  "correct the claim as the fix says and resubmit"),
    "overturned": ("denied and explained then, but a change published later applies back to the date of "
                   "service, so the line is payable as known today", "ask the payer to reprocess, or appeal"),
    "unexplained": ("denied, and no rule predicts it: a gap in the policy data, or a payer error",
                    "look at the payer's reason and remarks"),
    "false_positive": ("paid, although a rule said it would be denied", "review that rule"),
    "agreed_paid": ("paid, and no rule objected", "nothing"),
}


def natural_key(text: str) -> list:
    """Y-2 before Y-100: numbers inside a claim id compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text) if part]


def report_context(report: DenialReport) -> dict[str, Any]:
    """What the denial report shows, for the static page and the workbench alike."""
    totals = report.totals()
    cats = totals["by_category"]
    money = totals["charges_by_category"]
    trends = report.trends()
    charts = [
        _bars("Lines by outcome", [(c.replace("_", " "), cats.get(c, 0)) for c in COLORS], "#34495e", chart_id="chart-outcome"),
        _bars("Denied charges by month of service", [(k, v["dollars"]) for k, v in trends["month"].items()],
              money=True, chart_id="chart-month"),
        _bars("Denied lines by payer", [(k, v["denied"]) for k, v in trends["payer"].items()], chart_id="chart-payer"),
        _bars("Denied lines by CARC", sorted(((k, v["denied"]) for k, v in trends["carc"].items()),
                                             key=lambda kv: -kv[1])[:12], "#c0392b", chart_id="chart-carc"),
        _bars("Denied lines by code family", [(k, v["denied"]) for k, v in trends["family"].items()],
              "#16a085", chart_id="chart-family"),
    ]
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for row in report.iter_worklist():
        group = groups.setdefault((row["rule"], row["payer"]), {
            "rule": row["rule"], "payer": row["payer"], "action": row["action"], "reason": row["reason"],
            "fix": row["fix"], "source": row["source"], "lines": [], "total": ZERO})
        group["lines"].append(dict(row, charge_text=show_money(row["charge"])))
        group["total"] += row["charge"]
    worklist = sorted(groups.values(), key=lambda g: (-g["total"], g["rule"], g["payer"]))
    for group in worklist:
        group["lines"].sort(key=lambda r: (natural_key(str(r["claim_id"])), r["line"]))
        group["total_text"] = show_money(group["total"])
    return {
        "known_on": report.known_on, "totals": totals, "to_recover": show_money(sum((g["total"] for g in worklist), ZERO)),
        "cards": [{"category": c, "label": c.replace("_", " "), "count": cats.get(c, 0), "color": COLORS[c],
                   "money": show_money(money.get(c, ZERO)), "meaning": CATEGORIES[c][0], "action": CATEGORIES[c][1]}
                  for c in COLORS],
        "charts": charts,
        "rules": [dict(r, precision_text="" if r["precision"] is None else f"{r['precision']:.0%}",
                       recall_text="" if r["recall"] is None else f"{r['recall']:.0%}", money=show_money(r["dollars"]))
                  for r in report.rule_stats()],
        "unexplained": [dict(u, money=show_money(u["dollars"]), meaning=carc_text(u["carc"].split("-", 1)[-1]))
                        for u in report.top_unexplained()],
        "worklist": worklist,
        "files": getattr(report, "files", []),
    }


def environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def render(report: DenialReport) -> str:
    """The analysis as one self-contained HTML page (inline styles and SVG, no script, no network)."""
    return environment().get_template("denials_page.html").render(**report_context(report))
