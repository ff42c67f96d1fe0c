"""The command line as a billing team uses it: formats, exit codes, dates, policy tools."""

import json
from pathlib import Path

import pytest

from freezegun import freeze_time
from typer.testing import CliRunner

from engine.cli import app

from .conftest import ROOT, judged

runner = CliRunner()
EXAMPLES = str(ROOT / "examples" / "claims.json")

LAPSE = {"id": "LAPSE-1", "payer": "medicare", "state": "OH", "service_date": "2025-10-15", "place_of_service": "10",
         "patient": {"id": "P-9", "location": "home"}, "diagnoses": ["I10"],
         "encounter": {"modality": "video"}, "lines": [{"code": "99213"}]}


def invoke(*args, **kw):
    with freeze_time("2026-11-27"):
        return runner.invoke(app, [str(a) for a in args], **kw)


def scrub_json(path, *extra, db):
    result = invoke("scrub", path, "--format", "json", "--db", db, *extra)
    return result.exit_code, json.loads(result.stdout)


def test_scrub_json_is_the_design_shape(db_url):
    code, data = scrub_json(EXAMPLES, db=db_url)
    assert code == 1
    assert data["known_on"] == "2026-11-27" and data["policy_version"].startswith("sha256:")
    assert data["summary"] == {"claims": 6, "clean": 2, "review": 0, "reject": 3, "invalid": 1, "history": 0}
    ex1 = data["claims"][0]
    assert ex1["id"] == "EX-1" and ex1["status"] == "reject"
    (finding,) = judged(ex1["findings"])
    assert set(finding) == {"rule", "revision", "layer", "severity", "line", "code", "carc", "group", "rarc",
                            "message", "fix", "source", "confidence", "effective", "trace"}
    assert (finding["rule"], finding["carc"], finding["group"], finding["rarc"]) == (
        "medicare.telephone-em-deleted", "181", "CO", ["N56"])
    assert finding["fix"]["to"] == "99213" and finding["fix"]["add_modifiers"] == ["93"]
    assert finding["effective"] == {"from": "2025-01-01", "to": None}
    invalid = data["claims"][5]
    assert invalid["status"] == "invalid"
    assert {e["field"] for e in invalid["errors"]} == {"service_date", "lines[1].unknown_field"}


def test_the_lapse_claim_rejects_as_known_in_the_lapse_and_not_today(tmp_path, db_url):
    path = tmp_path / "lapse.jsonl"
    path.write_text(json.dumps(LAPSE) + "\n")
    code, then = scrub_json(path, "--known-on", "2025-10-20", db=db_url)
    assert code == 1 and then["claims"][0]["status"] == "reject"
    assert [f["rule"] for f in judged(then["claims"][0]["findings"])] == ["medicare.telehealth-home-non-behavioral"]
    assert then["claims"][0]["findings"][0]["revision"] == "2025-03-15"
    code, now = scrub_json(path, db=db_url)
    assert code == 0 and now["claims"][0]["status"] == "clean" and now["known_on"] == "2026-11-27"


def test_table_output_and_exit_codes(tmp_path, db_url):
    result = invoke("scrub", EXAMPLES, "--db", db_url)
    assert result.exit_code == 1
    assert "EX-1  REJECT" in result.stdout and "medicare.telephone-em-deleted" in result.stdout
    assert "6 claims: 2 clean, 0 review, 3 reject, 1 invalid" in result.stdout
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps({"id": "OK-1", "payer": "medicare", "service_date": "2024-03-04",
                                 "lines": [{"code": "99213"}]}))
    assert invoke("scrub", clean, "--db", db_url).exit_code == 0


def test_usage_errors_exit_2(tmp_path, db_url):
    assert invoke("scrub", tmp_path / "nope.json", "--db", db_url).exit_code == 2
    assert invoke("scrub", EXAMPLES, "--known-on", "2025-13-01", "--db", db_url).exit_code == 2
    assert invoke("scrub", EXAMPLES, "--payer", "acme", "--db", db_url).exit_code == 2
    assert invoke("scrub", EXAMPLES, "--format", "pdf", "--db", db_url).exit_code == 2


def test_payer_flag_judges_every_claim_as_that_payer(tmp_path, db_url):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(dict(LAPSE, payer="nobody-we-know")))
    code, data = scrub_json(path, "--payer", "cigna", "--known-on", "2021-03-01", db=db_url)
    rules = [f["rule"] for f in data["claims"][0]["findings"]]
    assert "commercial.telehealth-indicator" in rules


def test_html_report_is_one_self_contained_page(tmp_path, db_url):
    out = tmp_path / "r.html"
    result = invoke("scrub", EXAMPLES, "--format", "html", "--output", out, "--db", db_url)
    assert result.exit_code == 1
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "medicare.telephone-em-deleted" in page
    assert "<script" not in page and "http" not in page.replace("https://www.ama", "")


def test_policy_validate_ok_and_broken(policy_copy):
    ok = invoke("policy", "validate")
    assert ok.exit_code == 0 and ok.stdout.startswith("ok:")
    (policy_copy / "medicare" / "rules.yaml").write_text(
        (policy_copy / "medicare" / "rules.yaml").read_text().replace("source: cy2021-pfs\n", "source: nowhere\n", 1))
    bad = invoke("policy", "validate", "--policies", policy_copy)
    assert bad.exit_code == 2
    assert "medicare/rules.yaml:" in bad.stdout and "source 'nowhere' is not defined" in bad.stdout


def test_scrub_with_a_broken_policy_tree_stores_nothing_and_exits_2(policy_copy, db_url, tmp_path):
    (policy_copy / "cpt" / "rules.yaml").write_text("layer: cpt\nrules: [{id: cpt.x}]\n")
    result = invoke("scrub", EXAMPLES, "--policies", policy_copy, "--db", db_url)
    assert result.exit_code == 2
    assert invoke("runs", "list", "--db", db_url).stdout.count("\n") <= 2


def test_policy_test_reports_coverage():
    result = invoke("policy", "test")
    assert result.exit_code == 0
    assert "cases passed" in result.stdout and "medicare.telehealth-home-non-behavioral" in result.stdout


def test_policy_test_fails_on_a_broken_case(policy_copy):
    path = policy_copy / "commercial" / "uhc.yaml"
    path.write_text(path.read_text().replace("expect: [commercial.uhc.audio-only-93]",
                                             "expect: [commercial.uhc.telehealth-pos-2021]"))
    result = invoke("policy", "test", "--policies", policy_copy)
    assert result.exit_code == 1 and "FAIL" in result.stdout


def test_policy_show_lists_rules_in_force_by_date_and_knowledge():
    during = invoke("policy", "show", "medicare", "--date", "2025-10-15", "--known-on", "2025-10-20", "--format", "json")
    after = invoke("policy", "show", "medicare", "--date", "2025-10-15", "--format", "json")
    ids_during = {r["rule"] for r in json.loads(during.stdout)["rules"]}
    ids_after = {r["rule"] for r in json.loads(after.stdout)["rules"]}
    assert "medicare.telehealth-home-non-behavioral" in ids_during - ids_after
    table = invoke("policy", "show", "medicare", "--date", "2025-01-06")
    assert table.exit_code == 0 and "medicare.telephone-em-deleted" in table.stdout
    assert "medicare.gt-required" not in table.stdout


def _every_command(command, path=()):
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _every_command(sub, (*path, name))


def test_help_says_what_each_command_does_in_plain_placeholders():
    import re

    import typer

    paths = list(_every_command(typer.main.get_command(app)))
    assert ("scrub",) in paths and ("policy", "query") in paths and ("data", "import") in paths
    for path in paths:
        result = invoke(*path, "--help", env={"COLUMNS": "100"}, prog_name="payerpolicy")
        assert result.exit_code == 0 and "Usage" in result.stdout, path
        # no Typer type names (<bool>, <str>, <list[str]>, <int range>) and no {argument} in the usage line
        assert not re.search(r"<(bool|str|int|float|path|dir|list\[|int range)", result.stdout), path
        usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
        assert "{" not in usage and "<" not in usage, path
    scrub = invoke("scrub", "--help", env={"COLUMNS": "100"}, prog_name="payerpolicy").stdout
    assert "Usage: payerpolicy scrub [OPTIONS] FILES..." in scrub
    assert re.search(r"--known-on\s+DATE", scrub) and re.search(r"--workers\s+-w\s+N", scrub)
    # a docstring's paragraph is reflowed to the terminal, not cut where the source line ended
    assert "batch of any size runs in constant memory" in " ".join(scrub.split())
    assert "runs in\n" not in scrub


def test_shell_completion_completes_commands_and_options():
    import os
    import subprocess
    import sys

    command = str(Path(sys.executable).parent / "payerpolicy")
    if not Path(command).exists():
        pytest.skip("the payerpolicy script is not installed beside this interpreter")

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_PAYERPOLICY_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        done = subprocess.run([command], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("payerpolicy sc") == ["scrub"]
    assert complete("payerpolicy policy q") == ["query"]
    assert "--known-on" in complete("payerpolicy scrub --kn")
    # Typer names the shell from the process tree unless told not to; a test run need not have a
    # shell above it (a CI runner, a detached job), so the shell is named outright.
    script = subprocess.run([command, "--show-completion", "bash"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "_PAYERPOLICY_COMPLETE" in script.stdout


def test_output_to_a_full_device_is_one_line_and_exit_2_and_the_device_stays(tmp_path):
    import stat
    import subprocess
    import sys

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    done = subprocess.run([sys.executable, "-m", "engine.cli", "scrub", str(ROOT / "examples" / "claims.json"),
                           "--no-store", "--format", "json", "-o", "/dev/full"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == "/dev/full: write failed (No space left on device)"
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)  # written in place, never renamed over


def test_version_and_plain_counts():
    from engine import __version__

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"payerpolicy {__version__}"


def test_export_of_nothing_exportable_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "X-1", "payer": "medicare", "service_date": "2024-13-01",
                                "lines": [{"code": "99213"}]}]))
    result = invoke("export", bad)
    assert result.exit_code == 1 and "ISA" not in result.stdout and result.stdout == ""


def test_piped_tables_keep_whole_values():
    result = invoke("policy", "test")
    assert "commercial.aetna.audio-only-self-funded" in result.stdout  # not squeezed to "commercial.aet…"
    assert "…" not in result.stdout


def test_the_html_report_reads_like_a_report(tmp_path):
    out = tmp_path / "report.html"
    result = invoke("scrub", EXAMPLES, "--no-store", "--format", "html", "-o", out, "--known-on", "2025-10-20")
    assert result.exit_code == 1
    page = out.read_text()
    assert ("EX-1 — will be denied · medicare · date of service 2025-02-03 · charges $95.00 · at risk $95.00"
            in page)
    assert 'id="at-risk">Charges at risk (lines with a denial): <strong>$525.00</strong> of $755.00 billed.' in page
    assert "CO-181: the procedure code was not valid on the date of service" in page
    assert "(In short: bill 99213; add modifier 93.)" in page and "-&gt; 99213" not in page
