"""The lean C-engine driver gives exactly the hits durable_rules' own Host gives."""

import datetime as dt
import json
from collections import Counter

import pytest

from engine.chaining import CompiledRules, HostRules
from engine.claims import Claim, parse_claims_text
from engine.facts import claim_facts, line_facts
from engine.history import History
from engine.policy.loader import load_policies
from engine.policy.snapshot import Resolver
from engine.scrub import add_to_history
from benchmarks.synthetic import synthetic_claims

POLICY = load_policies()
TODAY = dt.date(2026, 11, 27)


class Both:
    """Each snapshot compiled twice, once per driver."""

    def __init__(self):
        self.resolver = Resolver(POLICY)
        self.pairs: dict[tuple, tuple[CompiledRules, HostRules]] = {}

    def hits(self, claim: Claim, known_on: dt.date, history: History, position: int):
        snap = self.resolver.get(claim.payer, claim.state, known_on)
        if snap.signature not in self.pairs:
            self.pairs[snap.signature] = (CompiledRules(snap), HostRules(snap))
        lean, host = self.pairs[snap.signature]
        shared = claim_facts(claim, snap)
        facts = [line_facts(claim, n, line, shared, snap, history, position) for n, line in enumerate(claim.lines, 1)]
        return [_shape(*driver.run(facts)) for driver in (lean, host)]


def _shape(hits, derived):
    return sorted(Counter((h.rule.rule_id, h.rule.revision.revision, h.line, h.missing) for h in hits).items()), derived


def _judge_batch(both: Both, items, known_on: dt.date) -> int:
    history = History()
    claims = [(p, c) for p, c in enumerate(items, 1) if isinstance(c, Claim) and c.payer in POLICY.payers]
    for position, c in claims:
        add_to_history(history, c, position, lambda day, code, c=c: (
            both.resolver.get(c.payer, c.state, known_on).code_attrs(code, day) or {}).get("family"))
    total = 0
    for position, c in claims:
        lean, host = both.hits(c, known_on, history, position)
        assert lean == host, f"claim {position} differs"
        total += sum(n for _, n in lean[0])
    return total


def test_every_policy_case_gives_the_same_hits_on_both_drivers():
    both = Both()
    total = 0
    for case in POLICY.cases:
        batch = [dict(h) for h in case.history] + [dict(case.claim)]
        total += _judge_batch(both, parse_claims_text(json.dumps(batch)), case.known_on or TODAY)
    assert total > 200  # the cases fire rules: the comparison is not of empty lists


@pytest.mark.parametrize("known_on", [TODAY, dt.date(2025, 10, 20)])
def test_ten_thousand_generated_claims_give_the_same_hits_on_both_drivers(known_on):
    items = parse_claims_text("\n".join(json.dumps(c) for c in synthetic_claims(5000, seed=11)))
    total = _judge_batch(Both(), items, known_on)
    assert total > 5000
