"""Scrub: claims in, findings out. A thin composition of parse, facts, rules and report."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from .claims import Claim, InputError, InvalidClaim
from .findings import Finding, claim_status
from .history import History, Service, in_person
from .judge import judge_claim
from .policy.model import PolicySet
from .policy.snapshot import Resolver


@dataclass
class ClaimResult:
    id: str | None
    position: int
    status: str
    findings: list[Finding] = field(default_factory=list)
    errors: list[InputError] = field(default_factory=list)
    notes: list[InputError] = field(default_factory=list)  # X12 findings that did not block judging

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "status": self.status}
        if self.status == "invalid":
            data["position"] = self.position
            data["errors"] = [e.as_dict() for e in self.errors]
        else:
            data["findings"] = [f.as_dict() for f in self.findings]
            if self.notes:
                data["notes"] = [e.as_dict() for e in self.notes]
        return data


@dataclass
class ScrubResult:
    policy_version: str
    known_on: dt.date
    claims: list[ClaimResult]
    files: list[dict[str, Any]] = field(default_factory=list)  # problems of files, outside every claim

    @property
    def summary(self) -> dict[str, int]:
        counts = {"claims": len(self.claims), "clean": 0, "review": 0, "reject": 0, "invalid": 0, "history": 0}
        for c in self.claims:
            counts[c.status] += 1
        return counts

    @property
    def exit_code(self) -> int:
        return 1 if any(c.status in ("reject", "invalid") for c in self.claims) else 0

    def as_dict(self) -> dict[str, Any]:
        return {"policy_version": self.policy_version, "known_on": self.known_on.isoformat(),
                "claims": [c.as_dict() for c in self.claims], "files": list(self.files), "summary": self.summary}


def family_of(resolver: Resolver, claim: Claim, day: dt.date, code: str, known_on: dt.date) -> str | None:
    """A code's family on a date for the claim's payer (None for a payer no longer in the tree)."""
    if claim.payer not in resolver.policy.payers:
        return None
    attrs = resolver.get(claim.payer, claim.state, known_on).code_attrs(code, day)
    return (attrs or {}).get("family")


def add_to_history(history: History, claim: Claim, position: int, family: Callable[[dt.date, str], str | None]) -> None:
    if claim.patient is None or not claim.patient.id:
        return
    for number, line in enumerate(claim.lines, 1):
        day = claim.line_date(line)
        history.add(claim.patient.id, Service(day, (position, number), line.code, family(day, line.code),
                                              in_person(claim, line), line.units, claim.line_days(line)))


def known_payer(item: Claim | InvalidClaim, policy: PolicySet, position: int) -> Claim | InvalidClaim:
    if isinstance(item, Claim) and item.payer not in policy.payers:
        known = ", ".join(sorted(policy.payers))
        if item.payer.startswith("x12:"):
            # Payer keys are lower-cased on input; X12 payer ids are written in capitals.
            reason = (f"X12 payer id {item.payer[4:].upper()} is not in payers.yaml (x12_payer_ids); "
                      f"add it there or use --payer (known payers: {known})")
        else:
            reason = (f"unknown payer; known payers: {known} (a warehouse's payer name can be mapped to "
                      f"a key with names: in payers.yaml)")
        return InvalidClaim(item.id, position, [InputError("payer", reason)])
    return item


def scrub_iter(items: Iterable[Claim | InvalidClaim], policy: PolicySet, known_on: dt.date,
               history: History | None = None, resolver: Resolver | None = None,
               reference: str | None = None) -> Iterator[ClaimResult]:
    """Judge every claim, yielding each result as it is ready (a large batch need not be held).

    A caller judging many small batches passes one ``resolver`` so snapshots are resolved once;
    ``reference`` is the SQLite file of imported CMS releases, when there is one.
    """
    items = [known_payer(item, policy, position) for position, item in enumerate(items, 1)]
    if resolver is None:
        from .reference.lookup import open_reference

        resolver = Resolver(policy, open_reference(reference))
    history = history if history is not None else History()
    for position, item in enumerate(items, 1):
        if isinstance(item, Claim):
            add_to_history(history, item, position,
                           lambda day, code, c=item: family_of(resolver, c, day, code, known_on))
    for position, item in enumerate(items, 1):
        if isinstance(item, InvalidClaim):
            yield ClaimResult(item.id, position, "invalid", errors=item.errors)
        elif item.adjudication is not None:
            yield ClaimResult(item.id, position, "history")
        else:
            snapshot = resolver.get(item.payer, item.state, known_on)
            findings = judge_claim(item, snapshot, history, position)
            yield ClaimResult(item.id, position, claim_status(findings, item.notes), findings, notes=list(item.notes))


def scrub(items: Iterable[Claim | InvalidClaim], policy: PolicySet, known_on: dt.date,
          history: History | None = None, progress: Callable[[int], None] | None = None,
          resolver: Resolver | None = None, reference: str | None = None) -> ScrubResult:
    """Judge every claim; a bad claim is reported as invalid and the batch goes on."""
    results: list[ClaimResult] = []
    for result in scrub_iter(items, policy, known_on, history, resolver, reference):
        results.append(result)
        if progress:
            progress(1)
    return ScrubResult(policy.digest, known_on, results)
