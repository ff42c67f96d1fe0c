"""A policy snapshot: one payer's layer chain, as known on one date.

Judging "as known on K" takes, per rule id and per code, the latest revision
published on or before K; later layers replace, disable or override earlier ones.
Effective dates (by date of service) are not resolved here: a snapshot serves a
whole batch, whose lines carry their own dates.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from bisect import bisect_right
from functools import cached_property
from typing import Any

from .fields import Cond, describe, parse_when, referenced_fields
from .model import CodeRevision, DiagnosisGroup, Payer, PolicySet, RuleRevision


_UNSEEN = object()


@dataclass(frozen=True)
class ActiveRule:
    """A rule revision in force in a snapshot, with its parsed condition."""

    revision: RuleRevision
    cond: Cond

    @cached_property
    def rule_id(self) -> str:
        return self.revision.rule_id

    @cached_property
    def revision_name(self) -> str:
        return self.revision.revision

    @cached_property
    def effective(self) -> dict[str, str | None]:
        return self.revision.effective.as_dict()

    @cached_property
    def fix(self) -> dict[str, Any] | None:
        """The rule's fix as plain data (copied per finding before its text is filled in)."""
        then = self.revision.then
        return then.fix.model_dump() if then is not None and then.fix is not None else None

    @cached_property
    def fields(self) -> tuple[str, ...]:
        """Every fact name the condition reads, in order (for traces and missing inputs)."""
        return tuple(referenced_fields(self.cond))

    @cached_property
    def reading(self) -> str:
        """The condition in words, with the revision's window and layer (the last trace line)."""
        eff = self.revision.effective
        return (f"rule {self.rule_id} revision {self.revision.revision} ({self.revision.layer}), "
                f"in force {eff.from_}..{eff.to or 'open'}: {describe(self.cond)}")

    @cached_property
    def severity(self) -> str | None:
        then = self.revision.then
        if then is None:
            return None
        # A low-confidence rule may warn but never deny.
        if self.revision.confidence == "low" and then.severity == "error":
            return "warning"
        return then.severity


def _latest(revisions, known_on: dt.date):
    known = [r for r in revisions if r.published <= known_on]
    return max(known, key=lambda r: r.published) if known else None


@dataclass
class Snapshot:
    policy: PolicySet
    payer: Payer
    chain: tuple[str, ...]
    known_on: dt.date
    rules: list[ActiveRule] = field(default_factory=list)
    diagnosis_groups: dict[str, DiagnosisGroup] = field(default_factory=dict)
    _codes: dict[str, list[CodeRevision]] = field(default_factory=dict)
    reference_program: str | None = None  # medicare, medicaid, or None: the payer reads no CMS tables
    reference: Any = None  # engine.reference.lookup.Reference, when releases are imported

    @cached_property
    def reference_families(self) -> tuple[str, ...]:
        """The reference-data fact families (ptp, mue...) this payer's rules read: only those are looked up."""
        from ..reference.linefacts import FAMILIES

        used = {name.split(".", 1)[0] for rule in self.rules for name in rule.fields}
        return tuple(f for f in FAMILIES if f in used)

    @cached_property
    def signature(self) -> tuple:
        """What the compiled ruleset depends on; equal signatures share one ruleset."""
        return (self.policy.digest, self.chain,
                tuple((r.rule_id, r.revision.layer, r.revision.published) for r in self.rules))

    def codes(self) -> list[str]:
        """Every code the chain's code tables name, whatever its dates."""
        return list(self._codes)

    def codes_on(self, day: dt.date) -> dict[str, dict[str, Any]]:
        """Every code in force on a date (not deleted), with its merged attributes."""
        found = {}
        for code in self._codes:
            attrs = self.code_attrs(code, day)
            if attrs and attrs.get("status", "active") == "active":
                found[code] = attrs
        return found

    @cached_property
    def diagnosis_prefixes(self) -> list[tuple[str, tuple[str, ...]]]:
        """Each diagnosis group with its ICD-10 prefixes as claims carry them (upper case, no dot)."""
        return [(name, tuple(p.upper().replace(".", "") for p in group.prefixes))
                for name, group in self.diagnosis_groups.items()]

    @cached_property
    def supersedes(self) -> dict[str, tuple[str, ...]]:
        """Rule id -> the rule ids its findings replace on the same line."""
        return {r.rule_id: tuple(r.revision.supersedes) for r in self.rules}

    def code_known(self, code: str) -> bool:
        return code in self._codes

    def code_attrs(self, code: str, day: dt.date) -> dict[str, Any] | None:
        """A code's merged attributes on a date of service (None when the code is not in the table).

        Attributes change only where a value's effective window starts or ends, so each code
        is cut once into segments between those dates and a date is found by bisection: the
        memory is that of the policy, not of the dates a batch happens to hold.
        """
        segments = self._segments.get(code, _UNSEEN)
        if segments is _UNSEEN:
            segments = self._segments[code] = self._cut(code)
        if segments is None:
            return None
        starts, attrs = segments
        return attrs[bisect_right(starts, day) - 1]

    def _cut(self, code: str) -> tuple[list[dt.date], list[dict[str, Any]]] | None:
        revisions = self._codes.get(code)
        if not revisions:
            return None
        points = {dt.date.min}
        for revision in revisions:
            for value in revision.values:
                points.add(value.effective.from_)
                if value.effective.to is not None and value.effective.to < dt.date.max:
                    points.add(value.effective.to + dt.timedelta(days=1))
        starts = sorted(points)
        return starts, [self._resolve_code(code, start) for start in starts]

    def _resolve_code(self, code: str, day: dt.date) -> dict[str, Any] | None:
        revisions = self._codes.get(code)
        if not revisions:
            return None
        merged: dict[str, Any] = {}
        found = False
        for revision in revisions:
            for value in revision.values:
                if value.effective.covers(day):
                    merged.update(value.attrs)
                    found = True
                    break
        return merged if found else {}

    def __post_init__(self) -> None:
        self._segments: dict[str, Any] = {}


def resolve(policy: PolicySet, payer_key: str, state: str | None, known_on: dt.date, reference: Any = None) -> Snapshot:
    payer = policy.payers[payer_key]
    chain = payer.chain(state)
    selected: dict[str, RuleRevision] = {}
    groups: dict[str, DiagnosisGroup] = {}
    codes: dict[str, list[CodeRevision]] = {}
    program: str | None = None
    for name in chain:
        layer = policy.layers[name]
        if layer.reference_data is not None:
            program = None if layer.reference_data == "none" else layer.reference_data
        by_id: dict[str, list[RuleRevision]] = {}
        for revision in layer.rules:
            by_id.setdefault(revision.rule_id, []).append(revision)
        for rule_id, revisions in by_id.items():
            chosen = _latest(revisions, known_on)
            if chosen is not None:
                selected[rule_id] = chosen
        for item in layer.disables:
            if item.published <= known_on:
                selected.pop(item.rule_id, None)
        groups.update(layer.diagnosis_groups)
        for code, revisions in layer.codes.items():
            chosen = _latest(revisions, known_on)
            if chosen is not None:
                codes.setdefault(code, []).append(chosen)
    rules = [ActiveRule(rev, parse_when(rev.when, ())) for rev in selected.values()]
    return Snapshot(policy=policy, payer=payer, chain=chain, known_on=known_on, rules=rules,
                    diagnosis_groups=groups, _codes=codes, reference_program=program, reference=reference)


class Resolver:
    """Snapshots cached per layer chain and knowledge date."""

    def __init__(self, policy: PolicySet, reference: Any = None):
        self.policy = policy
        self.reference = reference
        self._cache: dict[tuple, Snapshot] = {}

    def get(self, payer_key: str, state: str | None, known_on: dt.date) -> Snapshot:
        found = self._cache.get((payer_key, state, known_on))
        if found is None:
            chain = self.policy.payers[payer_key].chain(state)
            # States without an overlay share the payer's snapshot (and so its compiled rules).
            found = self._cache.get((payer_key, chain, known_on))
            if found is None:
                found = self._cache[(payer_key, chain, known_on)] = resolve(self.policy, payer_key, state, known_on, self.reference)
            self._cache[(payer_key, state, known_on)] = found
        return found
