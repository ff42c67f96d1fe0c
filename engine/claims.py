"""Claim input: the DESIGN.md JSON format into typed models.

A batch is one object, a list, ``{"claims": [...]}``, or JSON Lines. Each item is
validated on its own: a bad claim becomes an ``InvalidClaim`` naming the field and
the reason, and the rest of the batch goes on. Messages never quote field values,
so patient data cannot leak into logs through them.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Iterable, Literal

from pydantic import (BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, ValidationError, field_validator,
                      model_validator)

from .money import Money

ProviderType = Literal[
    "MD", "DO", "NP", "PA", "CNS", "RN", "LPN", "MA", "pharmacist", "psychologist",
    "LCSW", "LMFT", "LPC", "PT", "OT", "SLP", "RD",
]
Modality = Literal["in-person", "video", "audio-only", "portal", "remote-monitoring"]
Mdm = Literal["straightforward", "low", "moderate", "high"]
Location = Literal["home", "office", "clinic", "hospital", "snf", "other"]


class _Model(BaseModel):
    # No text field of a claim is long (an NPI, a taxonomy, a specialty, a patient id): a cap
    # keeps a 10 MB string from being judged and stored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, str_max_length=100)


class Patient(_Model):
    id: str | None = None
    birth_date: dt.date | None = None
    new_patient: bool | None = None
    location: Location | None = None
    rural: bool | None = None


class Provider(_Model):
    npi: str | None = Field(default=None, pattern=r"^\d{10}$")
    type: ProviderType | None = None
    specialty: str | None = None
    taxonomy: str | None = None
    prescribing_psychologist: bool | None = None


class IncidentTo(_Model):
    performed_by: ProviderType
    supervision: Literal["in-suite", "virtual", "audio-only", "none"] | None = None


class Encounter(_Model):
    modality: Modality | None = None
    total_minutes: int | None = Field(default=None, ge=0, le=1440)
    psychotherapy_minutes: int | None = Field(default=None, ge=0, le=1440)
    mdm: Mdm | None = None
    level_basis: Literal["mdm", "time"] | None = None
    consent_documented: bool | None = None
    video_declined: bool | None = None
    rpm_days: int | None = Field(default=None, ge=0, le=31)
    rpm_minutes: int | None = Field(default=None, ge=0, le=1440)
    interactive_communication: bool | None = None


# Normalised by pydantic-core itself (no Python call per field): the pattern is checked
# before the case is changed, so it admits both cases.
Code = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z0-9]{5}$")]
Modifier = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True)]
PayerKey = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1)]
StateCode = Annotated[str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[A-Za-z]{2}$")]
# ICD-10-CM codes are 3 to 7 characters once the dot is gone.
Diagnosis = Annotated[str, StringConstraints(min_length=1, max_length=7)]


class Line(_Model):
    code: Code
    modifiers: list[Modifier] = Field(default_factory=list, max_length=4)
    units: int = Field(default=1, ge=1, le=999)
    charge: Money | None = Field(default=None, ge=0)
    service_date: dt.date | None = None
    service_date_to: dt.date | None = None  # the end of a date range (X12 RD8), when the line spans days
    rendering_provider: Provider | None = None  # the line's own, when it is not the claim's (X12 2420A)
    place_of_service: str | None = Field(default=None, pattern=r"^\d{2}$")
    diagnosis_pointers: list[int] = Field(default_factory=list, max_length=4)

    @field_validator("modifiers")
    @classmethod
    def _modifier_shape(cls, value: list[str]) -> list[str]:
        for position, modifier in enumerate(value, 1):
            if len(modifier) != 2 or not modifier.isalnum():
                raise ValueError(f"modifier {position} must be two letters or digits")
        return value

    @field_validator("diagnosis_pointers")
    @classmethod
    def _pointer_range(cls, value: list[int]) -> list[int]:
        if any(p < 1 or p > 12 for p in value):
            raise ValueError("diagnosis pointers are 1 to 12")
        return value


class Plan(_Model):
    """The member's plan, where the claim knows it: self-funded (ASO/ERISA) plans are exempt from
    state mandates that bind fully insured ones."""

    funding: Literal["self-funded", "fully-insured"] | None = None


class Adjustment(_Model):
    group: str = Field(max_length=2)
    carc: str = Field(max_length=5)
    amount: Money | None = None


class OtherPayer(_Model):
    """Another payer of the claim (X12 loops 2320/2330B): coordination of benefits."""

    payer_id: str | None = None
    name: str | None = None
    responsibility: str | None = Field(default=None, max_length=1)  # SBR01: P primary, S secondary, T tertiary...
    filing: str | None = Field(default=None, max_length=2)  # SBR09 claim filing indicator (MB Medicare B, MC Medicaid...)
    paid: Money | None = None
    adjustments: list[Adjustment] = Field(default_factory=list, max_length=99)


class Adjudication(_Model):
    status: Literal["paid", "denied"]
    date: dt.date | None = None
    carc: list[str] = Field(default_factory=list, max_length=20)


class Claim(_Model):
    id: str = Field(min_length=1, max_length=64)
    payer: PayerKey
    state: StateCode | None = None
    service_date: dt.date
    place_of_service: str | None = Field(default=None, pattern=r"^\d{2}$")
    patient: Patient | None = None
    rendering_provider: Provider | None = None
    billing_provider: Provider | None = None
    incident_to: IncidentTo | None = None
    diagnoses: list[Diagnosis] = Field(default_factory=list, max_length=12)
    prior_authorization: str | None = Field(default=None, max_length=50)  # X12 REF02 holds 50
    plan: Plan | None = None
    other_payers: list[OtherPayer] = Field(default_factory=list, max_length=10)
    encounter: Encounter | None = None
    lines: list[Line] = Field(min_length=1, max_length=50)
    adjudication: Adjudication | None = None
    # What the X12 validator said of the claim's file outside the segments it is read from:
    # not claim data (never in its JSON), reported beside its findings.
    _notes: list = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list:
        return self._notes

    @field_validator("diagnoses", mode="before")
    @classmethod
    def _normalise_dx(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v.strip().upper().replace(".", "") if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _ranges_forward(self) -> "Claim":
        for number, line in enumerate(self.lines, 1):
            if line.service_date_to is not None and line.service_date_to < self.line_date(line):
                raise ValueError(f"lines[{number}].service_date_to is before the line's date of service")
        return self

    def line_date(self, line: Line) -> dt.date:
        return line.service_date or self.service_date

    def line_days(self, line: Line) -> int:
        """The days a line spans: its date of service through its service_date_to (1 without a range)."""
        end = line.service_date_to
        return (end - self.line_date(line)).days + 1 if end is not None else 1

    def line_pos(self, line: Line) -> str | None:
        return line.place_of_service or self.place_of_service


@dataclass
class InputError:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


@dataclass
class InvalidClaim:
    """A claim that could not be judged, with every reason found."""

    id: str | None
    position: int
    errors: list[InputError] = field(default_factory=list)


def _field_path(loc: Iterable[Any]) -> str:
    # Line positions are shown 1-based, the way billing staff number claim lines.
    path = ""
    parts = list(loc)
    for index, part in enumerate(parts):
        if isinstance(part, int):
            one_based = index > 0 and parts[index - 1] == "lines"
            path += f"[{part + 1 if one_based else part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "claim"


PATTERN_REASONS = {
    "code": "must be a 5-character CPT or HCPCS code",
    "place_of_service": "must be a two-digit place-of-service code",
    "state": "must be a two-letter state code",
    "npi": "must be a 10-digit NPI",
}


def _reason(error: dict[str, Any]) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "string_pattern_mismatch":
        last = next((p for p in reversed(error["loc"]) if isinstance(p, str)), "")
        return PATTERN_REASONS.get(last, "has the wrong form")
    if error["type"] == "missing":
        return "required field is missing"
    message = str(error["msg"])
    return message[len("Value error, "):] if message.startswith("Value error, ") else message


JSON_KINDS = {type(None): "null", bool: "true or false", int: "a number", float: "a number", str: "a string",
              list: "a list"}


def validate_claim(raw: Any, position: int) -> Claim | InvalidClaim:
    if not isinstance(raw, dict):
        kind = JSON_KINDS.get(type(raw), "not JSON")
        return InvalidClaim(None, position, [InputError(f"claims[{position - 1}]", f"not an object ({kind})")])
    claim_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    try:
        return Claim.model_validate(raw)
    except ValidationError as exc:
        errors = [InputError(_field_path(e["loc"]), _reason(e)) for e in exc.errors(include_input=False)]
        return InvalidClaim(claim_id, position, errors)


def _json_lines(text: str) -> list[Any]:
    items: list[Any] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except RecursionError:
            items.append(_BadItem(f"line {number}: the JSON is nested too deeply to read"))
        except json.JSONDecodeError as exc:
            items.append(_BadItem(f"line {number}: not valid JSON ({exc.msg})"))
    return items


@dataclass
class _BadItem:
    reason: str


def raw_items(text: str) -> list[Any]:
    """The items of one JSON document in any accepted shape; unreadable ones as InvalidClaim."""
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some Windows editors write
    try:
        document = json.loads(text)
    except RecursionError:  # nested deeper than Python's parser goes: one unreadable item, not a crash
        return [InvalidClaim(None, 0, [InputError("claim", "the JSON is nested too deeply to read")])]
    except json.JSONDecodeError:
        items = _json_lines(text)
    else:
        if isinstance(document, dict) and "claims" in document and "lines" not in document:
            items = document["claims"] if isinstance(document["claims"], list) else [document["claims"]]
        elif isinstance(document, list):
            items = document
        else:
            items = [document]
    return [InvalidClaim(None, 0, [InputError("claim", item.reason)]) if isinstance(item, _BadItem) else item
            for item in items]


def parse_claims_text(text: str) -> list[Claim | InvalidClaim]:
    """Parse one document in any of the accepted shapes; never raises on content."""
    results: list[Claim | InvalidClaim] = []
    for position, item in enumerate(raw_items(text), 1):
        if isinstance(item, InvalidClaim):
            item.position = position
            results.append(item)
        else:
            results.append(validate_claim(item, position))
    return results
