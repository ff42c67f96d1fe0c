"""Every `cases:` block beside the policies must hold: the examples are the policy's tests."""

import datetime as dt

import pytest

from engine.policy.cases import run_case
from engine.policy.loader import load_policies

POLICY = load_policies()
TODAY = dt.date(2026, 11, 27)


@pytest.mark.parametrize("case", POLICY.cases, ids=[f"{c.where.file}:{c.where.line}" for c in POLICY.cases])
def test_policy_case(case):
    result = run_case(case, POLICY, TODAY)
    assert result.passed, f"{case.where} {case.name}: " + "; ".join(result.failures)


def test_every_finding_rule_is_expected_to_fire_by_some_case():
    from engine.policy.cases import run_cases

    report = run_cases(POLICY, TODAY)
    never = [rule for rule, counts in report.rules.items() if not counts["expected"]]
    assert never == []


def test_every_rule_has_a_near_miss_too():
    from engine.policy.cases import run_cases

    report = run_cases(POLICY, TODAY)
    assert [rule for rule, counts in report.rules.items() if not counts["expected_not"]] == []


def test_bundled_tree_is_lint_clean():
    from engine.policy.lint import lint

    report = lint(POLICY, TODAY)
    assert {k: v for k, v in report.checks.items() if v} == {}


def test_lint_finds_a_gap_in_a_code_life(policy_copy):
    from engine.policy.lint import code_gaps

    path = policy_copy / "cpt" / "telephone-codes.yaml"
    path.write_text(path.read_text().replace("{effective: {from: 2025-01-01}, kind: telephone-em, status: deleted",
                                             "{effective: {from: 2025-03-01}, kind: telephone-em, status: deleted", 1))
    gaps = code_gaps(load_policies(policy_copy))
    assert gaps == ["cpt/telephone-codes.yaml:4: code 99441 (cpt) has no value "
                    "from 2025-01-01 to 2025-02-28"]


def test_a_location_worked_out_from_pos_10_says_so_in_the_trace(policy):
    import datetime as dt

    from engine.scrub import scrub

    from .conftest import claims

    batch = claims({"id": "POS10-1", "payer": "medicare", "service_date": "2025-10-15", "place_of_service": "10",
                    "diagnoses": ["I10"], "encounter": {"modality": "video"}, "lines": [{"code": "99213"}]})
    (result,) = scrub(batch, policy, dt.date(2025, 10, 20)).claims
    (finding,) = [f for f in result.findings if f.rule == "medicare.telehealth-home-non-behavioral"]
    assert "patient.location = home (from place of service 10)" in finding.trace
