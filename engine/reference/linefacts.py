"""The facts a claim line gets from imported CMS releases, computed before chaining.

Which program's tables a payer reads (Medicare's or Medicaid's NCCI) is the policy's choice
(``reference_data:`` in a layer file); only the families the payer's rules read are looked up.

What NCCI's own methodology fixes, and the policy does not choose, is kept here:

- A PTP edit's column-two code is denied when both codes are billed for the patient on the same
  date, unless the edit's modifier indicator is 1 and an NCCI-associated modifier says the
  services were distinct. On an E/M that modifier is 25 (or 57, decision for surgery) on the
  E/M itself; elsewhere 59, XE, XS, XP, XU, the anatomic modifiers, 24, 27, 58, 78, 79 or 91,
  on either line of the pair (NCCI Policy Manual ch. I; Medicaid NCCI Technical Guidance).
- Indicator 9 means the edit does not apply; a deletion date is the first date it no longer does.
- An add-on of type 1 or 3 is paid with one of its listed primaries on the same date; type 2
  has no list (the contractor keeps one), so it is not checked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

EM_FIRST, EM_LAST = 99202, 99499  # CPT's E/M section
EM_MODIFIERS = frozenset({"25", "57"})
DISTINCT_MODIFIERS = frozenset({
    "59", "XE", "XS", "XP", "XU", "24", "27", "58", "78", "79", "91",
    "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "LC", "LD", "LM", "LT", "RC", "RI", "RT", "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9",
})
FAMILIES = {"ptp": "ncci-ptp", "mue": "ncci-mue", "addon": "ncci-addon", "mpfs": "mpfs-indicators",
            "telehealth_list": "telehealth-list"}
_COVERED = {family: f"{family}.covered" for family in FAMILIES}


def is_em(code: str) -> bool:
    return code.isdigit() and EM_FIRST <= int(code) <= EM_LAST


def _in_force(day: str, effective: str | None, deletion: str | None) -> bool:
    return (effective is None or effective[:10] <= day) and (deletion is None or day < deletion[:10])


def _ptp(f: dict[str, Any], reference, release: int, code: str, modifiers: set[str], day: str,
         others: list[tuple[str, set[str]]]) -> None:
    denied: set[str] = set()
    all_allow_modifier = True
    em_here = False
    for other_code, other_modifiers in others:
        for effective, deletion, indicator in reference.ptp(release, code, other_code):
            if indicator == 9 or not _in_force(day, effective, deletion):
                continue
            if indicator == 1:
                if is_em(code) or is_em(other_code):
                    em_modifiers = modifiers if is_em(code) else other_modifiers
                    if em_modifiers & EM_MODIFIERS:
                        continue
                elif (modifiers | other_modifiers) & DISTINCT_MODIFIERS:
                    continue
            else:
                all_allow_modifier = False
            denied.add(other_code)
            em_here = em_here or is_em(code)
    if denied:
        f["ptp.denied_with"] = denied
        f["ptp.modifier_allowed"] = all_allow_modifier
        f["ptp.em_line"] = em_here


def _addon(f: dict[str, Any], reference, release: int, code: str, day: str, other_codes: set[str]) -> None:
    rows = [r for r in reference.addon(release, code) if _in_force(day, r[2], r[3])]
    if not rows:
        return
    kind = min(r[1] for r in rows)
    f["addon.type"] = kind
    primaries = {r[0] for r in rows if r[0]}
    if kind in (1, 3) and primaries:
        f["addon.primaries"] = primaries
        f["addon.primary_present"] = bool(primaries & other_codes)


def line_reference_facts(f: dict[str, Any], claim, number: int, line, day: dt.date, snapshot) -> None:
    """Put the reference-data facts of one line into ``f`` (families the payer's rules read only)."""
    families = snapshot.reference_families
    if not families:
        return
    program = snapshot.reference_program
    reference = snapshot.reference
    if program is None or reference is None:
        for family in families:
            f[_COVERED[family]] = False
        if program is not None:
            _unchecked(f, claim, number, {FAMILIES[family] for family in families}, lambda kind, d: False)
        return
    f["reference.program"] = program
    known_on = snapshot.known_on
    uncovered: set[str] = set()
    iso = day.isoformat()
    code = line.code
    lines = claim.lines
    same_day = [(i, other) for i, other in enumerate(lines, 1)
                if i != number and claim.line_date(other) == day] if len(lines) > 1 else []
    for family in families:
        kind = FAMILIES[family]
        found = reference.release(kind, program, day, known_on)
        f[_COVERED[family]] = found is not None
        if found is None:
            uncovered.add(kind)
            continue
        if family == "ptp":
            if same_day:
                _ptp(f, reference, found, code, set(line.modifiers), iso,
                     [(o.code, set(o.modifiers)) for _, o in same_day])
        elif family == "mue":
            row = reference.mue(found, code)
            if row is not None:
                f["mue.value"], f["mue.mai"] = row
                before = f.get("history.same_code_units_same_day")
                if before is None:  # no patient id, so no history: the claim's own earlier lines still count
                    before = sum(o.units for i, o in same_day if i < number and o.code == code)
                f["mue.units_on_date"] = line.units + before
        elif family == "addon":
            _addon(f, reference, found, code, iso, {o.code for _, o in same_day})
        elif family == "mpfs":
            row = reference.mpfs(found, code)
            if row is not None:
                f["mpfs.status"] = row[0]
                if row[1]:
                    f["mpfs.global_days"] = row[1]
        elif family == "telehealth_list":
            row = reference.telehealth(found, code)
            listed = row is not None and _in_force(iso, row[2], None)
            f["telehealth_list.listed"] = listed
            if listed:
                if row[0]:
                    f["telehealth_list.status"] = row[0]
                if row[1] is not None:
                    f["telehealth_list.audio_only"] = bool(row[1])
    _unchecked(f, claim, number, uncovered,
               lambda kind, d: reference.release(kind, program, d, known_on) is not None)


def _unchecked(f: dict[str, Any], claim, number: int, uncovered: set[str], covered) -> None:
    """Name the kinds no release covers for this line's date on the claim's first line that lacks
    each (one note per claim and kind, not one per line)."""
    if not uncovered:
        return
    day = claim.line_date(claim.lines[number - 1])
    earlier = {claim.line_date(other) for other in claim.lines[:number - 1]}
    if day in earlier:
        return  # an earlier line of the same date has said it
    missing = {kind for kind in uncovered if all(covered(kind, d) for d in earlier)}
    if missing:
        f["reference.unchecked"] = missing
