"""Claim -> facts: one flat record per claim line, named by the rule vocabulary.

Everything a rule can test is computed here once per line: the claim's own fields,
the code table on the line's date of service, and the patient's history. A fact
that the claim does not supply is left out, never guessed.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .claims import Claim, Line
from .history import History
from .policy.fields import MDM_RANK
from .policy.snapshot import Snapshot
from .reference.linefacts import line_reference_facts


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def diagnosis_groups(snapshot: Snapshot, diagnoses: list[str]) -> set[str]:
    return {name for name, prefixes in snapshot.diagnosis_prefixes if any(dx.startswith(prefixes) for dx in diagnoses)}


def _put(facts: dict[str, Any], name: str, value: Any) -> None:
    if value is not None:
        facts[name] = value


# POS 10, "telehealth provided in patient's home"; and where a fact was worked out from another.
HOME_POS = "10"
DERIVED_FROM = "derived_from"


def claim_facts(claim: Claim, snapshot: Snapshot) -> dict[str, Any]:
    """The facts every line of the claim shares."""
    f: dict[str, Any] = {"claim.payer": claim.payer, "claim.prior_authorization": bool(claim.prior_authorization)}
    _put(f, "claim.state", claim.state)
    if claim.diagnoses:
        f["claim.diagnosis_groups"] = diagnosis_groups(snapshot, claim.diagnoses)
    provider = claim.rendering_provider
    if provider:
        _put(f, "provider.type", provider.type)
        _put(f, "provider.specialty", provider.specialty)
        _put(f, "provider.prescribing_psychologist", provider.prescribing_psychologist)
    if claim.billing_provider:
        _put(f, "billing_provider.type", claim.billing_provider.type)
    if claim.plan:
        _put(f, "plan.funding", claim.plan.funding)
    if claim.other_payers:
        f["claim.other_payer_filings"] = {o.filing for o in claim.other_payers if o.filing}
    patient = claim.patient
    if patient:
        _put(f, "patient.new_patient", patient.new_patient)
        _put(f, "patient.location", patient.location)
        _put(f, "patient.rural", patient.rural)
    enc = claim.encounter
    if enc:
        for name in ("modality", "total_minutes", "psychotherapy_minutes", "mdm", "level_basis",
                     "consent_documented", "video_declined", "rpm_days", "rpm_minutes",
                     "interactive_communication"):
            _put(f, f"encounter.{name}", getattr(enc, name))
        if enc.mdm:
            f["encounter.mdm_rank"] = MDM_RANK[enc.mdm]
        if enc.total_minutes is not None:
            # Time on separately reported psychotherapy does not count toward the E/M level.
            f["encounter.em_minutes"] = max(0, enc.total_minutes - (enc.psychotherapy_minutes or 0))
    if claim.incident_to:
        _put(f, "incident_to.performed_by", claim.incident_to.performed_by)
        _put(f, "incident_to.supervision", claim.incident_to.supervision)
    return f


def _time_units(f: dict[str, Any], claim: Claim, number: int, attrs: dict[str, Any], snapshot: Snapshot,
                day: dt.date) -> None:
    """Units a time-based add-on supports: full blocks of unit_minutes from its primary's prolonged_start."""
    primaries = set(attrs.get("primaries", ()))
    for i, other in enumerate(claim.lines, 1):
        if i == number or other.code not in primaries:
            continue
        start = (snapshot.code_attrs(other.code, claim.line_date(other)) or {}).get("prolonged_start")
        if start is None:
            continue
        f["line.units_start"] = start
        # The encounter field that measures the add-on's time: E/M time unless the code says otherwise.
        minutes = f.get(f"encounter.{attrs.get('time_basis', 'em_minutes')}")
        if minutes is not None:
            f["line.units_supported"] = (minutes - start) // attrs["unit_minutes"] + 1 if minutes >= start else 0
        return


def line_facts(claim: Claim, number: int, line: Line, shared: dict[str, Any], snapshot: Snapshot,
               history: History | None, position: int = 0) -> dict[str, Any]:
    day = claim.line_date(line)
    f = dict(shared)
    f.update({
        "line.number": number,
        "line.code": line.code,
        "line.units": line.units,
        "line.modifiers": set(line.modifiers),
        "line.service_date": day,
        "claim.other_codes": {other.code for i, other in enumerate(claim.lines, 1) if i != number},
        "claim.other_modifiers": {m for i, other in enumerate(claim.lines, 1) if i != number for m in other.modifiers},
    })
    _put(f, "line.place_of_service", claim.line_pos(line))
    if line.service_date_to is not None:
        f["line.days"] = claim.line_days(line)
    own = line.rendering_provider
    if own is not None:  # the line's rendering provider governs its line (X12 2420A)
        for name in ("type", "specialty", "prescribing_psychologist"):
            if getattr(own, name) is not None:
                f[f"provider.{name}"] = getattr(own, name)
    if "patient.location" not in f and f.get("line.place_of_service") == HOME_POS:
        # An 837 carries the place of service but not where the patient was: POS 10 says home.
        f["patient.location"] = "home"
        f[DERIVED_FROM] = {"patient.location": f"place of service {HOME_POS}"}
    birth = claim.patient.birth_date if claim.patient else None
    age = age_on(birth, day) if birth else None
    _put(f, "patient.age", age)

    attrs = snapshot.code_attrs(line.code, day)
    f["code.known"] = attrs is not None
    attrs = attrs or {}
    f["code.status"] = attrs.get("status", "active") if attrs else "not-effective"
    for name in ("kind", "family", "time_min", "time_max", "covered", "telehealth", "replaced_by", "mue", "patient_status"):
        _put(f, f"code.{name}", attrs.get(name))
    if "mdm" in attrs:
        f["code.mdm_rank"] = MDM_RANK[attrs["mdm"]]
    if "age_min" in attrs or "age_max" in attrs:
        if age is not None:
            f["code.age_ok"] = attrs.get("age_min", 0) <= age <= attrs.get("age_max", 200)
    else:
        f["code.age_ok"] = True
    if "billers" in attrs:
        if "provider.type" in f:
            f["code.biller_ok"] = f["provider.type"] in attrs["billers"]
    else:
        f["code.biller_ok"] = True
    if "primaries" in attrs:
        f["code.primary_on_claim"] = bool(f["claim.other_codes"] & set(attrs["primaries"]))
    if "next_level" in attrs:
        nxt = snapshot.code_attrs(attrs["next_level"], day) or {}
        f["code.next_level"] = attrs["next_level"]
        _put(f, "code.next_time_min", nxt.get("time_min"))
        if "mdm" in nxt:
            f["code.next_mdm_rank"] = MDM_RANK[nxt["mdm"]]
    if "unit_minutes" in attrs:
        _time_units(f, claim, number, attrs, snapshot, day)

    patient_id = claim.patient.id if claim.patient else None
    if history is not None and patient_id:
        f.update(history.counts(patient_id, (position, number), day, line.code, attrs.get("family"),
                                claim.line_days(line)))
    line_reference_facts(f, claim, number, line, day, snapshot)
    return f
