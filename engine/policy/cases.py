"""Run the ``cases:`` beside the rules, like ``opa test``: pass/fail and per-rule coverage."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ..claims import parse_claims_text
from .model import Case, PolicySet
from ..scrub import scrub


@dataclass
class CaseResult:
    case: Case
    failures: list[str] = field(default_factory=list)
    fired: set[str] = field(default_factory=set)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class CaseReport:
    results: list[CaseResult]
    rules: dict[str, dict[str, int]]  # rule id -> {"fired": n cases, "expected": n, "expected_not": n}

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def uncovered(self) -> list[str]:
        return sorted(r for r, c in self.rules.items() if not c["fired"] or not c["expected_not"])


def _matches(expected: dict, finding) -> bool:
    return (finding.rule == expected["rule"]
            and expected.get("line", finding.line) == finding.line
            and expected.get("severity", finding.severity) == finding.severity
            and (("missing" not in expected) or sorted(expected["missing"]) == sorted(finding.missing or [])))


def run_case(case: Case, policy: PolicySet, default_known_on: dt.date) -> CaseResult:
    import json

    known_on = case.known_on or default_known_on
    batch = [dict(h) for h in case.history] + [dict(case.claim)]
    items = parse_claims_text(json.dumps(batch))
    resolver = None
    if case.data:
        from .snapshot import Resolver
        from ..reference.lookup import in_memory

        resolver = Resolver(policy, in_memory(case.data))
    outcome = scrub(items, policy, known_on, resolver=resolver).claims[-1]
    result = CaseResult(case)
    if outcome.status == "invalid":
        result.failures.append("the claim is invalid: " + "; ".join(f"{e.field}: {e.reason}" for e in outcome.errors))
        return result
    result.fired = {f.rule for f in outcome.findings if not f.missing}
    for expected in case.expect:
        if not any(_matches(expected, f) for f in outcome.findings):
            got = ", ".join(f"{f.rule}@{f.line}/{f.severity}" for f in outcome.findings) or "no findings"
            result.failures.append(f"expected {expected} but got {got}")
    for rule in case.expect_not:
        if rule in {f.rule for f in outcome.findings}:
            result.failures.append(f"{rule} fired but the case says it must not")
    if case.status and outcome.status != case.status:
        result.failures.append(f"status {outcome.status}, expected {case.status}")
    return result


def run_cases(policy: PolicySet, known_on: dt.date, rule_filter: str | None = None) -> CaseReport:
    results = [run_case(c, policy, known_on) for c in policy.cases]
    if rule_filter:
        results = [r for r in results if any(rule_filter in e["rule"] for e in r.case.expect)
                   or any(rule_filter in x for x in r.case.expect_not)]
    rules: dict[str, dict[str, int]] = {
        rid: {"fired": 0, "expected": 0, "expected_not": 0} for rid in sorted(policy.rule_ids())
        if not _is_derive_only(policy, rid)
    }
    for r in results:
        for rid in r.fired:
            if rid in rules:
                rules[rid]["fired"] += 1
        for e in r.case.expect:
            if e["rule"] in rules:
                rules[e["rule"]]["expected"] += 1
        for rid in r.case.expect_not:
            if rid in rules:
                rules[rid]["expected_not"] += 1
    return CaseReport(results, rules)


def _is_derive_only(policy: PolicySet, rule_id: str) -> bool:
    return all(r.derive for layer in policy.layers.values() for r in layer.rules if r.rule_id == rule_id)
