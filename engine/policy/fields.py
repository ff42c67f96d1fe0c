"""The vocabulary a rule's ``when`` may test, and the condition tree it parses into.

Every fact a rule can see is named here, with its type and, for facts that come
from the claim, the input field that decides it. When that input is absent the
engine does not guess: a rule that would turn on it reports the missing field.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal, Union

Kind = Literal["str", "int", "bool", "date", "set"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: Kind
    input: str | None
    doc: str
    # Absent only when the code table says the input matters (true otherwise), so its
    # absence alone is reason enough to report the missing input.
    self_anchored: bool = False


def _f(name: str, kind: Kind, input_: str | None, doc: str, self_anchored: bool = False) -> FieldSpec:
    return FieldSpec(name, kind, input_, doc, self_anchored)


FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in [
        _f("claim.payer", "str", None, "payer key of the claim"),
        _f("claim.state", "str", "state", "two-letter state of the claim"),
        _f("claim.prior_authorization", "bool", None, "an authorization number is on the claim"),
        _f("claim.other_codes", "set", None, "codes on the claim's other lines"),
        _f("claim.other_modifiers", "set", None, "modifiers on the claim's other lines"),
        _f("claim.diagnosis_groups", "set", "diagnoses", "policy diagnosis groups the claim's diagnoses fall in"),
        _f("line.number", "int", None, "1-based line position"),
        _f("line.code", "str", None, "procedure code"),
        _f("line.units", "int", None, "units billed"),
        _f("line.modifiers", "set", None, "modifiers on the line"),
        _f("line.units_supported", "int", "encounter.total_minutes",
           "units a time-based add-on supports: full unit_minutes blocks from its primary's prolonged_start"),
        _f("line.units_start", "int", None, "minutes at which the add-on's first unit starts, from its primary"),
        _f("line.place_of_service", "str", "place_of_service", "line POS, else the claim's"),
        _f("line.service_date", "date", None, "line date of service, else the claim's"),
        _f("line.days", "int", "lines[].service_date_to",
           "days the line's date range spans (service_date through service_date_to, X12 RD8); absent without a range"),
        _f("provider.type", "str", "rendering_provider.type", "rendering provider type"),
        _f("provider.specialty", "str", "rendering_provider.specialty", "rendering provider specialty"),
        _f("provider.prescribing_psychologist", "bool", "rendering_provider.prescribing_psychologist",
           "rendering provider is a prescribing psychologist"),
        _f("billing_provider.type", "str", "billing_provider.type", "billing provider type"),
        _f("patient.age", "int", "patient.birth_date", "age in whole years on the date of service"),
        _f("patient.new_patient", "bool", "patient.new_patient", "new (not established) patient"),
        _f("patient.location", "str", "patient.location", "where the patient was"),
        _f("plan.funding", "str", "plan.funding", "self-funded (ASO/ERISA) or fully-insured, where the claim says"),
        _f("claim.other_payer_filings", "set", "other_payers",
           "claim filing indicators (SBR09) of the claim's other payers: MB Medicare B, MC Medicaid, CI commercial..."),
        _f("patient.rural", "bool", "patient.rural", "originating site is rural / outside an MSA"),
        _f("encounter.modality", "str", "encounter.modality", "in-person, video, audio-only, portal, remote-monitoring"),
        _f("encounter.total_minutes", "int", "encounter.total_minutes", "practitioner time on the date"),
        _f("encounter.em_minutes", "int", "encounter.total_minutes",
           "E/M time: total minutes on the date less psychotherapy minutes (reported separately)"),
        _f("encounter.psychotherapy_minutes", "int", "encounter.psychotherapy_minutes", "psychotherapy time"),
        _f("encounter.mdm", "str", "encounter.mdm", "medical decision making level"),
        _f("encounter.mdm_rank", "int", "encounter.mdm", "MDM as 1 straightforward .. 4 high"),
        _f("encounter.level_basis", "str", "encounter.level_basis", "mdm or time"),
        _f("encounter.consent_documented", "bool", "encounter.consent_documented", "consent is in the note"),
        _f("encounter.video_declined", "bool", "encounter.video_declined", "patient could not use or declined video"),
        _f("encounter.rpm_days", "int", "encounter.rpm_days", "days of device data in the period"),
        _f("encounter.rpm_minutes", "int", "encounter.rpm_minutes", "RPM management minutes in the month"),
        _f("encounter.interactive_communication", "bool", "encounter.interactive_communication",
           "a real-time interactive exchange took place"),
        _f("incident_to.performed_by", "str", "incident_to.performed_by", "who performed an incident-to service"),
        _f("incident_to.supervision", "str", "incident_to.supervision", "supervision of an incident-to service"),
        _f("code.known", "bool", None, "the code appears in the code table"),
        _f("code.status", "str", None, "active or deleted on the date of service"),
        _f("code.kind", "str", None, "code kind on the date of service"),
        _f("code.family", "str", None, "code family (for visit counts)"),
        _f("code.patient_status", "str", None, "new or established: the patient the code is for, where it says"),
        _f("code.time_min", "int", None, "minimum minutes for the code on the date"),
        _f("code.time_max", "int", None, "maximum minutes (range years only)"),
        _f("code.mdm_rank", "int", None, "MDM level the code needs, 1..4"),
        _f("code.next_level", "str", None, "the next E/M level up, from the code table"),
        _f("code.next_time_min", "int", None, "minutes the next level up needs on the date"),
        _f("code.next_mdm_rank", "int", None, "MDM the next level up needs, 1..4"),
        _f("code.covered", "bool", None, "the payer covers the code on the date"),
        _f("code.telehealth", "bool", None, "the code is on the payer's telehealth list"),
        _f("code.replaced_by", "str", None, "what to bill instead"),
        _f("code.mue", "int", None, "medically unlikely edit: units per day"),
        _f("code.age_ok", "bool", "patient.birth_date", "patient age is in the code's age band (true if none)", True),
        _f("code.biller_ok", "bool", "rendering_provider.type", "the provider type may bill the code (true if any may)", True),
        _f("code.primary_on_claim", "bool", None, "an add-on's primary code is on another line"),
        # From imported CMS releases (payerpolicy data import), in the program the payer's layers name.
        _f("reference.program", "str", None, "whose CMS tables the payer reads: medicare or medicaid"),
        _f("reference.unchecked", "set", None,
           "reference data kinds no imported release covers for the date as known (on the claim's first such line)"),
        _f("ptp.covered", "bool", None, "an imported NCCI PTP release covers the date of service"),
        _f("ptp.denied_with", "set", None,
           "codes on the claim's other lines that date with which this line is a PTP column-two code, not bypassed"),
        _f("ptp.modifier_allowed", "bool", None, "every edit denying this line allows an NCCI-associated modifier"),
        _f("ptp.em_line", "bool", None, "this line is the E/M of the pair (modifier 25 goes here)"),
        _f("mue.covered", "bool", None, "an imported MUE release covers the date of service"),
        _f("mue.value", "int", None, "the code's MUE: units per line (MAI 1) or per date of service (MAI 2, 3)"),
        _f("mue.mai", "int", None, "the MUE adjudication indicator: 1 line, 2 date (policy), 3 date (clinical)"),
        _f("mue.units_on_date", "int", None,
           "units of the code for the patient that date: this line and the lines and claims before it"),
        _f("addon.covered", "bool", None, "an imported add-on code edit release covers the date of service"),
        _f("addon.type", "int", None, "the add-on code edit type (1, 2, 3) of an add-on code"),
        _f("addon.primaries", "set", None, "the primary codes the add-on edit lists (types 1 and 3)"),
        _f("addon.primary_present", "bool", None, "one of the listed primaries is on another line that date"),
        _f("mpfs.covered", "bool", None, "an imported MPFS indicator release covers the date of service"),
        _f("mpfs.status", "str", None, "the physician fee schedule status code (A, B, I, N, X...)"),
        _f("mpfs.global_days", "str", None, "the global surgery period (000, 010, 090, XXX, ZZZ...)"),
        _f("telehealth_list.covered", "bool", None, "an imported Medicare telehealth list covers the date"),
        _f("telehealth_list.listed", "bool", None, "the code is on the Medicare telehealth list on the date"),
        _f("telehealth_list.status", "str", None, "the list's status for the code (permanent, provisional...)"),
        _f("telehealth_list.audio_only", "bool", None, "the list says audio-only interaction can meet the requirements"),
        _f("history.days_since_any_service", "int", "patient.id",
           "days since the patient's latest service on an earlier date, any code (99999 if none on record)"),
        _f("history.days_since_in_person", "int", "patient.id",
           "days since the patient's latest in-person service before this line (99999 if none on record)"),
        _f("history.days_since_remote", "int", "patient.id",
           "days since the patient's latest telehealth or other remote service before this line (99999 if none)"),
        _f("history.same_code_same_day", "int", "patient.id", "same code, same patient, same date, before this line"),
        _f("history.same_code_units_same_day", "int", "patient.id",
           "units of the same code for the patient on the same date, before this line"),
        _f("history.days_since_same_code", "int", "patient.id", "days since the same code for the patient (99999 if never)"),
        _f("history.same_code_this_month", "int", "patient.id", "same code this calendar month before this line"),
        _f("history.same_code_this_year", "int", "patient.id", "same code this calendar year before this line"),
        _f("history.same_family_same_day", "int", "patient.id", "same code family, same date, before this line"),
        _f("history.same_family_this_month", "int", "patient.id", "same code family this calendar month before this line"),
        _f("history.same_family_this_year", "int", "patient.id", "same code family this calendar year before this line"),
    ]
}

# Attributes a code-table entry may carry, with their types.
CODE_ATTRIBUTES: dict[str, Kind] = {
    "kind": "str", "family": "str", "status": "str", "summary": "str", "time_min": "int",
    "time_max": "int", "mdm": "str", "age_min": "int", "age_max": "int", "billers": "set",
    "primaries": "set", "covered": "bool", "telehealth": "bool", "replaced_by": "str", "mue": "int",
    "unit_minutes": "int", "prolonged_start": "int", "next_level": "str", "patient_status": "str",
    "time_basis": "str",
}

MDM_RANK = {"straightforward": 1, "low": 2, "moderate": 3, "high": 4}


@dataclass(frozen=True)
class FieldRef:
    name: str


@dataclass(frozen=True)
class Test:
    field: str
    op: str
    value: Any = None

    def negate(self) -> "Cond":
        flipped = {"eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in", "lt": "gte", "gte": "lt",
                   "gt": "lte", "lte": "gt", "present": "absent", "absent": "present",
                   "lacks": "has_any", "has_any": "lacks"}
        if self.op == "has":
            return AnyOf(tuple(Test(self.field, "lacks", (v,)) for v in self.value))
        return Test(self.field, flipped[self.op], self.value)


@dataclass(frozen=True)
class AllOf:
    items: tuple["Cond", ...]

    def negate(self) -> "Cond":
        return AnyOf(tuple(i.negate() for i in self.items))


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Cond", ...]

    def negate(self) -> "Cond":
        return AllOf(tuple(i.negate() for i in self.items))


Cond = Union[Test, AllOf, AnyOf]

_SET_OPS = {"has", "has_any", "lacks"}
_UPPER = {"line.code", "claim.other_codes", "line.modifiers", "claim.other_modifiers", "claim.state",
          "ptp.denied_with", "addon.primaries", "mpfs.status", "mpfs.global_days"}
_SCALAR_OPS = {"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte"}
_ORDERED = {"int", "date"}
_DERIVED_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class ConditionError(Exception):
    """A bad ``when``; ``loc`` is the path inside the rule for the line number."""

    def __init__(self, loc: tuple[Any, ...], message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


def _scalar(spec: FieldSpec, value: Any, loc: tuple[Any, ...]) -> Any:
    if spec.kind == "str" or spec.kind == "set":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ConditionError(loc, f"{spec.name} takes text, not {type(value).__name__}")
        return str(value).upper() if spec.name in _UPPER else str(value)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise ConditionError(loc, f"{spec.name} takes true or false")
        return value
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConditionError(loc, f"{spec.name} takes a whole number")
        return value
    if spec.kind == "date":
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                pass
        if not isinstance(value, dt.date):
            raise ConditionError(loc, f"{spec.name} takes a date (YYYY-MM-DD)")
        return value
    raise AssertionError(spec.kind)


def field_spec(name: str, derived_ok: bool = True) -> FieldSpec | None:
    if name in FIELDS:
        return FIELDS[name]
    if derived_ok and name.startswith("derived.") and _DERIVED_NAME.match(name[8:]):
        return FieldSpec(name, "bool", None, "a fact derived by another rule")
    return None


def _test(name: str, op: str, value: Any, loc: tuple[Any, ...]) -> Cond:
    spec = field_spec(name)
    if spec is None:
        raise ConditionError(loc, f"unknown field '{name}'")
    if spec.kind == "set":
        if op == "empty":
            if not isinstance(value, bool):
                raise ConditionError(loc, "empty takes true or false")
            return Test(name, "empty" if value else "nonempty")
        if op == "present":
            return Test(name, "present" if value else "absent")
        if op not in _SET_OPS:
            raise ConditionError(loc, f"{name} is a set: use has, has_any, lacks or empty")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConditionError(loc, f"{op} needs at least one value")
        return Test(name, op, tuple(_scalar(spec, v, loc) for v in values))
    if op == "present":
        if not isinstance(value, bool):
            raise ConditionError(loc, "present takes true or false")
        return Test(name, "present" if value else "absent")
    if op not in _SCALAR_OPS:
        raise ConditionError(loc, f"unknown test '{op}' for {name}")
    if op in ("in", "not_in"):
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConditionError(loc, f"{op} needs at least one value")
        return Test(name, op, tuple(_scalar(spec, v, loc) for v in values))
    if op in ("lt", "lte", "gt", "gte"):
        if spec.kind not in _ORDERED:
            raise ConditionError(loc, f"{name} cannot be compared with {op}")
        if isinstance(value, dict):
            if set(value) != {"field"}:
                raise ConditionError(loc, "a field comparison is written {field: NAME}")
            other = field_spec(str(value["field"]), derived_ok=False)
            if other is None or other.kind != spec.kind:
                raise ConditionError(loc, f"cannot compare {name} with '{value['field']}'")
            return Test(name, op, FieldRef(other.name))
    return Test(name, op, _scalar(spec, value, loc))


def parse_when(when: Any, loc: tuple[Any, ...] = ("when",)) -> Cond:
    """Parse a ``when`` mapping (all of its keys must hold) into a condition tree."""
    if not isinstance(when, dict) or not when:
        raise ConditionError(loc, "when must be a mapping of field tests")
    items: list[Cond] = []
    for key, value in when.items():
        here = loc + (key,)
        if key in ("any", "all"):
            if not isinstance(value, list) or not value:
                raise ConditionError(here, f"{key} takes a list of conditions")
            parts = tuple(parse_when(v, here + (i,)) for i, v in enumerate(value))
            items.append(AnyOf(parts) if key == "any" else AllOf(parts))
        elif key == "not":
            items.append(parse_when(value, here).negate())
        elif key in ("derived", "not_derived"):
            names = value if isinstance(value, list) else [value]
            for name in names:
                if not isinstance(name, str) or not _DERIVED_NAME.match(name):
                    raise ConditionError(here, f"'{name}' is not a derived fact name")
                items.append(Test(f"derived.{name}", "present" if key == "derived" else "absent"))
        elif isinstance(value, dict) and not (set(value) == {"field"}):
            if not value:
                raise ConditionError(here, "empty test")
            for op, operand in value.items():
                items.append(_test(str(key), str(op), operand, here + (op,)))
        elif isinstance(value, list):
            items.append(_test(str(key), "has" if _is_set(key) else "in", value, here))
        else:
            items.append(_test(str(key), "has" if _is_set(key) else "eq", value, here))
    return items[0] if len(items) == 1 else AllOf(tuple(items))


def _is_set(name: Any) -> bool:
    spec = field_spec(str(name))
    return spec is not None and spec.kind == "set"


def walk(cond: Cond):
    if isinstance(cond, Test):
        yield cond
    else:
        for item in cond.items:
            yield from walk(item)


def referenced_fields(cond: Cond) -> list[str]:
    seen: list[str] = []
    for test in walk(cond):
        for name in (test.field, test.value.name if isinstance(test.value, FieldRef) else None):
            if name and name not in seen:
                seen.append(name)
    return seen


def describe(cond: Cond) -> str:
    """A short human reading of a condition, for `policy show` and traces."""
    if isinstance(cond, AllOf):
        return " and ".join(describe(i) for i in cond.items)
    if isinstance(cond, AnyOf):
        return "(" + " or ".join(describe(i) for i in cond.items) + ")"
    value = cond.value
    if isinstance(value, FieldRef):
        shown = value.name
    elif isinstance(value, tuple):
        shown = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        shown = str(value)
    words = {"eq": "=", "ne": "!=", "in": "in", "not_in": "not in", "lt": "<", "lte": "<=", "gt": ">",
             "gte": ">=", "has": "has", "has_any": "has any of", "lacks": "lacks"}
    if cond.op in ("present", "absent", "empty", "nonempty"):
        return f"{cond.field} {cond.op}"
    return f"{cond.field} {words[cond.op]} {shown}"
