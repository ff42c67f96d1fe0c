"""The durable_rules edges DESIGN.md lists, each shown handled."""

import datetime as dt
import json

import pytest

from engine import chaining
from engine.chaining import EngineError, compiled_for
from engine.claims import parse_claims_text
from engine.judge import judge_claim
from engine.policy.snapshot import resolve
from .conftest import judged

KNOWN = dt.date(2026, 11, 27)


def one(raw):
    (c,) = parse_claims_text(json.dumps(raw))
    return c


def rules_of(findings):
    return sorted((f.rule, f.line) for f in judged(findings))


def test_a_line_two_rules_hit_gets_both_findings(policy):
    # 90863 billed with an E/M by an MD: no primary AND wrong provider, on the same line.
    c = one({"id": "A", "payer": "commercial", "service_date": "2024-03-05", "rendering_provider": {"type": "MD"},
             "lines": [{"code": "99214"}, {"code": "90863"}]})
    snap = resolve(policy, "commercial", None, KNOWN)
    assert rules_of(judge_claim(c, snap, None)) == [("cpt.90863-by-em-prescriber", 2), ("cpt.addon-without-primary", 2)]


def test_a_clean_line_no_rule_matches_is_not_an_error(policy):
    c = one({"id": "B", "payer": "commercial", "service_date": "2024-03-05", "lines": [{"code": "99213"}]})
    assert judged(judge_claim(c, resolve(policy, "commercial", None, KNOWN), None)) == []


def test_the_same_claim_judged_again_raises_no_observed_exception_and_leaves_no_facts(policy):
    snap = resolve(policy, "medicare", None, KNOWN)
    c = one({"id": "C", "payer": "medicare", "service_date": "2025-02-03", "place_of_service": "11",
             "encounter": {"modality": "audio-only"}, "lines": [{"code": "99442"}, {"code": "99213"}]})
    first = rules_of(judge_claim(c, snap, None))
    for _ in range(50):
        assert rules_of(judge_claim(c, snap, None)) == first
    assert compiled_for(snap).stored_facts() == 0


def test_every_finding_arrives_run_after_run(policy):
    snap = resolve(policy, "medicare", None, KNOWN)
    c = one({"id": "D", "payer": "medicare", "service_date": "2019-05-01", "place_of_service": "11",
             "patient": {"location": "home"}, "encounter": {"modality": "video"},
             "lines": [{"code": "99213", "modifiers": ["GT"]}, {"code": "99442"}, {"code": "90863"}]})
    expected = rules_of(judge_claim(c, snap, None))
    assert ("medicare.gt-on-professional", 1) in expected and ("medicare.noncovered-code", 2) in expected
    assert all(rules_of(judge_claim(c, snap, None)) == expected for _ in range(200))


def test_derived_facts_chain_and_absence_is_sound(policy):
    # audio-only-telehealth is derived from telehealth (itself derived); UHC's 93 rule needs it.
    snap = resolve(policy, "uhc", None, KNOWN)
    c = one({"id": "E", "payer": "uhc", "service_date": "2023-04-03", "place_of_service": "10",
             "encounter": {"modality": "audio-only"}, "lines": [{"code": "99213"}]})
    (finding,) = judged(judge_claim(c, snap, None))
    assert finding.rule == "commercial.uhc.audio-only-93"
    assert "derived audio-only-telehealth (rule cpt.audio-only-telehealth)" in finding.trace


def test_lacks_on_an_empty_modifier_list_matches(policy):
    # allItems fails on [] in durable_rules; our flags + count make "lacks" hold for no modifiers.
    snap = resolve(policy, "aetna", None, KNOWN)
    c = one({"id": "F", "payer": "aetna", "service_date": "2024-05-06", "place_of_service": "02",
             "encounter": {"modality": "video"}, "lines": [{"code": "99214", "modifiers": []}]})
    assert rules_of(judge_claim(c, snap, None)) == [("commercial.telehealth-indicator", 1)]


def test_field_to_field_comparison_uses_the_code_table_value(policy):
    snap = resolve(policy, "commercial", None, KNOWN)
    for minutes, fires in [(29, True), (30, False), (31, False)]:
        c = one({"id": "G", "payer": "commercial", "service_date": "2024-05-02",
                 "encounter": {"level_basis": "time", "total_minutes": minutes}, "lines": [{"code": "99214"}]})
        found = [f.rule for f in judge_claim(c, snap, None)]
        assert ("cpt.em-time-below-threshold" in found) is fires, minutes


def test_one_compiled_ruleset_per_policy_selection(policy):
    a = compiled_for(resolve(policy, "medicare", None, dt.date(2026, 3, 1)))
    b = compiled_for(resolve(policy, "medicare", "TX", dt.date(2026, 11, 27)))
    c = compiled_for(resolve(policy, "medicare", None, dt.date(2025, 10, 20)))
    assert a is b  # same revisions known on both dates, same chain
    assert a is not c  # the lapse revision differs


def test_an_exception_inside_an_action_is_not_swallowed(policy, monkeypatch):
    snap = resolve(policy, "commercial", None, dt.date(2026, 11, 26))
    compiled = chaining.CompiledRules(snap)

    class Broken(list):
        def append(self, item):
            raise RuntimeError("boom")

    original = chaining._Session

    def broken_session(**kwargs):
        session = original(**kwargs)
        session.hits = Broken()
        return session

    monkeypatch.setattr(chaining, "_Session", broken_session)
    c = one({"id": "H", "payer": "commercial", "service_date": "2025-03-03", "lines": [{"code": "99442"}]})
    from engine.facts import claim_facts, line_facts

    facts = [line_facts(c, 1, c.lines[0], claim_facts(c, snap), snap, None)]
    with pytest.raises(EngineError) as info:
        compiled.run(facts)
    assert "cpt.code-not-effective" in str(info.value) and "99442" not in str(info.value)
    assert compiled.stored_facts() == 0


def test_facts_do_not_accumulate_over_a_long_batch(policy):
    snap = resolve(policy, "medicare", None, KNOWN)
    compiled = compiled_for(snap)
    for n in range(1500):
        c = one({"id": f"L{n}", "payer": "medicare", "service_date": "2024-03-04", "place_of_service": "11",
                 "encounter": {"modality": "video"}, "lines": [{"code": "99213"}, {"code": "90833"}]})
        judge_claim(c, snap, None)
    assert compiled.stored_facts() == 0
