"""835 (005010X221A1) remittances: everything denial analysis needs, per claim and line."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from ..money import Money, parse_money
from .segments import Segment, X12Error, split

CLAIM_STATUS = {"1": "processed as primary", "2": "processed as secondary", "3": "processed as tertiary",
                "4": "denied", "19": "processed as primary, forwarded", "20": "processed as secondary, forwarded",
                "21": "processed as tertiary, forwarded", "22": "reversal of previous payment",
                "23": "not our claim, forwarded", "25": "predetermination pricing only"}


class Adjustment(BaseModel):
    group: str  # CO, PR, OA, PI, CR
    carc: str
    amount: Money | None = None
    quantity: float | None = None


class RemitLine(BaseModel):
    position: int
    code: str
    qualifier: str | None = None
    modifiers: list[str] = Field(default_factory=list)
    charge: Money | None = None
    paid: Money | None = None
    units: float | None = None
    service_date: dt.date | None = None
    adjustments: list[Adjustment] = Field(default_factory=list)
    remarks: list[str] = Field(default_factory=list)


class RemitClaim(BaseModel):
    claim_id: str
    status: str
    status_text: str | None = None
    charge: Money | None = None
    paid: Money | None = None
    patient_responsibility: Money | None = None
    payer_claim_number: str | None = None
    adjustments: list[Adjustment] = Field(default_factory=list)
    remarks: list[str] = Field(default_factory=list)  # MOA/MIA remark codes
    service_date: dt.date | None = None
    lines: list[RemitLine] = Field(default_factory=list)


class ProviderAdjustment(BaseModel):
    provider: str | None = None
    reason: str
    reference: str | None = None
    amount: Money | None = None


class Remittance(BaseModel):
    payer_name: str | None = None
    payer_id: str | None = None
    production_date: dt.date | None = None
    payment: Money | None = None
    claims: list[RemitClaim] = Field(default_factory=list)
    provider_adjustments: list[ProviderAdjustment] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


def _num(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _money(value: str) -> Decimal | None:
    try:
        return parse_money(value)
    except ValueError:
        return None


def _date(value: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _cas(seg: Segment) -> list[Adjustment]:
    """A CAS segment: one group code and up to six reason/amount/quantity triplets."""
    group = seg.get(1)
    found = []
    for start in range(2, 20, 3):
        carc = seg.get(start)
        if carc:
            found.append(Adjustment(group=group, carc=carc, amount=_money(seg.get(start + 1)),
                                    quantity=_num(seg.get(start + 2))))
    return found


QUALIFIERS = {"HC", "AD", "ER", "IV", "N4", "NU", "WK", "HP", "ZZ"}


def _procedure(seg: Segment) -> list[str]:
    """SVC01; some files use '>' inside it whatever their ISA declares, so try that too."""
    parts = seg.components(1)
    if len(parts) == 1 and ">" in parts[0] and parts[0].split(">")[0] in QUALIFIERS:
        parts = parts[0].split(">")
    return parts


def read_835(text: str) -> list[Remittance]:
    try:
        segments = split(text)
    except X12Error as exc:
        return [Remittance(errors=[str(exc)])]
    remits: list[Remittance] = []
    remit: Remittance | None = None
    claim: RemitClaim | None = None
    line: RemitLine | None = None
    n1 = ""
    for seg in segments:
        sid = seg.id
        if sid == "ST":
            remit = Remittance()
            remits.append(remit)
            claim = line = None
            continue
        if remit is None:
            continue
        if sid == "BPR":
            remit.payment = _money(seg.get(2))
        elif sid == "DTM" and seg.get(1) == "405" and claim is None:
            remit.production_date = _date(seg.get(2))
        elif sid == "N1":
            n1 = seg.get(1)
            if n1 == "PR":
                remit.payer_name = seg.get(2) or None
        elif sid == "REF" and n1 == "PR" and seg.get(1) == "2U" and claim is None:
            remit.payer_id = seg.get(2) or None
        elif sid == "CLP":
            claim = RemitClaim(claim_id=seg.get(1), status=seg.get(2), status_text=CLAIM_STATUS.get(seg.get(2)),
                               charge=_money(seg.get(3)), paid=_money(seg.get(4)),
                               patient_responsibility=_money(seg.get(5)), payer_claim_number=seg.get(7) or None)
            remit.claims.append(claim)
            line = None
        elif sid == "CAS" and claim is not None:
            (line.adjustments if line else claim.adjustments).extend(_cas(seg))
        elif sid in ("MOA", "MIA") and claim is not None:
            positions = range(3, 8) if sid == "MOA" else (5, 20, 21, 22, 23)
            claim.remarks.extend(seg.get(p) for p in positions if seg.get(p) and not _num(seg.get(p)))
        elif sid == "SVC" and claim is not None:
            procedure = _procedure(seg)
            line = RemitLine(position=len(claim.lines) + 1, qualifier=procedure[0] if procedure else None,
                             code=procedure[1] if len(procedure) > 1 else "",
                             modifiers=[m for m in procedure[2:6] if m], charge=_money(seg.get(2)),
                             paid=_money(seg.get(3)), units=_num(seg.get(5)) if seg.get(5) else 1.0)
            claim.lines.append(line)
        elif sid == "DTM" and claim is not None and seg.get(1) in ("472", "150", "232"):
            day = _date(seg.get(2))
            if line is not None:
                line.service_date = line.service_date or day
            else:
                claim.service_date = claim.service_date or day
        elif sid == "LQ" and seg.get(1) == "HE" and line is not None:
            line.remarks.append(seg.get(2))
        elif sid == "PLB":
            for start in range(3, 15, 2):
                reason = seg.components(start)
                if reason:
                    remit.provider_adjustments.append(ProviderAdjustment(
                        provider=seg.get(1) or None, reason=reason[0],
                        reference=reason[1] if len(reason) > 1 else None, amount=_money(seg.get(start + 1))))
        elif sid == "SE":
            claim = line = None
    return remits


def as_dict(remits: list[Remittance]) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json") for r in remits]
