"""837P (005010X222A1) -> claims in the DESIGN.md JSON shape.

What an 837 carries maps to claim fields; what it does not (minutes, MDM, modality,
where the patient was) comes from an encounter side file keyed by claim id. Patient
names never leave this module: a dependent's patient id is the subscriber's member id
with a short hash of the patient's name and birth date.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable

from ..money import parse_money
from .segments import Segment, X12Error, split

DX_QUALIFIERS = {"ABK", "ABF", "BK", "BF", "ABJ", "APR", "ABN"}
# The segments read_837 takes a claim's facts from (N4 only for the billing state, which the
# claim's own validation checks again). A validator finding in one of them blocks judging.
READ_SEGMENTS = frozenset({"CLM", "SV1", "DTP", "HI", "SBR", "NM1", "DMG", "PRV", "REF", "LX", "HL",
                           "AMT", "CAS", "OI"})


@dataclass
class Parsed837:
    claims: list[dict[str, Any]] = field(default_factory=list)
    # claim position -> (first segment, last segment), for placing validator errors
    spans: list[tuple[int, int]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (segment, reason) outside any claim


def taxonomy_type(taxonomy: str | None, table: dict[str, str]) -> str | None:
    if not taxonomy:
        return None
    code = taxonomy.upper()
    for length in range(len(code), 0, -1):
        if code[:length] in table:
            return table[code[:length]]
    return None


def _date(value: str) -> str | None:
    try:
        return dt.datetime.strptime(value[:8], "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _dtp_dates(seg: Segment) -> tuple[str | None, str | None]:
    """A date of service, or both ends of an RD8 range (the end None when it is the start)."""
    fmt, value = seg.get(2), seg.get(3)
    if fmt == "RD8" and "-" in value:
        first, last = (_date(v) for v in value.split("-", 1))
        return first, (last if last != first else None)
    return _date(value), None


def _adjustments(seg: Segment) -> list[dict[str, Any]]:
    """A CAS segment's (group, reason, amount) triples."""
    group = seg.get(1)
    found = []
    for index in range(2, 19, 3):
        reason, amount = seg.get(index), seg.get(index + 1)
        if reason:
            found.append({"group": group, "carc": reason, "amount": _money(amount)})
    return found


@dataclass
class _Party:
    npi: str | None = None
    taxonomy: str | None = None
    state: str | None = None


@dataclass
class _Subscriber:
    member_id: str | None = None
    birth_date: str | None = None
    payer_id: str | None = None
    filing: str | None = None


def _money(value: str) -> Decimal | None:
    try:
        return parse_money(value)
    except ValueError:
        return None


def _units(value: str) -> Any:
    try:
        number = float(value)
    except ValueError:
        return value  # left for claim validation to report
    return int(number) if number == int(number) else number


def read_837(text: str, payer_ids: dict[str, str], taxonomy: dict[str, str]) -> Parsed837:
    """Parse every claim; ``payer_ids`` maps X12 payer ids to payer keys."""
    try:
        segments = split(text)
    except X12Error as exc:
        out = Parsed837()
        out.errors.append((exc.segment, exc.reason))
        return out
    return read_837_segments(segments, payer_ids, taxonomy)


def read_837_segments(segments: Iterable[Segment], payer_ids: dict[str, str], taxonomy: dict[str, str]) -> Parsed837:
    """Every claim of an interchange already split into segments (by ``split`` or, in the same
    pass as its validation, by pyx12: ``x12.validate.validate_and_read``)."""
    out = Parsed837()
    billing = _Party()
    subscriber = _Subscriber()
    patient_key: str | None = None
    patient_birth: str | None = None
    hl_level = ""
    claim: dict[str, Any] | None = None
    line: dict[str, Any] | None = None
    other: dict[str, Any] | None = None  # the claim's current other payer (loops 2320/2330x)
    start = 0
    context = ""  # which NM1 loop the PRV/N4/DMG that follow belong to

    def close(last: int) -> None:
        nonlocal claim, line, other
        if claim is not None:
            _finish(claim)
            out.claims.append(claim)
            out.spans.append((start, last))
        claim, line, other = None, None, None

    for seg in segments:
        sid = seg.id
        if sid in ("SE", "GE", "IEA", "ST", "GS", "ISA"):
            close(seg.number - 1)
            continue
        if sid == "HL":
            close(seg.number - 1)
            hl_level = seg.get(3)
            if hl_level == "20":
                billing, subscriber, patient_key, patient_birth = _Party(), _Subscriber(), None, None
            elif hl_level == "22":
                subscriber, patient_key, patient_birth = _Subscriber(), None, None
            context = ""
            continue
        if sid == "SBR":
            if claim is None:  # 2000B: the subscriber this payer covers
                subscriber.filing = seg.get(9) or None
            else:  # 2320: another payer of this claim, never the subscriber's own
                other = {"responsibility": seg.get(1) or None, "filing": seg.get(9) or None, "adjustments": []}
                claim["other_payers"].append(other)
                context = ""
            continue
        if other is not None and line is None:
            # Loops 2320 and 2330A-G: the other payer's id, what it paid and adjusted; its
            # subscriber, providers and addresses are not this claim's.
            if sid == "NM1":
                context = "other"
                if seg.get(1) == "PR":
                    other["payer_id"] = seg.get(9) or None
                    other["name"] = seg.get(3) or None
            elif sid == "AMT" and seg.get(1) == "D":
                other["paid"] = _money(seg.get(2))
            elif sid == "CAS":
                other["adjustments"].extend(_adjustments(seg))
            if sid != "LX":
                continue
        if sid == "NM1":
            entity = seg.get(1)
            context = entity
            if entity == "85":
                billing.npi = seg.get(9) or None
            elif entity == "IL":
                subscriber.member_id = seg.get(9) or None
            elif entity == "PR":
                subscriber.payer_id = seg.get(9) or None
            elif entity == "QC":
                patient_key = "|".join([seg.get(3), seg.get(4)])
            elif entity == "82" and claim is not None:
                target = line if line is not None else claim
                target.setdefault("rendering_provider", {})["npi"] = seg.get(9) or None
            continue
        if sid == "PRV":
            if seg.get(1) == "BI" or (context == "85" and claim is None):
                billing.taxonomy = seg.get(3) or None
            elif seg.get(1) == "PE" and claim is not None:
                target = line if line is not None else claim
                target.setdefault("rendering_provider", {})["taxonomy"] = seg.get(3) or None
            continue
        if sid == "N4" and context == "85":
            # XX is the placeholder our own export writes where a claim gives no state.
            billing.state = seg.get(2) if seg.get(2) not in ("", "XX") else None
            continue
        if sid == "DMG":
            birth = _date(seg.get(2)) if seg.get(1) == "D8" else None
            if context == "IL":
                subscriber.birth_date = birth
            elif context == "QC":
                patient_birth = birth
            continue
        if sid == "CLM":
            close(seg.number - 1)
            start = seg.number
            pos, _, frequency = (seg.components(5) + ["", "", ""])[:3]
            claim = {
                "id": seg.get(1),
                "x12": {"payer_id": subscriber.payer_id, "frequency": frequency or None,
                        "charge": _money(seg.get(2))},
                "place_of_service": pos or None,
                "state": billing.state,
                "patient": _patient(subscriber, patient_key, patient_birth),
                "billing_provider": {"npi": billing.npi, "taxonomy": billing.taxonomy},
                "diagnoses": [],
                "other_payers": [],
                "lines": [],
            }
            line = None
            continue
        if claim is None:
            continue
        if sid == "REF" and seg.get(1) == "G1" and line is None:
            claim["prior_authorization"] = seg.get(2) or None
        elif sid == "HI":
            for element in seg.elements:
                parts = element.split(seg.component)
                if len(parts) >= 2 and parts[0] in DX_QUALIFIERS and parts[1]:
                    claim["diagnoses"].append(parts[1])
        elif sid == "DTP" and seg.get(1) == "472":
            target = line if line is not None else claim
            target["service_date"], last = _dtp_dates(seg)
            if last:
                target["service_date_to"] = last
        elif sid == "LX":
            line = {"lx": seg.get(1)}
            claim["lines"].append(line)
            context = ""
        elif sid == "SVD":
            context = "other"  # 2430: another payer's adjudication of the line; its CAS are not this claim's
        elif sid == "SV1" and line is not None:
            procedure = seg.components(1)
            line["code"] = procedure[1] if len(procedure) > 1 else ""
            line["modifiers"] = [m for m in procedure[2:6] if m]
            line["charge"] = _money(seg.get(2))
            line["units"] = _units(seg.get(4)) if seg.get(4) else 1
            if seg.get(5):
                line["place_of_service"] = seg.get(5)
            pointers = seg.components(7)
            if pointers:
                line["diagnosis_pointers"] = [int(p) if p.isdigit() else p for p in pointers]
    close(segments[-1].number if segments else 0)
    for claim in out.claims:
        _resolve(claim, payer_ids, taxonomy)
    return out


def _patient(sub: _Subscriber, dependent: str | None, dependent_birth: str | None) -> dict[str, Any]:
    if dependent is None:
        return {"id": sub.member_id, "birth_date": sub.birth_date}
    digest = hashlib.sha256(f"{dependent}|{dependent_birth}".encode()).hexdigest()[:8]
    return {"id": f"{sub.member_id}-{digest}" if sub.member_id else None, "birth_date": dependent_birth}


def _finish(claim: dict[str, Any]) -> None:
    dates = [ln.get("service_date") for ln in claim["lines"] if ln.get("service_date")]
    if "service_date" not in claim or not claim["service_date"]:
        claim["service_date"] = min(dates) if dates else None
    for ln in claim["lines"]:
        if "service_date" in ln and ln["service_date"] in (claim["service_date"], None):
            ln.pop("service_date")


def _resolve(claim: dict[str, Any], payer_ids: dict[str, str], taxonomy: dict[str, str]) -> None:
    x12 = claim.pop("x12")
    claim["payer"] = payer_ids.get(x12["payer_id"] or "", f"x12:{x12['payer_id']}")
    for holder in [claim] + claim["lines"]:
        provider = holder.get("rendering_provider")
        if provider:
            kind = taxonomy_type(provider.pop("taxonomy", None), taxonomy)
            if kind:
                provider["type"] = kind
            if not provider.get("npi"):
                provider.pop("npi", None)
    billing = claim["billing_provider"]
    kind = taxonomy_type(billing.pop("taxonomy"), taxonomy)
    if kind:
        billing["type"] = kind
    if "rendering_provider" not in claim and kind:
        claim["rendering_provider"] = {"npi": billing.get("npi"), "type": kind}
    for ln in claim["lines"]:
        ln.pop("lx", None)
        # A 2420A rendering provider governs its line; one equal to the claim's says nothing new.
        if ln.get("rendering_provider") in ({}, claim.get("rendering_provider")):
            ln.pop("rendering_provider", None)
    for holder in (claim, claim["patient"], claim["billing_provider"], claim.get("rendering_provider") or {},
                   *claim["other_payers"]):
        for k in [k for k, v in holder.items() if v is None or v == []]:
            holder.pop(k)
    for key in ("diagnoses", "other_payers"):
        if not claim.get(key, True):
            claim.pop(key)
