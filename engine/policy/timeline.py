"""A code's history on two time axes, for one payer: when each rule and code value is in force
(dates of service) and when it became known (published), so a retroactive change shows as
knowledge arriving after the dates it governs.

Rows are the code's values, the rules that name the code or its kinds, and the rules that
turn on a derived fact (a telehealth line, for instance) and so can apply to any code billed
that way. Each rule revision is its own row.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

from .diff import _names, derived_only
from .loader import EARLIEST
from .model import PolicySet


@dataclass
class Row:
    kind: str  # "code", "rule" (names the code or its kinds), "derived" (turns on a derived fact)
    layer: str
    label: str
    detail: str
    source: str
    start: dt.date
    end: dt.date | None  # last day in force, None while open
    published: dt.date | None  # None: part of the code set from the start (always known)
    severity: str | None = None

    reaches_back: bool = False  # it changed dates an earlier revision had already reached

    @property
    def retroactive(self) -> bool:
        return self.published is not None and (self.published > self.start or self.reaches_back)


def code_timeline(policy: PolicySet, payer: str, code: str, state: str | None = None) -> list[Row]:
    chain = policy.payers[payer].chain(state)
    code = code.upper()
    rows: list[Row] = []
    kinds: set[str] = set()
    for name in chain:
        seen: set[tuple] = set()  # a later revision repeats what still holds; show only what it changes
        for rev in sorted(policy.layers[name].codes.get(code, []), key=lambda r: r.published):
            for value in rev.values:
                if "kind" in value.attrs:
                    kinds.add(value.attrs["kind"])
                fingerprint = (value.effective.from_, value.effective.to, tuple(sorted(map(str, value.attrs.items()))))
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                detail = ", ".join(f"{k}={value.attrs[k]}" for k in sorted(value.attrs)) or "(no change)"
                status = value.attrs.get("status")
                rows.append(Row("code", name, f"code {code}" + (f" {status}" if status else ""), detail, value.source,
                                value.effective.from_, value.effective.to,
                                None if rev.published == EARLIEST else rev.published,
                                "error" if status == "deleted" or value.attrs.get("covered") is False else None))
    for name in chain:
        for rule in policy.layers[name].rules:
            if rule.derive:
                continue
            named = _names(rule, code, kinds)
            if not named and not derived_only(rule):
                continue
            then = rule.then
            rows.append(Row("rule" if named else "derived", name, rule.rule_id, rule.title, rule.source,
                            rule.effective.from_, rule.effective.to, rule.published,
                            then.severity if then else None))
    rows.sort(key=lambda r: (r.kind != "code", r.kind == "derived", r.label, r.layer, r.published or EARLIEST))
    for before, after in zip(rows, rows[1:]):
        # a rule's later revision that moves its start once the earlier start had passed reaches back
        if after.kind != "code" and (before.kind, before.layer, before.label) == (after.kind, after.layer, after.label) and \
                after.published is not None and after.start != before.start and after.published > before.start:
            after.reaches_back = True
    return rows


COLORS = {"error": "#a4161a", "warning": "#8a5300", "info": "#4a5560", None: "#1f5fae"}


def timeline_svg(rows: list[Row], today: dt.date, first_year: int = 2008) -> str:
    """The rows as an SVG: one bar per row over dates of service, a diamond where it became
    known (hollow when that was after the dates it governs began: retroactive)."""
    start = dt.date(first_year, 1, 1)
    end = dt.date(max(today.year + 3, max((r.end or today).year + 1 for r in rows) if rows else today.year + 3), 1, 1)
    left, width, row_h, top = 330, 620, 22, 30
    span = (end - start).days

    def x(day: dt.date) -> float:
        day = min(max(day, start), end)
        return left + width * (day - start).days / span

    parts = [f'<svg class="timeline" role="img" aria-labelledby="timeline-title" width="{left + width + 20}" '
             f'height="{top + row_h * len(rows) + 30}" xmlns="http://www.w3.org/2000/svg">',
             '<title id="timeline-title">When each rule and code value is in force (bars, by date of service) '
             'and when it became known (diamonds; hollow: published after the dates it governs began)</title>']
    for year in range(first_year, end.year + 1, 2):
        gx = x(dt.date(year, 1, 1))
        parts.append(f'<line class="axis" x1="{gx:.1f}" y1="{top - 8}" x2="{gx:.1f}" '
                     f'y2="{top + row_h * len(rows)}" stroke="#d5dbe1"/>'
                     f'<text x="{gx:.1f}" y="{top - 12}" text-anchor="middle">{year}</text>')
    tx = x(today)
    parts.append(f'<line x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{top + row_h * len(rows)}" '
                 f'stroke="#f2a900" stroke-dasharray="4 3"/>')
    for index, row in enumerate(rows):
        y = top + index * row_h
        color = COLORS.get(row.severity, COLORS[None]) if row.kind != "derived" else "#6b7785"
        x1, x2 = x(row.start), x(row.end + dt.timedelta(days=1) if row.end else end)
        label = html.escape(f"{row.layer}: {row.label}")
        parts.append(f'<text x="4" y="{y + 15}">{label[:52]}</text>')
        parts.append(f'<rect x="{x1:.1f}" y="{y + 4}" width="{max(x2 - x1, 2):.1f}" height="{row_h - 8}" '
                     f'fill="{color}" opacity="0.85"><title>{html.escape(row.detail)}: in force {row.start}'
                     f'..{row.end or "open"}</title></rect>')
        if row.published is not None:
            px, fill = x(row.published), "#fff" if row.retroactive else "#1d2329"
            parts.append(f'<path d="M{px:.1f} {y + 3} l6 8 l-6 8 l-6 -8 z" fill="{fill}" stroke="#1d2329" '
                         f'stroke-width="1.5"><title>published {row.published}'
                         f'{" (retroactive)" if row.retroactive else ""}</title></path>')
    parts.append("</svg>")
    return "".join(parts)
