"""Questions to the policy without a claim: does payer P accept code C on date D, and how?

A query is answered by the same engine as a scrub: a minimal claim is built from the
question for each payer (and state) asked about, and the rules that fire decide.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..claims import Claim, validate_claim
from ..findings import Finding
from .model import PolicySet
from ..scrub import scrub


@dataclass
class Question:
    code: str
    date: dt.date
    modifiers: list[str] = field(default_factory=list)
    pos: str | None = None
    state: str | None = None
    modality: str | None = None
    location: str | None = None
    provider: str | None = None


@dataclass
class Answer:
    payer: str
    state: str | None
    verdict: str  # accepted, at risk, denied, cannot tell
    findings: list[Finding]
    code: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "payer": self.payer, "state": self.state, "verdict": self.verdict,
                "findings": [f.as_dict() for f in self.findings]}


VERDICT = {"clean": "accepted", "review": "at risk", "reject": "denied"}


def code_kinds(policy: PolicySet) -> set[str]:
    """Every kind of code the code tables name (office-em-established, telephone-em, ...)."""
    kinds = set()
    for layer in policy.layers.values():
        for revisions in layer.codes.values():
            for revision in revisions:
                for value in revision.values:
                    kind = value.attrs.get("kind")
                    if isinstance(kind, str):
                        kinds.add(kind)
    return kinds


def codes_of_kinds(policy: PolicySet, kinds: list[str], payers: list[str], state: str | None, day: dt.date,
                   known_on: dt.date) -> tuple[list[str], list[str]]:
    """The codes of these kinds on a date of service, in the payers' code tables: those to ask
    about (in force, or, when none is, as for a deleted family, those that were) and those left
    out because they were not in force."""
    from .snapshot import Resolver

    resolver = Resolver(policy)
    active, deleted = set(), set()
    for payer in payers:
        snapshot = resolver.get(payer, state, known_on)
        for code in snapshot.codes():
            attrs = snapshot.code_attrs(code, day)
            if attrs and attrs.get("kind") in kinds:
                (active if attrs.get("status", "active") == "active" else deleted).add(code)
    return (sorted(active), sorted(deleted - active)) if active else (sorted(deleted), [])


def _claim(q: Question, payer: str, state: str | None) -> Claim:
    raw: dict[str, Any] = {"id": "query", "payer": payer, "service_date": q.date.isoformat(),
                           "lines": [{"code": q.code, "modifiers": q.modifiers}]}
    if state:
        raw["state"] = state
    if q.pos:
        raw["place_of_service"] = q.pos
    if q.modality:
        raw["encounter"] = {"modality": q.modality}
    if q.location:
        raw["patient"] = {"location": q.location}
    if q.provider:
        raw["rendering_provider"] = {"type": q.provider}
    claim = validate_claim(raw, 1)
    if not isinstance(claim, Claim):
        raise ValueError("; ".join(f"{e.field}: {e.reason}" for e in claim.errors))
    return claim


def ask(policy: PolicySet, q: Question, payers: list[str], known_on: dt.date) -> list[Answer]:
    targets: list[tuple[str, str | None]] = []
    for payer in payers:
        spec = policy.payers[payer]
        if q.state:
            targets.append((payer, q.state))
        elif spec.states:
            targets.append((payer, None))
            targets.extend((payer, s) for s in sorted(spec.states))
        else:
            targets.append((payer, None))
    claims = [_claim(q, payer, state) for payer, state in targets]
    result = scrub(claims, policy, known_on)
    answers = []
    for (payer, state), outcome in zip(targets, result.claims):
        decided = [f for f in outcome.findings if not f.missing and f.severity != "info"]
        verdict = VERDICT[outcome.status]
        if outcome.status == "review" and not decided:
            verdict = "cannot tell"
        answers.append(Answer(payer, state, verdict, outcome.findings, q.code))
    return answers


def settle(policy: PolicySet, read, today: dt.date):
    """A question as read (``question_text.ReadQuestion``) made whole: every payer when it named
    none, today for missing dates, and a kind of code turned into its codes on the date."""
    from dataclasses import replace

    from .question_text import QuestionError

    unknown = [k for k in read.payers if k not in policy.payers]
    if unknown:
        raise QuestionError(f"unknown payer(s) {', '.join(unknown)}")
    day, known = read.date or today, read.known_on or today
    codes, left_out = list(read.codes), []
    if not codes and read.kinds:
        codes, left_out = codes_of_kinds(policy, read.kinds, read.payers or list(policy.payers), read.state, day,
                                         known)
        if not codes:
            raise QuestionError(f"no code of kind {', '.join(read.kinds)} is in the code table on {day}")
    if not codes:
        raise QuestionError("name a code (e.g. 99213) or a kind of code (e.g. 'audio-only E/M')")
    return replace(read, codes=codes, not_in_force=left_out, date=day, known_on=known)


def ask_all(policy: PolicySet, asked) -> list[Answer]:
    """Every code of a settled question, for every payer it names (all when none)."""
    answers: list[Answer] = []
    for one in asked.codes:
        answers += ask(policy, Question(code=one, date=asked.date, modifiers=asked.modifiers, pos=asked.pos,
                                        state=asked.state, modality=asked.modality, location=asked.location,
                                        provider=asked.provider), asked.payers or list(policy.payers), asked.known_on)
    return answers
