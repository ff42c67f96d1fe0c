"""Claims carry patient data: none of it may reach logs or exception text."""

import json
import logging

from typer.testing import CliRunner

from engine.cli import app

SECRET_PATIENT = "MRN-77731-SECRET"
SECRET_CLAIM = "CLM-SECRET-4411"


def test_a_scrub_logs_no_claim_contents(tmp_path, caplog):
    path = tmp_path / "c.jsonl"
    good = {"id": SECRET_CLAIM, "payer": "medicare", "service_date": "2025-10-15", "place_of_service": "10",
            "patient": {"id": SECRET_PATIENT, "birth_date": "1950-02-03", "location": "home"},
            "diagnoses": ["I10"], "encounter": {"modality": "video"}, "lines": [{"code": "99213"}]}
    bad = dict(good, id=SECRET_CLAIM + "-2", service_date="not-a-date", patient={"id": SECRET_PATIENT, "x": 1})
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    caplog.set_level(logging.DEBUG)
    result = CliRunner().invoke(app, ["scrub", str(path), "--known-on", "2025-10-20", "--format", "json",
                                      "--db", f"sqlite:///{tmp_path / 's.sqlite'}"])
    assert result.exit_code == 1
    logged = "\n".join(r.getMessage() for r in caplog.records) + result.stderr
    for secret in (SECRET_PATIENT, SECRET_CLAIM, "1950-02-03"):
        assert secret not in logged
    # the report itself names the claim, which is what the user asked for
    assert SECRET_CLAIM in result.stdout and SECRET_PATIENT not in result.stdout
