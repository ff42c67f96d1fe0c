"""The kinds of CMS release, their table columns, and which release governs a date.

No database library here: the facts step reads releases through ``lookup`` without importing
SQLAlchemy, so a --no-store scrub starts as fast as before releases existed.
"""

from __future__ import annotations

import datetime as dt

PROGRAMS = ("medicare", "medicaid")
# Kinds CMS publishes for Medicare only.
MEDICARE_ONLY = ("mpfs-indicators", "telehealth-list")
# Rows that carry their own effective and deletion dates: a complete file of these covers every
# date of service up to its period's end. The others are a snapshot for their period only.
DATED_ROWS = ("ncci-ptp", "ncci-addon")

# Each kind's row, in its table's column order (after release_id).
TABLE_COLUMNS = {
    "ncci-ptp": ("column1", "column2", "effective", "deletion", "modifier", "rationale"),
    "ncci-mue": ("code", "value", "mai", "rationale"),
    "ncci-addon": ("addon", "primary_code", "edit_type", "effective", "deletion"),
    "mpfs-indicators": ("code", "modifier", "status", "global_days", "rvu"),
    "telehealth-list": ("code", "status", "audio_only", "effective"),
}
TABLE_NAMES = {"ncci-ptp": "ptpedit", "ncci-mue": "mueedit", "ncci-addon": "addonedit",
               "mpfs-indicators": "mpfsindicator", "telehealth-list": "telehealthcode"}


def chosen(releases, kind: str, program: str, day: dt.date, known_on: dt.date):
    """The release that governs a date of service as known on a date: of those published by then
    that cover the date, the latest published (a later release corrects an earlier one)."""
    best = None
    for r in releases:
        if r.kind != kind or r.program != program or r.published > known_on or day > r.period_end:
            continue
        if kind not in DATED_ROWS and day < r.period_start:
            continue
        if best is None or (r.published, r.period_start, r.id) > (best.published, best.period_start, best.id):
            best = r
    return best
