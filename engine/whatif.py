"""What-if: the same claims under claim variants, two knowledge dates, or two policy trees.

Each comparison runs the ordinary scrub twice and reports, per claim, the findings added,
removed and changed, the status change, and the charges at risk (the charge of every line
with an error finding).
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .claims import Claim, InputError, InvalidClaim, validate_claim
from .findings import Finding, charges_at_risk
from .money import ZERO, money_text
from .policy.model import PolicySet
from .scrub import ClaimResult, ScrubResult, scrub


class SetError(ValueError):
    """A --set that cannot be applied; the message names the path, never claim values."""


LIST_FIELDS = {"modifiers", "diagnoses", "diagnosis_pointers"}


def parse_sets(sets: list[str]) -> list[list[tuple[str, str]]]:
    """``--set key=a,b`` options -> every combination of their alternatives (a grid)."""
    axes: list[list[tuple[str, str]]] = []
    for item in sets:
        if "=" not in item:
            raise SetError(f"--set {item!r}: write PATH=VALUE (alternatives separated by commas)")
        path, values = item.split("=", 1)
        path = path.strip()
        if not path:
            raise SetError("--set needs a field path before =")
        axes.append([(path, v.strip()) for v in values.split(",")] if values else [(path, "")])
    return [list(combo) for combo in itertools.product(*axes)] if axes else []


def _value(leaf: str, raw: str) -> Any:
    if leaf in LIST_FIELDS:
        return [v for v in raw.replace("+", " ").split() if v]
    if raw.lower() in ("null", "none", ""):
        return None
    return raw


def apply_set(raw: dict[str, Any], path: str, value: str) -> None:
    """Set one field of a claim dict: ``payer``, ``patient.location``, ``line1.modifiers``, ``lines.units``."""
    parts = path.split(".")
    head = parts[0]
    if head == "lines" or (head.startswith("line") and head[4:].isdigit()):
        if len(parts) != 2:
            raise SetError(f"--set {path}: a line field is written line1.FIELD (or lines.FIELD for every line)")
        lines = raw.get("lines") or []
        if head == "lines":
            targets = lines
        else:
            index = int(head[4:])
            if not 1 <= index <= len(lines):
                raise SetError(f"--set {path}: the claim has no line {index}")
            targets = [lines[index - 1]]
        for line in targets:
            line[parts[1]] = _value(parts[1], value)
        return
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = _value(parts[-1], value)


def variant_items(items: list[Claim | InvalidClaim], sets: list[tuple[str, str]]) -> list[Claim | InvalidClaim]:
    out: list[Claim | InvalidClaim] = []
    for position, item in enumerate(items, 1):
        if not isinstance(item, Claim):
            out.append(item)
            continue
        raw = item.model_dump(mode="json", exclude_none=True)
        try:
            for path, value in sets:
                apply_set(raw, path, value)
        except SetError as exc:
            out.append(InvalidClaim(item.id, position, [InputError("--set", str(exc))]))
            continue
        out.append(validate_claim(raw, position))
    return out


@dataclass
class ClaimChange:
    id: str | None
    position: int
    status_a: str
    status_b: str
    added: list[Finding] = field(default_factory=list)
    removed: list[Finding] = field(default_factory=list)
    changed: list[tuple[Finding, Finding]] = field(default_factory=list)
    at_risk_a: Decimal = ZERO
    at_risk_b: Decimal = ZERO

    @property
    def differs(self) -> bool:
        return self.status_a != self.status_b or bool(self.added or self.removed or self.changed)

    def rules(self) -> set[str]:
        return {f.rule for f in self.added + self.removed} | {a.rule for a, _ in self.changed}

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "status": {"a": self.status_a, "b": self.status_b},
            "added": [f.as_dict() for f in self.added], "removed": [f.as_dict() for f in self.removed],
            "changed": [{"a": a.as_dict(), "b": b.as_dict()} for a, b in self.changed],
            "at_risk": {"a": money_text(self.at_risk_a), "b": money_text(self.at_risk_b)},
        }


def _at_risk(claim: Claim | InvalidClaim, result: ClaimResult) -> Decimal:
    return charges_at_risk(claim.lines, result.findings)[1] if isinstance(claim, Claim) else ZERO


def _comparable(f: Finding) -> tuple:
    return (f.severity, f.carc, f.group, tuple(f.rarc), f.message, f.revision, f.layer, str(f.fix))


def compare(items_a: list, result_a: ScrubResult, items_b: list, result_b: ScrubResult) -> list[ClaimChange]:
    changes = []
    for item_a, a, item_b, b in zip(items_a, result_a.claims, items_b, result_b.claims):
        fa = {(f.line, f.rule): f for f in a.findings}
        fb = {(f.line, f.rule): f for f in b.findings}
        change = ClaimChange(a.id, a.position, a.status, b.status,
                             added=[fb[k] for k in fb if k not in fa],
                             removed=[fa[k] for k in fa if k not in fb],
                             changed=[(fa[k], fb[k]) for k in fa if k in fb and _comparable(fa[k]) != _comparable(fb[k])],
                             at_risk_a=_at_risk(item_a, a), at_risk_b=_at_risk(item_b, b))
        changes.append(change)
    return changes


@dataclass
class Comparison:
    label: str
    a: str
    b: str
    changes: list[ClaimChange]
    short: str = ""

    @property
    def changed(self) -> list[ClaimChange]:
        return [c for c in self.changes if c.differs]

    def by_rule(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for change in self.changed:
            for rule in sorted(change.rules()):
                grouped.setdefault(rule, []).append(change.id or f"claim {change.position}")
        return dict(sorted(grouped.items()))

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.label, "a": self.a, "b": self.b,
                "claims": [c.as_dict() for c in self.changes],
                "changed_claims": len(self.changed), "by_rule": self.by_rule(),
                "at_risk": {"a": money_text(sum((c.at_risk_a for c in self.changes), ZERO)),
                            "b": money_text(sum((c.at_risk_b for c in self.changes), ZERO))}}


def _scrub(items: list, policy: PolicySet, known_on: dt.date, workers: int, reference: str | None) -> ScrubResult:
    if workers > 1:
        from .batch import scrub_in_processes

        return scrub_in_processes(items, policy, known_on, workers, reference)
    return scrub(items, policy, known_on, reference=reference)


def claim_variants(items: list, policy: PolicySet, known_on: dt.date, sets: list[str],
                   workers: int = 1, reference: str | None = None) -> list[Comparison]:
    """The batch as given (a) against each combination of --set values (b)."""
    baseline = _scrub(items, policy, known_on, workers, reference)
    comparisons = []
    for combo in parse_sets(sets):
        varied = variant_items(items, combo)
        result = _scrub(varied, policy, known_on, workers, reference)
        label = ", ".join(f"{p}={v}" for p, v in combo)
        comparisons.append(Comparison(label, "as given", label, compare(items, baseline, varied, result),
                                      short=" ".join(v or "-" for _, v in combo)))
    return comparisons


def knowledge_dates(items: list, policy: PolicySet, first: dt.date, second: dt.date,
                    workers: int = 1, reference: str | None = None) -> Comparison:
    a = _scrub(items, policy, first, workers, reference)
    b = _scrub(items, policy, second, workers, reference)
    return Comparison(f"known on {first} vs {second}", f"known on {first}", f"known on {second}",
                      compare(items, a, items, b))


def policy_trees(items: list, policy_a: PolicySet, policy_b: PolicySet, known_on: dt.date,
                 workers: int = 1, reference: str | None = None) -> Comparison:
    a = _scrub(items, policy_a, known_on, workers, reference)
    b = _scrub(items, policy_b, known_on, workers, reference)
    return Comparison(f"policy {policy_a.digest[7:19]} vs {policy_b.digest[7:19]}", policy_a.root, policy_b.root,
                      compare(items, a, items, b))
