"""Claims -> an 837P (005010X222A1) interchange.

An export carries what our claim holds. The 837 needs a few things a claim does not
(names, addresses, the billing provider's tax id); those are written as clearly marked
placeholders (``UNKNOWN``, ZIP 000000000, tax id 000000000) for the user's
practice-management system to fill in. A filed claim needs the real values.
"""

from __future__ import annotations

import datetime as dt

from ..claims import Claim
from ..money import ZERO, money_text
from ..policy.model import PolicySet

FILING = {"medicare": "MB", "medicaid": "MC", "commercial": "CI", "medicare_advantage": "16", "other": "ZZ"}
# One representative taxonomy per provider type, for PRV*PE (reverse of policies/taxonomy.yaml).
TYPE_TAXONOMY = {"MD": "207Q00000X", "DO": "207Q00000X", "NP": "363L00000X", "PA": "363A00000X",
                 "CNS": "364S00000X", "RN": "163W00000X", "LPN": "164W00000X", "MA": "372600000X",
                 "pharmacist": "183500000X", "psychologist": "103T00000X", "LCSW": "1041C0700X",
                 "LMFT": "106H00000X", "LPC": "101YP2500X", "PT": "225100000X", "OT": "225X00000X",
                 "SLP": "235Z00000X", "RD": "133V00000X"}


def _d8(day: dt.date) -> str:
    return day.strftime("%Y%m%d")


def not_exportable(claim: Claim) -> str | None:
    """Why a claim cannot be written as a valid 837P, or None."""
    if not claim.diagnoses:
        return "an 837P needs at least one diagnosis (HI), and the claim has none"
    return None


def _provider(add, provider) -> None:
    """A rendering provider (2310B for the claim, 2420A for a line)."""
    add("NM1*82*1*UNKNOWN*UNKNOWN" + (f"****XX*{provider.npi}" if provider.npi else ""))
    if provider.type:
        add(f"PRV*PE*PXC*{TYPE_TAXONOMY[provider.type]}")


def _other_payer(add, other, member: str) -> None:
    """Loops 2320 (the other subscriber's coverage, what the other payer paid and adjusted),
    2330A (the other subscriber) and 2330B (the other payer)."""
    add(f"SBR*{other.responsibility or 'S'}*18*******{other.filing or 'ZZ'}")
    by_group: dict[str, list] = {}
    for adjustment in other.adjustments:
        by_group.setdefault(adjustment.group or "OA", []).append(adjustment)
    for group, adjustments in by_group.items():
        for start in range(0, len(adjustments), 6):  # six reason/amount triplets to a CAS
            triplets = "*".join(f"{a.carc}*{money_text(a.amount or ZERO)}*" for a in adjustments[start:start + 6])
            add(f"CAS*{group}*{triplets}".rstrip("*"))
    if other.paid is not None:
        add(f"AMT*D*{money_text(other.paid)}")
    add("OI***Y***Y")
    add(f"NM1*IL*1*UNKNOWN*UNKNOWN****MI*{member}")
    add(f"NM1*PR*2*{(other.name or 'UNKNOWN')[:60]}*****PI*{other.payer_id or 'UNKNOWN'}")


def write_837(claims: list[Claim], policy: PolicySet, sender: str = "PAYERPOLICY", control: int = 1,
              now: dt.datetime | None = None) -> str:
    for claim in claims:
        reason = not_exportable(claim)
        if reason:
            raise ValueError(f"claim {claim.id}: {reason}")
    now = now or dt.datetime(2000, 1, 1)
    segs: list[str] = []
    add = segs.append
    add(f"ST*837*{control:04d}*005010X222A1")
    add(f"BHT*0019*00*{control:09d}*{now:%Y%m%d}*{now:%H%M}*CH")
    add(f"NM1*41*2*{sender}*****46*{sender}")
    add("PER*IC*BILLING*TE*0000000000")
    add("NM1*40*2*RECEIVER*****46*RECEIVER")
    hl = 0
    for claim in claims:
        payer = policy.payers.get(claim.payer)
        payer_id = (payer.x12_payer_ids[0] if payer and payer.x12_payer_ids else claim.payer.upper()[:80])
        filing = FILING.get(payer.plan_class if payer else "other", "ZZ")
        billing = claim.billing_provider or claim.rendering_provider
        billing_npi = (billing.npi if billing and billing.npi else "0000000000")
        hl += 1
        parent = hl
        add(f"HL*{hl}**20*1")
        if billing and billing.type:
            add(f"PRV*BI*PXC*{TYPE_TAXONOMY[billing.type]}")
        add(f"NM1*85*2*UNKNOWN*****XX*{billing_npi}")
        add("N3*UNKNOWN")
        add(f"N4*UNKNOWN*{claim.state or 'XX'}*000000000")
        add("REF*EI*000000000")
        hl += 1
        add(f"HL*{hl}*{parent}*22*0")
        add(f"SBR*P*18*******{filing}")
        member = (claim.patient.id if claim.patient and claim.patient.id else "UNKNOWN")
        add(f"NM1*IL*1*UNKNOWN*UNKNOWN****MI*{member}")
        birth = claim.patient.birth_date if claim.patient else None
        if birth:
            add(f"DMG*D8*{_d8(birth)}*U")
        add(f"NM1*PR*2*{claim.payer.upper()}*****PI*{payer_id}")
        total = sum((line.charge or ZERO for line in claim.lines), ZERO)
        pos = claim.place_of_service or "11"
        add(f"CLM*{claim.id}*{money_text(total)}***{pos}:B:1*Y*A*Y*Y")
        if claim.prior_authorization:
            add(f"REF*G1*{claim.prior_authorization}")
        if claim.diagnoses:
            codes = [f"ABK:{claim.diagnoses[0]}"] + [f"ABF:{dx}" for dx in claim.diagnoses[1:12]]
            add("HI*" + "*".join(codes))
        rendering = claim.rendering_provider
        if rendering and rendering.npi and rendering.npi != billing_npi:
            _provider(add, rendering)
        for other in claim.other_payers:
            _other_payer(add, other, member)
        for number, line in enumerate(claim.lines, 1):
            add(f"LX*{number}")
            procedure = ":".join(["HC", line.code] + line.modifiers[:4])
            pointers = ":".join(str(p) for p in (line.diagnosis_pointers or ([1] if claim.diagnoses else [])))
            line_pos = line.place_of_service if line.place_of_service and line.place_of_service != pos else ""
            units = f"{line.units}"
            add(f"SV1*{procedure}*{money_text(line.charge or ZERO)}*UN*{units}*{line_pos}**{pointers}".rstrip("*"))
            day = claim.line_date(line)
            if line.service_date_to and line.service_date_to != day:
                add(f"DTP*472*RD8*{_d8(day)}-{_d8(line.service_date_to)}")
            else:
                add(f"DTP*472*D8*{_d8(day)}")
            if line.rendering_provider is not None:
                _provider(add, line.rendering_provider)  # 2420A: this line's own rendering provider
    count = len(segs) + 1
    segs.append(f"SE*{count}*{control:04d}")
    head = (f"ISA*00*          *00*          *ZZ*{sender:<15}*ZZ*{'RECEIVER':<15}*{now:%y%m%d}*{now:%H%M}*^*00501*"
            f"{control:09d}*0*P*:")
    body = [head, f"GS*HC*{sender}*RECEIVER*{now:%Y%m%d}*{now:%H%M}*{control}*X*005010X222A1"] + segs + \
           [f"GE*1*{control}", f"IEA*1*{control:09d}"]
    return "~\n".join(body) + "~\n"
