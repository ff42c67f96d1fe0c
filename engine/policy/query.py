"""Questions to the policy without a claim: does payer P accept code C on date D, and how?

A query is answered by the same engine as a scrub: a minimal claim is built from the
question for each payer (and state) asked about, and the rules that fire decide.
"""

from __future__ import annotations

import datetime as dt
import re
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

    def as_dict(self) -> dict[str, Any]:
        return {"payer": self.payer, "state": self.state, "verdict": self.verdict,
                "findings": [f.as_dict() for f in self.findings]}


VERDICT = {"clean": "accepted", "review": "at risk", "reject": "denied"}
_MODALITIES = {"video": "video", "audio": "audio-only", "audio-only": "audio-only", "phone": "audio-only",
               "telephone": "audio-only", "in-person": "in-person", "portal": "portal"}


def parse_text(text: str) -> dict[str, Any]:
    """The small free-text form: "covers 99213 modifier 93 pos 10 video home by NP"."""
    found: dict[str, Any] = {"modifiers": []}
    words = re.findall(r"[A-Za-z0-9-]+", text)
    i = 0
    while i < len(words):
        w, nxt = words[i].lower(), (words[i + 1] if i + 1 < len(words) else None)
        if w in ("modifier", "mod", "modifiers") and nxt:
            found["modifiers"].append(nxt.upper()); i += 2; continue
        if w == "pos" and nxt:
            found["pos"] = nxt.zfill(2); i += 2; continue
        if w in ("by", "provider") and nxt:
            found["provider"] = nxt if nxt in ("pharmacist", "psychologist") else nxt.upper(); i += 2; continue
        if w in _MODALITIES:
            found["modality"] = _MODALITIES[w]
        elif w in ("home", "office", "clinic"):
            found["location"] = w
        elif re.fullmatch(r"[0-9]{5}|[A-Za-z][0-9]{4}", w):
            found["code"] = w.upper()
        i += 1
    if "code" not in found:
        raise ValueError("the question names no procedure code (e.g. 99213 or G2212)")
    return found


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
        answers.append(Answer(payer, state, verdict, outcome.findings))
    return answers
