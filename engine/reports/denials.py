"""The denial analysis as one self-contained HTML page: totals, charts (inline SVG), the
rule table, the unexplained pairs and the worklist. No scripts, no network."""

from __future__ import annotations

import html
from typing import Any

from ..denials import DenialReport
from ..money import ZERO, show_money

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


def _table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render(report: DenialReport) -> str:
    totals = report.totals()
    cats = totals["by_category"]
    money = totals["charges_by_category"]
    to_recover = sum((r["charge"] for r in report.iter_worklist()), ZERO)
    cards = "".join(
        f'<div class="card" style="border-color:{COLORS[c]}"><div class="n" id="total-{c}">{cats.get(c, 0)}</div>'
        f'<div>{c.replace("_", " ")}</div><div class="money">{show_money(money.get(c, ZERO))}</div></div>'
        for c in COLORS)
    trends = report.trends()
    charts = "".join([
        _bars("Lines by outcome", [(c.replace("_", " "), cats.get(c, 0)) for c in COLORS], "#34495e", chart_id="chart-outcome"),
        _bars("Denied charges by month of service", [(k, v["dollars"]) for k, v in trends["month"].items()],
              money=True, chart_id="chart-month"),
        _bars("Denied lines by payer", [(k, v["denied"]) for k, v in trends["payer"].items()], chart_id="chart-payer"),
        _bars("Denied lines by CARC", sorted(((k, v["denied"]) for k, v in trends["carc"].items()),
                                             key=lambda kv: -kv[1])[:12], "#c0392b", chart_id="chart-carc"),
        _bars("Denied lines by code family", [(k, v["denied"]) for k, v in trends["family"].items()],
              "#16a085", chart_id="chart-family"),
    ])
    rules = _table(["rule", "payer", "CARC", "fired", "payer agreed", "precision", "recall", "charges"],
                   [[r["rule"], r["payer"], r["carc"] or "", r["fired"], r["agreed"],
                     "" if r["precision"] is None else f"{r['precision']:.0%}",
                     "" if r["recall"] is None else f"{r['recall']:.0%}", show_money(r["dollars"])]
                    for r in report.rule_stats()], "rules")
    unexplained = _table(["CARC", "payer", "lines", "charges"],
                         [[u["carc"], u["payer"], u["lines"], show_money(u["dollars"])] for u in report.top_unexplained()],
                         "unexplained")
    worklist = _table(["claim", "line", "code", "payer", "charge", "action", "rule", "reason", "source"],
                      [[w["claim_id"], w["line"], w["code"], w["payer"], show_money(w["charge"]), w["action"], w["rule"],
                        w["reason"], w["source"]] for w in report.worklist()], "worklist")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>payerpolicy denial analysis</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}}
.cards{{display:flex;gap:12px;flex-wrap:wrap}} .card{{border-left:6px solid;padding:8px 14px;background:#f7f7f7;min-width:120px}}
.card .n{{font-size:2em;font-weight:bold}} .money{{color:#555}}
.chart{{margin:1.5em 0}} figcaption{{font-weight:bold;margin-bottom:6px}}
.label,.value{{font-size:12px;fill:#333}} table{{border-collapse:collapse;width:100%;margin:1em 0}}
td,th{{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;font-size:13px;vertical-align:top}}
.recover{{font-size:1.3em}}
</style></head><body>
<h1>Denial analysis</h1>
<p>Known on {report.known_on}; {totals['lines']} remitted lines, {totals['denied_lines']} denied;
{totals['unmatched_remits']} remitted claims without a claim, {totals['unremitted_claims']} claims without a remit.</p>
<p class="recover" id="to-recover">To correct, resubmit or appeal: <strong>{show_money(to_recover)}</strong></p>
<div class="cards">{cards}</div>
{charts}
<h2>Rules: how often they fired and how often the payer agreed</h2>{rules}
<h2>Top unexplained CARC and payer pairs</h2>{unexplained}
<h2>Worklist, by charges</h2>{worklist}
</body></html>
"""
