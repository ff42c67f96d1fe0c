"""Policy data as loaded: the shapes of policy files and of the merged policy set.

File shapes (``*File`` models) forbid unknown keys so a typo fails the load. The
normalised shapes (``RuleRevision``, ``CodeRevision`` …) are what the store keeps and
what a snapshot is built from; they round-trip through JSON for replays.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Confidence = Literal["high", "medium", "low"]
Severity = Literal["error", "warning", "info"]
FixAction = Literal[
    "replace_code", "add_modifier", "remove_modifier", "change_pos", "remove_line",
    "add_line", "document", "obtain_authorization", "change_provider", "review",
]


class _Model(BaseModel):
    # Validators are built on first use, not at import: a start that finds the tree in the
    # compiled cache never validates policy YAML (building them all cost ~20 ms a start).
    model_config = ConfigDict(defer_build=True)


class _Strict(_Model):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Effective(_Strict):
    from_: dt.date = Field(alias="from")
    to: dt.date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Effective":
        if self.to is not None and self.to < self.from_:
            raise ValueError("effective.to is before effective.from")
        return self

    def covers(self, day: dt.date) -> bool:
        return self.from_ <= day and (self.to is None or day <= self.to)

    def overlaps(self, other: "Effective") -> bool:
        return (self.to is None or other.from_ <= self.to) and (other.to is None or self.from_ <= other.to)

    def as_dict(self) -> dict[str, str | None]:
        return {"from": self.from_.isoformat(), "to": self.to.isoformat() if self.to else None}


class Fix(_Strict):
    action: FixAction
    to: str | None = None
    add_modifiers: list[str] = Field(default_factory=list)
    remove_modifiers: list[str] = Field(default_factory=list)
    text: str


class Then(_Strict):
    severity: Severity
    carc: str | None = None
    group: Literal["CO", "PR", "OA", "PI", "CR"] | None = None
    rarc: list[str] = Field(default_factory=list)
    message: str
    fix: Fix | None = None


class Source(_Strict):
    title: str
    url: str | None = None
    note: str | None = None


class DiagnosisGroup(_Strict):
    title: str
    prefixes: list[str]
    source: str
    confidence: Confidence


class _RuleBody(_Strict):
    """What a rule and each of its revisions may say; a revision's values override the rule's."""

    title: str | None = None
    when: dict[str, Any] | None = None
    then: Then | None = None
    derive: str | None = None
    source: str | None = None
    confidence: Confidence | None = None
    note: str | None = None


class RevisionFile(_RuleBody):
    published: dt.date
    effective: Effective


class RuleFile(_RuleBody):
    id: str
    title: str
    replace: bool = False
    supersedes: list[str] = Field(default_factory=list)
    missing: Literal["report", "ignore"] = "report"
    published: dt.date | None = None
    effective: Effective | None = None
    revisions: list[RevisionFile] | None = None


class DisableFile(_Strict):
    id: str
    published: dt.date
    source: str
    reason: str


class CodeValueFile(_Model):
    """One dated entry; attributes other than the fixed keys are code attributes."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    effective: Effective
    published: dt.date | None = None
    source: str | None = None
    confidence: Confidence | None = None


class CodeRevisionFile(_Strict):
    published: dt.date
    source: str
    confidence: Confidence
    values: list[CodeValueFile]


class PtpRowFile(_Strict):
    column1: str
    column2: str
    effective: dt.date = dt.date(1996, 1, 1)
    deletion: dt.date | None = None
    modifier: Literal[0, 1, 9]


class MueRowFile(_Strict):
    code: str
    value: int = Field(ge=0)
    mai: Literal[1, 2, 3]


class AddonRowFile(_Strict):
    addon: str
    primary: str | None = None
    type: Literal[1, 2, 3]
    effective: dt.date = dt.date(1996, 1, 1)
    deletion: dt.date | None = None


class MpfsRowFile(_Strict):
    code: str
    modifier: str = ""
    status: str = Field(pattern=r"^[A-Z]$")
    global_days: str | None = None
    rvu: float | None = None


class TelehealthRowFile(_Strict):
    code: str
    status: str | None = None
    audio_only: bool | None = None
    effective: dt.date | None = None


class CaseDataFile(_Strict):
    """A case's own rows of CMS reference data, in force on every date (kinds as `data import` names them)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    ncci_ptp: list[PtpRowFile] = Field(default_factory=list, alias="ncci-ptp")
    ncci_mue: list[MueRowFile] = Field(default_factory=list, alias="ncci-mue")
    ncci_addon: list[AddonRowFile] = Field(default_factory=list, alias="ncci-addon")
    mpfs_indicators: list[MpfsRowFile] = Field(default_factory=list, alias="mpfs-indicators")
    telehealth_list: list[TelehealthRowFile] = Field(default_factory=list, alias="telehealth-list")

    def rows(self) -> dict[str, list[list[Any]]]:
        """Each kind's rows in its table's column order, dates as ISO text."""
        def iso(d: dt.date | None) -> str | None:
            return d.isoformat() if d else None

        found = {
            "ncci-ptp": [[r.column1.upper(), r.column2.upper(), iso(r.effective), iso(r.deletion), r.modifier, None]
                         for r in self.ncci_ptp],
            "ncci-mue": [[r.code.upper(), r.value, r.mai, None] for r in self.ncci_mue],
            "ncci-addon": [[r.addon.upper(), r.primary.upper() if r.primary else None, r.type, iso(r.effective),
                            iso(r.deletion)] for r in self.ncci_addon],
            "mpfs-indicators": [[r.code.upper(), r.modifier.upper(), r.status, r.global_days, r.rvu]
                                for r in self.mpfs_indicators],
            "telehealth-list": [[r.code.upper(), r.status, r.audio_only, iso(r.effective)] for r in self.telehealth_list],
        }
        return {kind: rows for kind, rows in found.items() if rows}


class CaseFile(_Strict):
    name: str
    claim: dict[str, Any]
    data: CaseDataFile | None = None
    known_on: dt.date | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    expect: list[str | dict[str, Any]] = Field(default_factory=list)
    expect_not: list[str] = Field(default_factory=list)
    status: Literal["clean", "review", "reject"] | None = None


class PolicyFile(_Strict):
    layer: str
    title: str | None = None
    # Which program's CMS tables (data import) this layer's claims are judged with; a later layer wins.
    reference_data: Literal["medicare", "medicaid", "none"] | None = None
    sources: dict[str, Source] = Field(default_factory=dict)
    diagnosis_groups: dict[str, DiagnosisGroup] = Field(default_factory=dict)
    codes: dict[str, list[CodeValueFile] | dict[str, list[CodeRevisionFile]]] = Field(default_factory=dict)
    rules: list[RuleFile] = Field(default_factory=list)
    disable: list[DisableFile] = Field(default_factory=list)
    cases: list[CaseFile] = Field(default_factory=list)


class PayerFile(_Strict):
    name: str
    plan_class: Literal["medicare", "commercial", "medicaid", "medicare_advantage", "other"] = Field(alias="class")
    layers: list[str]
    states: dict[str, list[str]] = Field(default_factory=dict)
    x12_payer_ids: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list)


class PayersFile(_Strict):
    payers: dict[str, PayerFile]


class TaxonomyFile(_Strict):
    source: str
    taxonomy: dict[str, Literal[
        "MD", "DO", "NP", "PA", "CNS", "RN", "LPN", "MA", "pharmacist", "psychologist",
        "LCSW", "LMFT", "LPC", "PT", "OT", "SLP", "RD"]]


# ---- normalised shapes -------------------------------------------------------------

class Where(_Model):
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class RuleRevision(_Model):
    rule_id: str
    layer: str
    title: str
    replace: bool
    supersedes: list[str]
    missing: Literal["report", "ignore"]
    published: dt.date
    effective: Effective
    when: dict[str, Any]
    then: Then | None
    derive: str | None
    source: str
    confidence: Confidence
    note: str | None = None
    where: Where

    @property
    def revision(self) -> str:
        return self.published.isoformat()


class Disable(_Model):
    rule_id: str
    layer: str
    published: dt.date
    source: str
    reason: str
    where: Where


class CodeValue(_Model):
    effective: Effective
    attrs: dict[str, Any]
    source: str
    confidence: Confidence


class CodeRevision(_Model):
    code: str
    layer: str
    published: dt.date
    values: list[CodeValue]
    where: Where


class Case(_Model):
    name: str
    layer: str
    claim: dict[str, Any]
    known_on: dt.date | None
    history: list[dict[str, Any]]
    expect: list[dict[str, Any]]
    expect_not: list[str]
    status: str | None
    where: Where
    data: dict[str, list[list[Any]]] | None = None


class Layer(_Model):
    name: str
    reference_data: str | None = None
    files: list[str] = Field(default_factory=list)
    rules: list[RuleRevision] = Field(default_factory=list)
    disables: list[Disable] = Field(default_factory=list)
    codes: dict[str, list[CodeRevision]] = Field(default_factory=dict)
    diagnosis_groups: dict[str, DiagnosisGroup] = Field(default_factory=dict)


class Payer(_Model):
    key: str
    name: str
    plan_class: str
    layers: list[str]
    states: dict[str, list[str]]
    x12_payer_ids: list[str]
    names: list[str] = Field(default_factory=list)

    def chain(self, state: str | None) -> tuple[str, ...]:
        return tuple(self.layers + (self.states.get(state, []) if state else []))

    def all_chains(self) -> list[tuple[str, ...]]:
        return [tuple(self.layers)] + [tuple(self.layers + extra) for extra in self.states.values()]


class PolicySet(_Model):
    digest: str
    root: str
    payers: dict[str, Payer]
    layers: dict[str, Layer]
    sources: dict[str, Source]
    cases: list[Case] = Field(default_factory=list)
    taxonomy: dict[str, str] = Field(default_factory=dict)

    def payer_names(self) -> dict[str, str]:
        """Payer names as warehouses write them (lower case) -> payer key; keys name themselves."""
        found = {key: key for key in self.payers}
        for key, payer in self.payers.items():
            for name in payer.names:
                found[name.strip().lower()] = key
        return found

    def rule_ids(self) -> set[str]:
        return {r.rule_id for layer in self.layers.values() for r in layer.rules}
