"""The Python API beyond scrub and suggest: what-if and denial analysis as functions."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import engine

from .conftest import ROOT
from .test_denials import CLAIMS_OF_MANAGED_CARE_835

KNOWN = dt.date(2026, 11, 27)
PHONE_2025 = {"id": "W-1", "payer": "medicare", "service_date": "2025-02-03", "place_of_service": "10",
              "encounter": {"modality": "audio-only"}, "lines": [{"code": "99442", "charge": 90.0}]}


def test_whatif_claims_varies_a_field_or_the_knowledge_date(policy):
    (comparison,) = engine.whatif_claims([PHONE_2025], KNOWN, sets=["service_date=2024-06-03"], policy=policy)
    (change,) = comparison.changes
    assert (change.status_a, change.status_b) == ("reject", "clean")
    assert "medicare.telephone-em-deleted" in {f.rule for f in change.removed}
    assert comparison.as_dict()["at_risk"] == {"a": "90.00", "b": "0.00"}
    (dated,) = engine.whatif_claims([PHONE_2025], dt.date(2024, 10, 1), compare_known_on=KNOWN, policy=policy)
    # As known before CMS published Medicare's 2025 instruction, the line fails on CPT's deletion alone.
    assert {f.rule for f in dated.changes[0].added} == {"medicare.telephone-em-deleted"}
    assert "cpt.code-not-effective" in {f.rule for f in dated.changes[0].removed}
    with pytest.raises(ValueError, match="say what to vary"):
        engine.whatif_claims([PHONE_2025], KNOWN, policy=policy)


def test_analyse_denials_sorts_files_by_content_and_says_what_it_could_not_read(policy, tmp_path):
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(CLAIMS_OF_MANAGED_CARE_835 + [{"id": "BAD", "payer": "medicare", "lines": []}]))
    report = engine.analyse_denials([ROOT / "tests" / "fixtures" / "x12" / "managed-care.835", claims], KNOWN,
                                    policy=policy)
    assert [(ln.claim_id, ln.category) for ln in report.lines] == [
        ("5554555444", "agreed_paid"), ("8765432112", "agreed_paid")]
    (bad,) = report.not_analysed
    assert bad["id"] == "BAD" and {e["field"] for e in bad["errors"]} >= {"service_date"}
    with pytest.raises(ValueError, match="no remittance files"):
        engine.analyse_denials([claims], KNOWN, policy=policy)
