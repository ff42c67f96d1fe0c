"""Every `cases:` block beside the policies must hold: the examples are the policy's tests."""

import datetime as dt

import pytest

from engine.cases import run_case
from engine.policy.loader import load_policies

POLICY = load_policies()
TODAY = dt.date(2026, 11, 27)


@pytest.mark.parametrize("case", POLICY.cases, ids=[f"{c.where.file}:{c.where.line}" for c in POLICY.cases])
def test_policy_case(case):
    result = run_case(case, POLICY, TODAY)
    assert result.passed, f"{case.where} {case.name}: " + "; ".join(result.failures)


def test_every_finding_rule_is_expected_to_fire_by_some_case():
    from engine.cases import run_cases

    report = run_cases(POLICY, TODAY)
    never = [rule for rule, counts in report.rules.items() if not counts["expected"]]
    assert never == []
