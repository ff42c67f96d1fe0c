"""Historical denial analysis on a generated year with planted causes."""

import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
from decimal import Decimal

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from benchmarks.denials_bench import generate
from engine.claims import parse_claims_text
from engine.cli import app
from engine.denials import RemitFileError, analyze, read_remit_csv
from engine.reports.denials import render

from .conftest import ROOT, judged

TODAY = dt.date(2026, 11, 27)
runner = CliRunner()


def invoke(*args):
    with freeze_time("2026-11-27"):
        return runner.invoke(app, [str(a) for a in args])


def year(tmp_path, count=70, seed=3):
    claims, remit_csv, expected = generate(count, seed)
    (tmp_path / "claims").mkdir(exist_ok=True)
    (tmp_path / "claims" / "year.jsonl").write_text("\n".join(json.dumps(c) for c in claims))
    (tmp_path / "remits").mkdir(exist_ok=True)
    (tmp_path / "remits" / "year.csv").write_text(remit_csv)
    return claims, remit_csv, expected


def test_every_planted_denial_is_classified_right_and_totals_add_up(policy, tmp_path):
    claims, remit_csv, expected = year(tmp_path, count=140, seed=9)
    report = analyze(parse_claims_text(json.dumps(claims)), read_remit_csv(remit_csv), policy, TODAY)
    got = {(ln.claim_id, ln.line): ln.category for ln in report.lines}
    want = {(cid, line): cat for cid, lines in expected.items() for line, cat in lines.items()}
    assert got == want
    totals = report.totals()
    assert sum(totals["by_category"].values()) == totals["lines"] == len(want)
    charges = sum(line["charge"] for c in claims for line in c["lines"])
    assert round(sum(totals["charges_by_category"].values()), 2) == round(charges, 2)
    lapse = next(ln for ln in report.lines if ln.category == "overturned")
    assert [f.rule for f in lapse.rules_then] == ["medicare.telehealth-home-non-behavioral"] and lapse.rules_now == []
    predicted = next(ln for ln in report.lines if ln.code == "99442")
    assert predicted.carc_match and predicted.carcs == ["CO-181"]


def test_rule_statistics_and_worklist(policy, tmp_path):
    claims, remit_csv, _ = year(tmp_path)
    report = analyze(parse_claims_text(json.dumps(claims)), read_remit_csv(remit_csv), policy, TODAY)
    stats = {(s["rule"], s["payer"]): s for s in report.rule_stats()}
    deleted = stats[("medicare.telephone-em-deleted", "medicare")]
    assert (deleted["precision"], deleted["recall"]) == (1.0, 1.0)
    aetna = stats[("commercial.telehealth-indicator", "aetna")]
    assert aetna["precision"] == 0.0  # every one was paid: a false-positive candidate
    lapse = stats[("medicare.telehealth-home-non-behavioral", "medicare")]
    assert lapse["agreed"] == lapse["fired"] == 20
    worklist = report.worklist()
    assert [w["charge"] for w in worklist] == sorted((w["charge"] for w in worklist), reverse=True)
    assert {w["action"] for w in worklist} == {"correct and resubmit", "reprocess or appeal"}
    assert len(worklist) == 40
    assert report.top_unexplained()[0]["carc"] == "CO-197"
    assert set(report.trends()) == {"month", "payer", "family", "carc"}


def test_the_worklist_csv_writes_a_formula_like_claim_id_as_text(policy, tmp_path):
    from engine.denials import worklist_csv

    claims, remit_csv, _ = year(tmp_path, count=40, seed=5)
    for claim in claims:
        claim["id"] = "=" + claim["id"]
    head, *rows = remit_csv.splitlines()
    remit_csv = "\n".join([head] + ["=" + r for r in rows]) + "\n"
    report = analyze(parse_claims_text(json.dumps(claims)), read_remit_csv(remit_csv), policy, TODAY)
    written = list(csv.DictReader(io.StringIO(worklist_csv(report))))
    assert written and all(r["claim_id"].startswith("'=") for r in written)
    assert all(not r["charge"].startswith("'") for r in written)


def test_denials_command_json_csv_html_and_history(tmp_path, db_url):
    year(tmp_path)
    args = ("denials", tmp_path / "claims", tmp_path / "remits", "--db", db_url)
    result = invoke(*args, "--format", "json", "--report", tmp_path / "r.html", "--worklist", tmp_path / "w.csv")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["totals"]["by_category"] == {"predicted": 20, "overturned": 20, "unexplained": 10,
                                             "false_positive": 10, "agreed_paid": 20}
    assert set(data["lines"][0]) >= {"claim_id", "line", "code", "carcs", "category"}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "w.csv").read_text())))
    assert len(rows) == 40 and rows[0]["source"]
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>") and "<script" not in page and page.count("<svg") == 5
    # the same files again count once; a new month adds to the history
    again = json.loads(invoke(*args, "--format", "json").stdout)
    assert again["totals"] == data["totals"]
    more_claims, more_csv, _ = generate(7, 99)
    more = tmp_path / "more"
    more.mkdir()
    (more / "c.json").write_text(json.dumps([dict(c, id="N" + c["id"]) for c in more_claims]))
    (more / "r.csv").write_text(more_csv.replace("Y-", "NY-"))
    grown = json.loads(invoke("denials", more / "c.json", more / "r.csv", "--db", db_url, "--format", "json").stdout)
    assert grown["totals"]["lines"] == data["totals"]["lines"] + 8
    table = invoke(*args)
    assert "remitted lines" in table.stdout and "reprocess or appeal" in table.stdout


def test_bad_remit_csv_and_missing_files_are_usage_errors(tmp_path):
    year(tmp_path)
    (tmp_path / "bad.csv").write_text("claim_id,line\nX,1\n")
    with pytest.raises(RemitFileError):
        read_remit_csv((tmp_path / "bad.csv").read_text())
    assert invoke("denials", tmp_path / "claims", tmp_path / "bad.csv", "--no-store").exit_code == 2
    assert invoke("denials", tmp_path / "nope", tmp_path / "remits", "--no-store").exit_code == 2


# The two claims tests/fixtures/x12/managed-care.835 remits.
CLAIMS_OF_MANAGED_CARE_835 = [
    {"id": "5554555444", "payer": "commercial", "service_date": "2024-03-01", "lines": [{"code": "99211", "charge": 800.0}]},
    {"id": "8765432112", "payer": "commercial", "service_date": "2024-03-10", "lines": [{"code": "93555", "charge": 1200.0}]},
]


def test_835_remits_join_to_claims(tmp_path):
    claims = CLAIMS_OF_MANAGED_CARE_835
    (tmp_path / "c.json").write_text(json.dumps(claims))
    data = json.loads(invoke("denials", tmp_path / "c.json", ROOT / "tests" / "fixtures" / "x12" / "managed-care.835",
                             "--no-store", "--format", "json").stdout)
    assert [(ln["claim_id"], ln["category"], ln["adjudicated"]) for ln in data["lines"]] == [
        ("5554555444", "agreed_paid", "2002-03-14"), ("8765432112", "agreed_paid", "2002-03-14")]


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true",
                    reason="Chromium is not installed here (make test installs it where it can)")
def test_the_html_report_renders_its_charts_and_totals_in_a_browser(policy, tmp_path):
    assert CHROMIUM, "make test installs Chromium for CI"
    claims, remit_csv, _ = year(tmp_path)
    report = analyze(parse_claims_text(json.dumps(claims)), read_remit_csv(remit_csv), policy, TODAY)
    page = tmp_path / "report.html"
    page.write_text(render(report))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert dom.count("<svg") == 5 and 'id="total-overturned">20<' in dom and "$4,000.00" in dom
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_remits_and_worklist_live_on_disk_and_csv_rows_join_in_any_order(policy, tmp_path):
    """CSV rows of one claim far apart in the file still make one remitted claim; the worklist reads back sorted."""
    from engine.denials import read_remit_files

    claims, remit_csv, expected = generate(14, 3)
    header, *rows = remit_csv.strip().splitlines()
    shuffled = tmp_path / "remits.csv"
    shuffled.write_text("\n".join([header] + rows[::2] + rows[1::2]) + "\n")
    index = read_remit_files([shuffled])
    report = analyze(parse_claims_text(json.dumps(claims)), index, policy, TODAY)
    in_memory = analyze(parse_claims_text(json.dumps(claims)), read_remit_csv(remit_csv), policy, TODAY)
    assert report.totals() == in_memory.totals()
    got = {(ln.claim_id, ln.line): ln.category for ln in report.lines}
    assert got == {(cid, line): cat for cid, lines in expected.items() for line, cat in lines.items()}
    charges = [row["charge"] for row in report.worklist()]
    assert charges == sorted(charges, reverse=True) and len(charges) == len(in_memory.worklist())
    assert report.worklist(limit=2) == report.worklist()[:2]
    extra = tmp_path / "extra.csv"
    extra.write_text(header + "\nNOBODY,1,99213,10.00,0.00,CO-16:10.00,,2025-05-01\n")
    orphan = analyze(parse_claims_text(json.dumps(claims[:3])), read_remit_files([shuffled, extra]), policy, TODAY)
    assert "NOBODY" in orphan.unmatched_remits and orphan.totals()["unremitted_claims"] == 0


def test_denials_sorts_any_number_of_files_by_content(tmp_path):
    """Two 835 files, given first, and a claims file named .txt: each is read as what it is."""
    claims = CLAIMS_OF_MANAGED_CARE_835
    (tmp_path / "claims.txt").write_text(json.dumps(claims))
    x12 = ROOT / "tests" / "fixtures" / "x12"
    data = json.loads(invoke("denials", x12 / "managed-care.835", x12 / "secondary-payment.835", tmp_path / "claims.txt",
                             "--no-store", "--format", "json").stdout)
    assert {ln["claim_id"] for ln in data["lines"]} == {"5554555444", "8765432112"}
    only_remits = invoke("denials", x12 / "managed-care.835", "--no-store")
    assert only_remits.exit_code == 2 and "no claim files" in only_remits.output


def test_denials_take_an_encounters_file_for_what_claims_lack(tmp_path):
    """An audio-only visit denied CO-4: only the encounter's modality explains it (Medicare wants 93)."""
    claim = {"id": "AO-1", "payer": "medicare", "service_date": "2023-05-01", "place_of_service": "10",
             "diagnoses": ["F33.1"], "lines": [{"code": "99213", "charge": 100.0}]}
    (tmp_path / "claims.json").write_text(json.dumps([claim]))
    (tmp_path / "remits.csv").write_text("claim_id,line,code,charge,paid,adjustments,remarks,adjudication_date\n"
                                         "AO-1,1,99213,100,0,CO-4:100,N822,2023-06-01\n")
    (tmp_path / "enc.json").write_text(json.dumps({"AO-1": {"encounter": {"modality": "audio-only"}}}))
    base = ("denials", tmp_path / "claims.json", tmp_path / "remits.csv", "--no-store", "--format", "json")
    without = json.loads(invoke(*base).stdout)["lines"][0]
    with_side = json.loads(invoke(*base, "--encounters", tmp_path / "enc.json").stdout)["lines"][0]
    assert without["category"] == "unexplained" and with_side["category"] == "predicted"
    assert invoke(*base, "--encounters", tmp_path / "missing.json").exit_code == 2


def test_money_is_exact_to_the_cent_and_written_as_money(tmp_path):
    # 0.10 + 0.20 is 0.30000000000000004 in binary floats; a billing team reconciles to the cent
    claims = [{"id": "M-1", "payer": "medicare", "state": "OH", "service_date": "2025-03-03", "place_of_service": "11",
               "patient": {"id": "P-1"}, "diagnoses": ["F32.9"],
               "lines": [{"code": "99442", "charge": 0.1}, {"code": "99213", "charge": "0.20"}]}]
    (tmp_path / "c.json").write_text(json.dumps(claims))
    (tmp_path / "r.csv").write_text("claim_id,line,code,charge,paid,adjustments,remarks,adjudication_date\n"
                                    "M-1,1,99442,0.10,0,CO-181:0.10,,2025-04-01\n"
                                    "M-1,2,99213,0.20,0,CO-16:0.20,,2025-04-01\n")
    result = invoke("denials", tmp_path / "c.json", tmp_path / "r.csv", "--no-store", "--format", "json",
                    "--worklist", tmp_path / "w.csv", "--report", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    charges = data["totals"]["charges_by_category"]
    assert all(isinstance(v, str) and v.count(".") == 1 and len(v.split(".")[1]) == 2 for v in charges.values())
    assert sum(map(Decimal, charges.values())) == Decimal("0.30")
    assert [(ln["line"], ln["charge"]) for ln in data["lines"]] == [(1, "0.10"), (2, "0.20")]
    rows = list(csv.DictReader(io.StringIO((tmp_path / "w.csv").read_text())))
    assert rows[0]["claim_id"] == "M-1" and rows[0]["charge"] == "0.10"
    assert "$0.10" in (tmp_path / "r.html").read_text()
    table = invoke("denials", tmp_path / "c.json", tmp_path / "r.csv", "--no-store")
    assert "$0.10  M-1 line 1 99442" in table.stdout


def test_a_bad_amount_in_a_remit_csv_names_the_row(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps([{"id": "M-1", "payer": "medicare", "service_date": "2025-03-03",
                                                  "lines": [{"code": "99213"}]}]))
    (tmp_path / "r.csv").write_text("claim_id,line,code,charge,paid,adjustments,remarks,adjudication_date\n"
                                    "M-1,1,99213,1O.00,0,,,2025-04-01\n")
    result = invoke("denials", tmp_path / "c.json", tmp_path / "r.csv", "--no-store")
    assert result.exit_code == 2 and "r.csv:2: line, charge, paid or adjudication_date is not valid" in result.output


def test_the_readme_x12_denial_example_runs_from_837_and_835_to_the_report(tmp_path, monkeypatch):
    import shlex

    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if ln.startswith("$ payerpolicy denials examples/x12-denials"))
    args = shlex.split(line)[2:]
    shown = readme.split(line + "\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    for path in ("examples/x12-denials/claims", "examples/x12-denials/remits", "examples/x12-denials/encounters.json"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).symlink_to(ROOT / path)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.stdout == shown  # the README shows what the command prints
    rows = list(csv.DictReader(io.StringIO((tmp_path / "worklist.csv").read_text())))
    assert [(r["claim_id"], r["line"], r["charge"], r["rule"]) for r in rows] == [
        ("UHC-1001", "1", "95.00", "cpt.code-not-effective"), ("UHC-1002", "2", "60.00", "cpt.90863-by-em-prescriber")]
    page = (tmp_path / "denials.html").read_text()
    assert "$155.00" in page and page.count("<svg") == 5


def test_denials_say_what_earlier_runs_kept_and_fresh_leaves_it_out(tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    year(tmp_path)
    first = invoke("denials", tmp_path / "claims", tmp_path / "remits", "--db", db)
    assert first.exit_code == 0 and first.stdout.splitlines()[0].endswith("unexplained")  # nothing earlier to say
    example = [ROOT / "examples/x12-denials/claims", ROOT / "examples/x12-denials/remits", "--encounters",
               ROOT / "examples/x12-denials/encounters.json", "--db", db]
    mixed = invoke("denials", *example)
    assert mixed.stdout.splitlines()[0] == ("Includes 70 claims kept in the store by earlier runs (--fresh or "
                                            "--no-store analyses only the files given).")
    data = json.loads(invoke("denials", *example, "--format", "json").stdout)
    assert data["claims_from_earlier_runs"] == 70
    fresh = json.loads(invoke("denials", *example, "--fresh", "--format", "json").stdout)
    assert fresh["claims_from_earlier_runs"] == 0 and fresh["totals"]["lines"] == 6
