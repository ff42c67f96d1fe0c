"""The Tuva Project's ``medical_claim`` input layer as claims.

One row is one claim line; rows are grouped into claims by ``claim_id`` as they come,
so the table must be ordered by ``claim_id`` (then ``claim_line_number``), as a
warehouse export ``ORDER BY claim_id, claim_line_number`` gives. Payer names become
payer keys through the ``names:`` of ``payers.yaml`` (done where claims are judged,
see ``map_payer_name``). Facts the table does not hold (encounter minutes, MDM, where
the patient was, the state for a Medicaid plan) come from the ``--encounters`` side
file, keyed by claim id, as for 837P.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Iterator

from .claims import InputError, InvalidClaim
from .money import parse_money

TUVA_KEYS = {"claim_id", "hcpcs_code"}
MODIFIER_COLUMNS = [f"hcpcs_modifier_{n}" for n in range(1, 6)]
DIAGNOSIS_COLUMNS = [f"diagnosis_code_{n}" for n in range(1, 26)]
TUVA_PAYER = "tuva_payer"  # the raw payer name travels under this key until it is mapped


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _day(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()[:10]


def _number(value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value  # validation names the field
    return int(number) if number.is_integer() else number


def _amount(value: Any) -> Any:
    try:
        return parse_money(value)
    except ValueError:
        return value  # validation names the field


def _pos(value: Any) -> str | None:
    text = _text(value)
    # CSV exports drop the leading zero of "02".
    return text.zfill(2) if text and text.isdigit() and len(text) == 1 else text


class TuvaGrouper:
    def __init__(self, source: str):
        self.source = source

    def claims(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any] | InvalidClaim]:
        current: list[dict[str, Any]] = []
        for row in rows:
            if current and _text(row.get("claim_id")) != _text(current[0].get("claim_id")):
                yield self._claim(current)
                current = []
            current.append(row)
        if current:
            yield self._claim(current)

    def _claim(self, rows: list[dict[str, Any]]) -> dict[str, Any] | InvalidClaim:
        first = rows[0]
        claim_id = _text(first.get("claim_id"))
        kind = (_text(first.get("claim_type")) or "professional").lower()
        if kind != "professional":
            return InvalidClaim(claim_id, 0, [InputError("claim_type", f"claim type {kind}: only professional "
                                                                       "claims are judged")])
        rows = sorted(rows, key=lambda r: _number(r.get("claim_line_number")) or 0)
        lines = []
        for row in rows:
            line: dict[str, Any] = {"code": _text(row.get("hcpcs_code"))}
            modifiers = [m for m in (_text(row.get(c)) for c in MODIFIER_COLUMNS) if m]
            if modifiers:
                line["modifiers"] = modifiers
            for key, value in (("units", _number(row.get("service_unit_quantity"))),
                               ("charge", _amount(row.get("charge_amount"))),
                               ("service_date", _day(row.get("claim_line_start_date"))),
                               ("place_of_service", _pos(row.get("place_of_service_code")))):
                if value is not None:
                    line[key] = value
            lines.append(line)
        dates = [d for d in (_day(r.get("claim_start_date")) for r in rows) if d] or \
                [line["service_date"] for line in lines if "service_date" in line]
        claim: dict[str, Any] = {"id": claim_id, "lines": lines}
        if dates:
            claim["service_date"] = min(dates)
        payer = _text(first.get("payer"))
        if payer:
            claim[TUVA_PAYER] = payer
        person = _text(first.get("person_id")) or _text(first.get("member_id"))
        if person:
            claim["patient"] = {"id": person}
        for key, column in (("rendering_provider", "rendering_npi"), ("billing_provider", "billing_npi")):
            npi = _text(first.get(column))
            if npi:
                claim[key] = {"npi": npi}
        diagnoses = [d for d in (_text(first.get(c)) for c in DIAGNOSIS_COLUMNS) if d]
        if diagnoses:
            claim["diagnoses"] = diagnoses[:12]
        return claim


def map_payer_name(raw: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """Replace the table's payer name by its payer key (unknown names stay, and are reported)."""
    name = raw.pop(TUVA_PAYER, None)
    if name is not None and "payer" not in raw:
        raw["payer"] = names.get(name.strip().lower(), name)
    return raw
