"""Join remittances to claims: CLP01 = CLM01, then each SVC to a claim line by procedure,
date and position."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..claims import Claim
from .remit835 import RemitClaim, RemitLine, Remittance


@dataclass
class Matched:
    claim: Claim
    remit: RemitClaim
    lines: dict[int, RemitLine] = field(default_factory=dict)  # claim line number -> remit line
    unmatched: list[RemitLine] = field(default_factory=list)


def match(claims: list[Claim], remits: list[Remittance]) -> tuple[list[Matched], list[RemitClaim]]:
    """Matched claims, and remitted claims with no claim of that id."""
    by_id: dict[str, Claim] = {c.id: c for c in claims}
    matched: list[Matched] = []
    orphans: list[RemitClaim] = []
    for remit in remits:
        for rc in remit.claims:
            claim = by_id.get(rc.claim_id)
            if claim is None:
                orphans.append(rc)
                continue
            matched.append(match_claim(claim, rc))
    return matched, orphans


def match_claim(claim: Claim, rc: RemitClaim) -> Matched:
    """One remitted claim's lines joined to the claim's lines."""
    pair = Matched(claim, rc)
    free = set(range(1, len(claim.lines) + 1))
    for rl in rc.lines:
        number = _line_for(claim, rl, rc, free)
        if number is None:
            pair.unmatched.append(rl)
        else:
            free.discard(number)
            pair.lines[number] = rl
    return pair


def _line_for(claim: Claim, rl: RemitLine, rc: RemitClaim, free: set[int]) -> int | None:
    day = rl.service_date or rc.service_date
    same_code = [n for n in sorted(free) if claim.lines[n - 1].code == rl.code]
    dated = [n for n in same_code if day is None or claim.line_date(claim.lines[n - 1]) == day]
    if dated:
        return dated[0]
    if same_code:
        return same_code[0]
    # No procedure match (a payer may bundle or recode): fall back to the same position.
    return rl.position if rl.position in free else None
