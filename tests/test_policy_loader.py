"""Loading the policy tree: clear file:line errors, all or nothing."""

import textwrap

import pytest

from engine.policy.loader import PolicyLoadError, load_policies


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(root):
    with pytest.raises(PolicyLoadError) as info:
        load_policies(root)
    return [str(e) for e in info.value.errors]


RULE = """\
layer: commercial/cigna
rules:
  - id: commercial.cigna.example
    title: Example
    published: 2024-01-01
    effective: {from: 2024-01-01}
    when: {line.code: "99213"}
    then: {severity: warning, message: Example}
    source: cigna-r31
    confidence: medium
"""


def test_bundled_tree_loads_with_all_layers(policy):
    assert {"cpt", "medicare", "commercial", "commercial/cigna", "medicaid", "medicaid/tx"} <= set(policy.layers)
    assert policy.digest.startswith("sha256:")
    assert policy.payers["bcbs"].chain("IL") == ("cpt", "commercial", "commercial/bcbs", "commercial/bcbs-il")


def test_unknown_field_is_reported_with_file_and_line(policy_copy):
    write(policy_copy, "commercial/cigna-extra.yaml", RULE.replace("layer: commercial/cigna", "layer: commercial")
          .replace("commercial.cigna.example", "commercial.example").replace("    confidence: medium\n",
                                                                             "    confidence: medium\n    colour: blue\n"))
    errs = errors_of(policy_copy)
    assert errs == ["commercial/cigna-extra.yaml:11: rules.colour: unknown field"]


def test_bad_date_and_reversed_window(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace("published: 2024-01-01", "published: 2024-02-30")
          .replace("effective: {from: 2024-01-01}", "effective: {from: 2024-01-01, to: 2023-01-01}"))
    errs = errors_of(policy_copy)
    assert any(e.startswith("commercial/cigna/more.yaml:5: rules.published:") for e in errs)
    assert any(e.startswith("commercial/cigna/more.yaml:6:") and "before effective.from" in e for e in errs)


def test_overlapping_revisions_of_one_rule(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", """\
        layer: commercial/cigna
        rules:
          - id: commercial.cigna.twice
            title: Twice
            when: {line.code: "99213"}
            then: {severity: warning, message: Twice}
            source: cigna-r31
            confidence: medium
            revisions:
              - {published: 2024-01-01, effective: {from: 2024-01-01}}
              - {published: 2024-01-01, effective: {from: 2025-01-01}}
        """)
    assert errors_of(policy_copy) == [
        "commercial/cigna/more.yaml:11: rule commercial.cigna.twice: overlapping revisions, two published 2024-01-01"]


def test_replace_of_a_rule_no_earlier_layer_has(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace("id: commercial.cigna.example",
                                                                  "id: commercial.nothing-like-this\n    replace: true"))
    errs = errors_of(policy_copy)
    assert len(errs) == 1 and errs[0].startswith("commercial/cigna/more.yaml:3: rule commercial.nothing-like-this: replace")


def test_same_id_as_an_earlier_layer_needs_replace(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace("id: commercial.cigna.example",
                                                                  "id: cpt.duplicate-line"))
    errs = errors_of(policy_copy)
    assert errs == ["commercial/cigna/more.yaml:3: rule id 'cpt.duplicate-line' must start with "
                    "'commercial.cigna.' (its layer); to replace a rule of an earlier layer, add replace: true"]


def test_replace_true_still_needs_the_earlier_rule_in_every_chain(policy_copy):
    # commercial.pos10-home exists in the commercial layer, so cigna may replace it ...
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace("id: commercial.cigna.example",
                                                                  "id: commercial.pos10-home\n    replace: true"))
    load_policies(policy_copy)
    # ... but the medicare chain has no such rule.
    write(policy_copy, "medicare/more.yaml", RULE.replace("layer: commercial/cigna", "layer: medicare")
          .replace("id: commercial.cigna.example", "id: commercial.pos10-home\n    replace: true")
          .replace("cigna-r31", "cy2021-pfs"))
    errs = errors_of(policy_copy)
    assert errs == ["medicare/more.yaml:3: rule commercial.pos10-home: replace names a rule no earlier layer "
                    "of cpt -> medicare has"]


def test_dangling_source(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace("source: cigna-r31", "source: a-rumour"))
    assert errors_of(policy_copy) == [
        "commercial/cigna/more.yaml:3: source 'a-rumour' is not defined in any sources: section"]


def test_unknown_condition_field_points_at_its_line(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace('when: {line.code: "99213"}',
                                                                  "when:\n      line.colour: red"))
    assert errors_of(policy_copy) == ["commercial/cigna/more.yaml:8: rule commercial.cigna.example: unknown field 'line.colour'"]


def test_derived_fact_nobody_derives(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace('when: {line.code: "99213"}',
                                                                  "when: {derived: [moon-phase]}"))
    errs = errors_of(policy_copy)
    assert errs and all("no rule in" in e and "derives 'moon-phase'" in e for e in errs)


def test_yaml_syntax_error_and_layer_mismatch(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", "layer: commercial/cigna\nrules: [\n")
    write(policy_copy, "commercial/uhc/extra.yaml", "layer: medicare\nrules: []\n")
    errs = errors_of(policy_copy)
    assert any(e.startswith("commercial/cigna/more.yaml:") and "YAML syntax" in e for e in errs)
    assert "commercial/uhc/extra.yaml:1: layer 'medicare' does not match the file's place in the tree" in errs


def test_low_confidence_rule_never_denies(policy_copy, frozen_today):
    from engine.claims import parse_claims_text
    from engine.scrub import scrub
    import json

    write(policy_copy, "commercial/cigna/more.yaml", RULE.replace("severity: warning", "severity: error")
          .replace("confidence: medium", "confidence: low"))
    policy = load_policies(policy_copy)
    items = parse_claims_text(json.dumps({"id": "X", "payer": "cigna", "service_date": "2024-06-03",
                                          "lines": [{"code": "99213"}]}))
    (result,) = scrub(items, policy, frozen_today).claims
    (finding,) = [f for f in result.findings if f.rule == "commercial.cigna.example"]
    assert finding.severity == "warning" and result.status == "review"


def test_bad_case_claim_is_a_load_error(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", RULE + """\
        cases:
          - name: broken
            claim: {payer: cigna, service_date: 2024-13-01, lines: [{code: "99213"}]}
            expect: [commercial.cigna.example]
        """.replace("        ", "", 1).replace("\n        ", "\n"))
    errs = errors_of(policy_copy)
    assert any("case 'broken': claim.service_date" in e for e in errs)


def test_derive_rules_keep_to_positive_facts(policy_copy):
    write(policy_copy, "commercial/cigna/more.yaml", """\
        layer: commercial/cigna
        rules:
          - id: commercial.cigna.odd
            title: Odd
            published: 2024-01-01
            effective: {from: 2024-01-01}
            when: {not_derived: [telehealth]}
            derive: odd
            source: cigna-r31
            confidence: medium
        """)
    assert errors_of(policy_copy) == [
        "commercial/cigna/more.yaml:3: rule commercial.cigna.odd: a derive rule may not test for an absent derived fact"]



def test_broken_payers_and_taxonomy_files_are_reported_not_raised(policy_copy):
    (policy_copy / "payers.yaml").write_text("payers:\n  medicare: [\n")
    (policy_copy / "taxonomy.yaml").write_text("source: x\ntaxonomy:\n  '20': surgeon\n")
    errs = errors_of(policy_copy)
    assert any(e.startswith("payers.yaml:") and "YAML syntax" in e for e in errs)
    assert any(e.startswith("taxonomy.yaml:3: taxonomy.20:") for e in errs)


def test_code_attributes_by_segment_equal_the_direct_resolution_on_every_boundary():
    """Codes are cut into effective-date segments once; each date must get what resolving it directly gives."""
    import datetime as dt

    from engine.policy.snapshot import Resolver

    policy = load_policies()
    resolver = Resolver(policy)
    checked = 0
    for payer in policy.payers:
        for known in (dt.date(2020, 6, 1), dt.date(2025, 10, 20), dt.date(2026, 11, 27)):
            snap = resolver.get(payer, None, known)
            for code, revisions in snap._codes.items():
                days = {dt.date(2012, 12, 31), dt.date(2024, 2, 29)}
                for value in (v for rev in revisions for v in rev.values):
                    days |= {value.effective.from_, value.effective.from_ - dt.timedelta(days=1)}
                    if value.effective.to:
                        days |= {value.effective.to, value.effective.to + dt.timedelta(days=1)}
                for day in days:
                    assert snap.code_attrs(code, day) == snap._resolve_code(code, day), (payer, code, day)
                    checked += 1
            assert snap.code_attrs("ZZZZZ", dt.date(2024, 1, 1)) is None
    assert checked > 5000


@pytest.mark.parametrize("content, message", [
    (b"layer: medicare\nrules: []\nnote: caf\xe9\n", "medicare/rules.yaml:3: not UTF-8 text"),
    (b"layer: medicare\nrules: " + b"[" * 5000 + b"]" * 5000 + b"\n", "medicare/rules.yaml:2: YAML syntax"),
    (b"layer: medicare\ncases:\n" + b"".join(
        f"  - &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else 'x'}]\n".encode() for i in range(10)),
     "too many values once aliases are expanded"),
])
def test_a_hostile_policy_file_is_one_located_error_not_a_crash_or_a_hang(policy_copy, content, message):
    import time

    (policy_copy / "medicare" / "rules.yaml").write_bytes(content)
    started = time.monotonic()
    with pytest.raises(PolicyLoadError) as caught:
        load_policies(policy_copy)
    assert time.monotonic() - started < 10
    assert any(message in str(e) for e in caught.value.errors), caught.value.errors
