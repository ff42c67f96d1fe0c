"""Claim input: every accepted shape, and bad claims reported by field while the batch goes on."""

import json

from engine.claims import Claim, InvalidClaim, parse_claims_text

ONE = {"id": "C-1", "payer": "Medicare", "service_date": "2024-02-01", "lines": [{"code": "99214", "modifiers": ["95"]}]}
TWO = {"id": "C-2", "payer": "aetna", "service_date": "2024-02-02", "lines": [{"code": "99213"}]}


def test_single_object_list_wrapper_and_json_lines_all_parse():
    shapes = [json.dumps(ONE), json.dumps([ONE, TWO]), json.dumps({"claims": [ONE, TWO]}),
              json.dumps(ONE) + "\n\n" + json.dumps(TWO) + "\n"]
    counts = [len(parse_claims_text(text)) for text in shapes]
    assert counts == [1, 2, 2, 2]
    for text in shapes:
        assert all(isinstance(c, Claim) for c in parse_claims_text(text))


def test_claim_fields_are_normalised():
    (c,) = parse_claims_text(json.dumps(dict(ONE, state="oh", diagnoses=["f33.1"],
                                             lines=[{"code": "g2212", "modifiers": ["gt"]}])))
    assert c.payer == "medicare" and c.state == "OH" and c.diagnoses == ["F331"]
    assert c.lines[0].code == "G2212" and c.lines[0].modifiers == ["GT"]
    assert c.line_date(c.lines[0]).isoformat() == "2024-02-01"


def test_bad_claims_name_the_field_and_the_batch_goes_on():
    bad = {"id": "C-3", "payer": "medicare", "service_date": "2024-02-30",
           "patient": {"birth_date": "not a date", "shoe_size": 9},
           "lines": [{"code": "99213"}, {"code": "9921", "units": 0}]}
    results = parse_claims_text(json.dumps([ONE, bad, TWO]))
    assert [type(r).__name__ for r in results] == ["Claim", "InvalidClaim", "Claim"]
    invalid = results[1]
    assert invalid.id == "C-3" and invalid.position == 2
    fields = {e.field for e in invalid.errors}
    assert fields == {"service_date", "patient.birth_date", "patient.shoe_size", "lines[2].code", "lines[2].units"}
    assert any(e.reason == "unknown field" for e in invalid.errors)


def test_missing_required_fields_and_non_objects():
    results = parse_claims_text(json.dumps([{"id": "C-4"}, 7]))
    assert {e.field for e in results[0].errors} == {"payer", "service_date", "lines"}
    assert (results[1].errors[0].field, results[1].errors[0].reason) == ("claims[1]", "not an object (a number)")


def test_a_broken_json_line_is_reported_not_skipped():
    text = json.dumps(ONE) + "\n{not json\n" + json.dumps(TWO)
    results = parse_claims_text(text)
    assert [type(r).__name__ for r in results] == ["Claim", "InvalidClaim", "Claim"]
    assert "line 2" in results[1].errors[0].reason


def test_error_messages_never_quote_claim_values():
    secret = "PATIENT-SSN-123-45-6789"
    bad = {"id": "C-5", "payer": "medicare", "service_date": secret,
           "patient": {"id": secret, "birth_date": secret}, "lines": [{"code": secret}]}
    (invalid,) = parse_claims_text(json.dumps(bad))
    assert isinstance(invalid, InvalidClaim)
    assert all(secret not in e.reason for e in invalid.errors)


def test_json_nested_ten_thousand_deep_is_an_invalid_claim_and_the_batch_goes_on(tmp_path):
    from engine.pipeline import read_claim_files

    deep = "[" * 10_000 + "]" * 10_000
    path = tmp_path / "deep.json"
    path.write_text(deep)
    (item,) = read_claim_files([path])
    assert item.errors[0].reason == "the JSON is nested too deeply to read"
    lines = tmp_path / "deep.jsonl"
    lines.write_text(json.dumps({"id": "OK-1", "payer": "medicare", "service_date": "2024-01-02",
                                 "lines": [{"code": "99213"}]}) + "\n" + "{\"a\":" * 5000 + "1" + "}" * 5000 + "\n")
    first, second = read_claim_files([lines])
    assert first.id == "OK-1" and second.errors and "not valid JSON" in second.errors[0].reason


def test_hostile_values_are_invalid_with_their_field_named():
    base = {"id": "H-1", "payer": "medicare", "service_date": "2024-03-04", "lines": [{"code": "99213"}]}
    cases = {
        "lines[1].charge": dict(base, lines=[{"code": "99213", "charge": float("inf")}]),
        "diagnoses[0]": dict(base, diagnoses=["F" + "3" * 10_000_000]),
        "prior_authorization": dict(base, prior_authorization="A" * 51),
        "rendering_provider.specialty": dict(base, rendering_provider={"specialty": "x" * 101}),
        "adjudication.carc": dict(base, adjudication={"status": "denied", "carc": ["45"] * 21}),
    }
    for field, raw in cases.items():
        (result,) = parse_claims_text(json.dumps([raw]))
        assert isinstance(result, InvalidClaim), field
        assert [e.field for e in result.errors] == [field]
        assert "3333" not in result.errors[0].reason and "AAAA" not in result.errors[0].reason


def test_a_byte_order_mark_and_a_null_claim():
    text = "\ufeff" + json.dumps([None, {"id": "B-1", "payer": "medicare", "service_date": "2024-03-04",
                                        "lines": [{"code": "99213"}]}])
    nothing, claim = parse_claims_text(text)
    assert (nothing.errors[0].field, nothing.errors[0].reason) == ("claims[0]", "not an object (null)")
    assert isinstance(claim, Claim) and claim.id == "B-1"


def test_amounts_out_of_any_billing_range_are_reported_not_crashed_on(policy):
    """A charge like 1E+999999 would overflow Decimal's precision when summed and rounded: it
    is a bad claim field, reported with its field, and the batch goes on."""
    import datetime as dt

    from engine.pipeline import scrub_items, validate_items

    raws = [{"id": f"M-{n}", "payer": "medicare", "service_date": "2025-01-02", "patient": {"id": "p"},
             "lines": [{"code": "99213", "charge": value}]}
            for n, value in enumerate(["1E+999999", 1e30, "999999999999.99", "0.10"])]
    items = validate_items(raws, policy=policy)
    assert [type(i).__name__ for i in items] == ["InvalidClaim", "InvalidClaim", "Claim", "Claim"]
    assert items[0].errors[0].field == "lines[1].charge"
    result = scrub_items(items, policy, dt.date(2026, 1, 1), None).result
    assert result.summary["claims"] == 4 and result.summary["invalid"] == 2
