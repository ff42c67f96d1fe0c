"""CMS reference data: importing releases in CMS's layouts, and judging claims with them."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from typer.testing import CliRunner

from engine.cli import app
from engine.policy.lint import stale_releases
from engine.policy.loader import load_policies
from engine.reference.layouts import LayoutError, read_rows
from engine.reference.lookup import imported_releases

from .conftest import ROOT

CMS = ROOT / "tests" / "fixtures" / "cms"
PTP_Q1 = [CMS / "ccipra-v321r0-f1.txt", CMS / "ccipra-v321r0-f2.txt"]
PTP_Q2 = [CMS / "ccipra-v322r0-f1.txt", CMS / "ccipra-v322r0-f2.txt"]
MUE = CMS / "MCR_MUE_PractitionerServices_Eff_01-01-2026.csv"


def run(*args, db: str):
    result = CliRunner().invoke(app, [str(a) for a in args] + ["--db", db])
    return result


def data_import(kind, *files, release, db, extra=()):
    result = run("data", "import", kind, *files, "--release", release, *extra, db=db)
    assert result.exit_code == 0, result.output
    return result.output


def scrub(tmp_path, claims, db, *extra):
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(claims))
    result = run("scrub", path, "--format", "json", "--no-store", *extra, db=db)
    assert result.exit_code in (0, 1), result.output
    return {c["id"]: c for c in json.loads(result.stdout)["claims"]}


def rules(claim):
    """What the payer would do: errors and warnings (info notes aside)."""
    return [(f["rule"], f["line"]) for f in claim["findings"] if f["severity"] != "info"]


def em_with(code, *modifiers, day="2026-03-02", payer="medicare", em="99213", **extra):
    return {"id": f"{em}-{code}-{'-'.join(modifiers) or 'none'}", "payer": payer, "service_date": day,
            "lines": [{"code": em, "modifiers": list(modifiers)}, {"code": code}], **extra}


def test_an_em_with_a_joint_injection_needs_25_once_the_ptp_release_is_imported(tmp_path, db_url):
    claims = [em_with("20610"), em_with("20610", "25")]
    before = scrub(tmp_path, claims, db_url)
    assert rules(before["99213-20610-none"]) == [] and before["99213-20610-none"]["status"] == "clean"
    notes = [f for f in before["99213-20610-none"]["findings"] if f["rule"] == "cpt.reference-data-unchecked"]
    assert len(notes) == 1 and notes[0]["line"] == 1 and "ncci-ptp" in notes[0]["message"]

    out = data_import("ncci-ptp", *PTP_Q1, release="2026Q1", db=db_url)
    assert "6 rows from 2 file(s)" in out
    after = scrub(tmp_path, claims, db_url)
    rejected = after["99213-20610-none"]
    assert rejected["status"] == "reject"
    (finding,) = [f for f in rejected["findings"] if f["rule"] == "medicare.ncci-ptp-em-25"]
    assert (finding["line"], finding["carc"], finding["rarc"], finding["fix"]["add_modifiers"]) == (1, "236", ["N20"], ["25"])
    assert ("medicare.ncci-ptp-em-25", 1) not in rules(after["99213-20610-25"])
    # ... and the same release judges a commercial plan by default, and Medicaid not at all (its own program)
    commercial = scrub(tmp_path, [dict(em_with("20610", payer="aetna"), id="AET"),
                                  dict(em_with("20610", payer="medicaid"), id="MCD")], db_url)
    assert ("commercial.ncci-ptp-em-25", 1) in rules(commercial["AET"])
    assert rules(commercial["MCD"]) == []


def test_a_retroactive_deletion_counts_only_as_known_after_its_release(tmp_path, db_url):
    data_import("ncci-ptp", *PTP_Q1, release="2026Q1", db=db_url)
    # 2026Q2 deletes the 20610/99214 edit from 2026-01-01: a March claim is judged by what was known.
    data_import("ncci-ptp", *PTP_Q2, release="2026Q2", db=db_url, extra=("--published", "2026-04-03"))
    claim = [em_with("20610", em="99214")]
    then = scrub(tmp_path, claim, db_url, "--known-on", "2026-03-10")
    now = scrub(tmp_path, claim, db_url, "--known-on", "2026-04-03")
    assert ("medicare.ncci-ptp-em-25", 1) in rules(then["99214-20610-none"])
    assert rules(now["99214-20610-none"]) == [] and now["99214-20610-none"]["status"] == "clean"
    # a judgement before any release was published has nothing to check against, and says so
    early = scrub(tmp_path, claim, db_url, "--known-on", "2025-12-01")
    assert any(f["rule"] == "cpt.reference-data-unchecked" and "ncci-ptp" in f["message"]
               for f in early["99214-20610-none"]["findings"])


def test_mue_by_adjudication_indicator(tmp_path, db_url):
    data_import("ncci-mue", MUE, release="2026Q1", db=db_url)
    line_edit = {"id": "L", "payer": "medicare", "service_date": "2026-02-02",
                 "lines": [{"code": "96372", "units": 4}, {"code": "96372", "units": 3, "modifiers": ["76"]}]}
    over_line = {"id": "O", "payer": "medicare", "service_date": "2026-02-02", "lines": [{"code": "96372", "units": 5}]}
    first = {"id": "V1", "payer": "medicare", "service_date": "2026-02-03", "patient": {"id": "P-1"},
             "lines": [{"code": "99213"}]}
    second = dict(first, id="V2")
    other_day = dict(first, id="V3", service_date="2026-02-04")
    found = scrub(tmp_path, [line_edit, over_line, first, second, other_day], db_url)
    assert rules(found["L"]) == []  # MAI 1: each line against the MUE, 7 units in all is fine
    assert ("medicare.mue-line", 1) in rules(found["O"])
    assert rules(found["V1"]) == []  # MAI 2: the first visit of the date is within 1
    assert ("medicare.mue-date-of-service", 1) in rules(found["V2"])  # the second claim of the date is not
    assert rules(found["V3"]) == []
    # the hand-coded fallback does not fire beside the table
    assert all(r != "cpt.units-over-mue" for r, _ in rules(found["V2"]))


def test_a_code_newly_on_the_telehealth_list_is_accepted_from_its_date(tmp_path, db_url):
    data_import("telehealth-list", CMS / "telehealth-list-2026q1.csv", release="2026Q1", db=db_url)
    data_import("telehealth-list", CMS / "telehealth-list-2026q2.csv", release="2026Q2", db=db_url)
    visit = {"payer": "medicare", "place_of_service": "02", "patient": {"location": "office"},
             "encounter": {"modality": "video"}, "lines": [{"code": "90845", "modifiers": ["95"]}]}
    found = scrub(tmp_path, [dict(visit, id="MAR", service_date="2026-03-31"),
                             dict(visit, id="APR", service_date="2026-04-01")], db_url)
    assert ("medicare.telehealth-not-on-list", 1) in rules(found["MAR"])
    assert ("medicare.telehealth-not-on-list", 1) not in rules(found["APR"])


def test_mpfs_status_and_the_medicaid_program(tmp_path, db_url):
    data_import("mpfs-indicators", CMS / "PPRRVU26_JAN.csv", release="2026Q1", db=db_url)
    data_import("ncci-ptp", CMS / "medicaid-ptp-practitioner-2026q1.txt", release="2026Q1", db=db_url,
                extra=("--program", "medicaid"))
    found = scrub(tmp_path, [{"id": "N", "payer": "medicare", "service_date": "2026-02-02", "lines": [{"code": "99411"}]},
                             {"id": "B", "payer": "medicare", "service_date": "2026-02-02", "lines": [{"code": "99091"}]},
                             dict(em_with("90471", payer="medicaid"), id="MCD"),
                             dict(em_with("90471", payer="medicare"), id="MCR")], db_url)
    assert ("medicare.mpfs-not-payable", 1) in rules(found["N"])
    assert ("medicare.mpfs-bundled", 1) in rules(found["B"])
    assert ("medicaid.ncci-ptp-em-25", 1) in rules(found["MCD"])
    assert rules(found["MCR"]) == []  # no Medicare PTP release is imported


def test_reimporting_a_release_changes_nothing_and_other_rows_under_its_name_are_refused(db_url):
    data_import("ncci-ptp", *PTP_Q1, release="2026Q1", db=db_url)
    again = data_import("ncci-ptp", *PTP_Q1, release="2026Q1", db=db_url)
    assert "nothing changed" in again
    refused = run("data", "import", "ncci-ptp", *PTP_Q2, "--release", "2026Q1", db=db_url)
    assert refused.exit_code == 2 and "already imported with other rows" in refused.output
    listed = json.loads(run("data", "list", "--format", "json", db=db_url).stdout)
    assert [(r["kind"], r["release"], r["rows"]) for r in listed] == [("ncci-ptp", "2026Q1", 6)]


def test_a_bad_row_fails_with_file_and_line_and_imports_nothing(tmp_path, db_url):
    bad = tmp_path / "ccipra-v321r0-f3.txt"
    text = (CMS / "ccipra-v321r0-f1.txt").read_text()
    bad.write_text(text + "99213\t99212\t\t20261301\t*\t1\tx\r\n")
    result = run("data", "import", "ncci-ptp", PTP_Q1[0], bad, "--release", "2026Q1", db=db_url)
    assert result.exit_code == 2
    assert "ccipra-v321r0-f3.txt:9: effective date '20261301' is not a date" in result.output
    assert json.loads(run("data", "list", "--format", "json", db=db_url).stdout) == []


def test_headers_match_by_name_and_an_unknown_column_is_named(tmp_path):
    odd = tmp_path / "mue.csv"
    odd.write_text("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator,Surprise\n"
                   "96372,4,1 Line Edit,x\n")
    with pytest.raises(LayoutError, match=r"mue.csv:1: unknown column 'Surprise'"):
        list(read_rows("ncci-mue", odd))
    wrong = tmp_path / "not-ptp.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(LayoutError, match="no header row naming the ncci-ptp columns"):
        list(read_rows("ncci-ptp", wrong))


def _workbook(rows) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_excel_workbooks_and_zips_as_cms_ships_them(tmp_path):
    # The add-on code edit workbook: a copyright row, then its header; dates are Julian (YYYYDDD).
    aoc = tmp_path / "AOC_V2026Q1-MCR.xlsx"
    aoc.write_bytes(_workbook([
        ["CPT only copyright 2025 American Medical Association. All rights reserved."],
        ["AOC_Edit_Type", "Add-On_Code", "AOC_DelDT", "Primary_Code", "Primary_Code_DelDT", "AOC_Edit_EffDT",
         "AOC_Edit_DelDT", "Special_Instruction_Notes"],
        [1, "90833", None, "99213", None, 2013001, None, None],
        [2, "99417", None, "CCCCC", None, 2021001, None, None],
        [1, "90833", None, "99201", 2021001, 2013001, None, None],
    ]))
    assert list(read_rows("ncci-addon", aoc)) == [
        ("90833", "99213", 1, "2013-01-01", None),
        ("99417", None, 2, "2021-01-01", None),
        ("90833", "99201", 1, "2013-01-01", "2021-01-01"),
    ]
    # The PTP text files as CMS zips them, with the workbook beside them (the text is read).
    archive = tmp_path / "ccipra-v321r0.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in PTP_Q1:
            z.write(path, path.name)
        z.writestr("ccipra-v321r0-f1.xlsx", b"not read")
        z.writestr("README.pdf", b"not read")
    assert len(list(read_rows("ncci-ptp", archive))) == 6


def test_show_diff_and_lint(tmp_path, db_url, frozen_today):
    data_import("ncci-ptp", *PTP_Q1, release="2026Q1", db=db_url)
    data_import("ncci-ptp", *PTP_Q2, release="2026Q2", db=db_url)
    diff = json.loads(run("data", "diff", "ncci-ptp", "2026Q1", "2026Q2", "--format", "json", db=db_url).stdout)
    assert (diff["added"], diff["removed"], diff["changed"]) == (1, 0, {"deletion": 1, "modifier": 1})
    assert {(s["column1"], s["column2"], s["changed"]) for s in diff["samples"]["changed"]} == {
        ("20610", "99214", "deletion"), ("90471", "99213", "modifier")}
    shown = json.loads(run("data", "show", "ncci-ptp", "99214", "--date", "2026-03-02", "--known-on", "2026-03-02",
                           "--format", "json", db=db_url).stdout)
    assert shown["release"] == "2026Q1" and shown["rows"][0]["deletion"] is None
    # the newest imported release ends before today's quarter (2026Q4): lint says so
    releases = imported_releases(db_url)
    stale = stale_releases(load_policies(), releases, frozen_today)
    assert stale and "ncci-ptp (medicare): the newest imported release is 2026Q2" in stale[0]
    lint = CliRunner().invoke(app, ["policy", "lint", "--db", db_url])
    assert lint.exit_code == 1 and "older than 2026Q4" in lint.output


def test_workers_read_the_release_too(tmp_path, db_url):
    data_import("ncci-ptp", *PTP_Q1, release="2026Q1", db=db_url)
    claims = [dict(em_with("20610"), id=f"C{i}") for i in range(30)]
    serial = scrub(tmp_path, claims, db_url)
    parallel = scrub(tmp_path, claims, db_url, "--workers", "2", "--chunk-size", "5")
    assert serial == parallel
    assert all(("medicare.ncci-ptp-em-25", 1) in rules(c) for c in parallel.values())
