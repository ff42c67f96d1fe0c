"""The web workbench as a billing manager uses it: sign in, scrub pasted or uploaded claims,
read each finding in plain words, apply a fix, download the results."""

from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time

from engine.policy.loader import load_policies
from engine.service import Limits, create_app

from .conftest import ROOT

TOKEN = "workbench-test-token"
AUDIO_ONLY_2025 = {"id": "W-1", "payer": "medicare", "service_date": "2025-02-03", "place_of_service": "10",
                   "encounter": {"modality": "audio-only"}, "lines": [{"code": "99442", "charge": "75.00"}]}
CLEAN = {"id": "W-2", "payer": "aetna", "service_date": "2024-05-06", "place_of_service": "02",
         "encounter": {"modality": "video"}, "lines": [{"code": "99214", "modifiers": ["95"], "charge": "140.10"}]}


@pytest.fixture(scope="module")
def client():
    app = create_app(load_policies(), None, {TOKEN}, Limits(failed_tokens=3))
    return TestClient(app)


def signed_in(client) -> str:
    client.cookies.clear()
    response = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/scrub"
    page = client.get("/scrub")
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def texts(page: str, css_class: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", html.unescape(m)) for m in re.findall(rf'<p class="{css_class}">(.*?)</p>', page, re.S)]


def test_pages_need_a_session_and_the_cookie_is_guarded(client):
    client.cookies.clear()
    assert client.get("/scrub", follow_redirects=False).headers["location"] == "/login"
    wrong = client.post("/login", data={"token": "not-it"})
    assert wrong.status_code == 401 and "not one this service accepts" in wrong.text
    response = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert TOKEN not in cookie
    # a forged or altered cookie is no session
    value = client.cookies.get("pp_session")
    client.cookies.set("pp_session", value[:-2] + ("00" if not value.endswith("00") else "11"))
    assert client.get("/scrub", follow_redirects=False).status_code == 303
    # the JSON API keeps its bearer tokens: a session cookie does not open it
    assert client.post("/v1/scrub", json=AUDIO_ONLY_2025).status_code == 401


def test_every_page_and_form_without_a_session_goes_to_sign_in(client):
    client.cookies.clear()
    public = ("/login", "/v1/", "/healthz", "/docs", "/openapi", "/workbench/static")
    routes = [(method, route.path.replace("{code}", "99442").replace("{rule_id}", "x").replace("{run_id}", "x"))
              for route in client.app.routes if not route.path.startswith(public) and route.path != "/"
              for method in getattr(route, "methods", ()) if method in ("GET", "POST")]
    assert {"/policy/between", "/policy/versions", "/denials/worklist", "/scrub/fix"} <= {p for _, p in routes}
    for method, path in routes:
        response = client.request(method, path)
        assert (response.url.path, response.status_code) == ("/login", 200) and response.history, path


def test_sign_in_shares_the_apis_limit_on_wrong_tokens():
    client = TestClient(create_app(load_policies(), None, {TOKEN}, Limits(failed_tokens=2)))
    for _ in range(3):
        client.post("/login", data={"token": "guess"})
    blocked = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert blocked.status_code == 429 and "pp_session" not in blocked.headers.get("set-cookie", "")
    assert client.get("/v1/runs/x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429


def test_a_csrf_field_in_any_script_is_refused_not_crashed_on(client):
    signed_in(client)
    refused = client.post("/scrub", data={"csrf": "ключ", "claims": "{}"})
    assert refused.status_code == 403


def test_a_session_expires(client):
    with freeze_time("2026-11-30 08:00:00"):
        csrf = signed_in(client)
    with freeze_time("2026-11-30 15:59:00"):
        assert client.get("/scrub", follow_redirects=False).status_code == 200
    with freeze_time("2026-11-30 16:01:00"):
        assert client.get("/scrub", follow_redirects=False).headers["location"] == "/login"
    assert csrf


def test_forms_without_the_sessions_csrf_token_are_not_acted_on(client):
    signed_in(client)
    refused = client.post("/scrub", data={"csrf": "forged", "claims": json.dumps(AUDIO_ONLY_2025)})
    assert refused.status_code == 403 and "was not acted on" in refused.text and "W-1" not in refused.text
    assert client.post("/logout", data={"csrf": "forged"}, follow_redirects=False).status_code == 303
    assert client.get("/scrub", follow_redirects=False).status_code == 200  # still signed in


def test_scrub_a_pasted_claim_reads_like_a_person_wrote_it(client):
    csrf = signed_in(client)
    page = client.post("/scrub", data={"csrf": csrf, "claims": json.dumps([AUDIO_ONLY_2025, CLEAN]),
                                       "known_on": "2025-10-20"}).text
    assert re.search(r'id="at-risk">\$75.00</strong> of \$215.10', page)
    assert "2 claims: 1 will be denied, 1 expected to be paid" in page
    facts = re.findall(r"<dd>(.*?)</dd>", page)
    assert facts[:4] == ["Medicare Part B (traditional fee-for-service)", "2025-02-03", "99442", "$75.00"]
    sentence = texts(page, "sentence")[0]
    assert sentence.startswith("Denial: Line 1 (99442): 99442 was deleted on 2025-01-01")
    assert texts(page, "codes")[0] == ("The payer would answer CARC CO-181: the procedure code was not valid on "
                                       "the date of service; remark N56: the procedure code is not valid for the "
                                       "date of service.")
    assert texts(page, "fix")[0].startswith("What to do: Bill the office E/M level")
    assert "CY2025 PFS final rule" in texts(page, "source")[0] and "confidence high" in texts(page, "source")[0]
    assert "-&gt; 99213" not in page and "--known-on" not in page  # sentences, not engine output


def test_apply_a_fix_and_scrub_again(client):
    csrf = signed_in(client)
    page = client.post("/scrub", data={"csrf": csrf, "claims": json.dumps(AUDIO_ONLY_2025),
                                       "known_on": "2025-10-20"}).text
    claims = html.unescape(re.search(r'action="/scrub/fix".*?name="claims" value="([^"]+)"', page, re.S).group(1))
    fixed = client.post("/scrub/fix", data={"csrf": csrf, "claims": claims, "known_on": "2025-10-20", "payer": "",
                                            "claim": "0", "finding": "0"}).text
    assert re.findall(r"<dd>(.*?)</dd>", fixed)[2] == "99213-93"  # the code and modifier the fix named
    assert "will be denied" not in fixed and 'id="at-risk">$0.00' in fixed


def test_upload_an_837_and_download_json_and_csv(client):
    csrf = signed_in(client)
    text = (ROOT / "examples" / "x12-denials" / "claims" / "claims-2024-11.837").read_text()
    page = client.post("/scrub", data={"csrf": csrf, "known_on": "2025-01-15"},
                       files={"file": ("claims.837", text.encode(), "text/plain")}).text
    assert "4 claims:" in page and "UnitedHealthcare (commercial)" in page and "UHC-1002" in page
    claims = html.unescape(re.search(r'action="/scrub/download".*?name="claims" value="([^"]+)"', page, re.S)
                           .group(1))
    as_csv = client.post("/scrub/download", data={"csrf": csrf, "claims": claims, "known_on": "2025-01-15",
                                                  "format": "csv"})
    assert as_csv.headers["content-disposition"] == 'attachment; filename="scrub-2025-01-15.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    denied = [r for r in rows if r["rule"] == "cpt.90863-by-em-prescriber"]
    assert denied[0]["claim_id"] == "UHC-1002" and denied[0]["carc_meaning"] == "this provider may not bill this service"
    as_json = client.post("/scrub/download", data={"csrf": csrf, "claims": claims, "known_on": "2025-01-15",
                                                   "format": "json"}).json()
    assert as_json["known_on"] == "2025-01-15" and len(as_json["claims"]) == 4
    report = client.post("/scrub/download", data={"csrf": csrf, "claims": claims, "known_on": "2025-01-15",
                                                  "format": "html"}).text
    assert "<h1>Scrub report</h1>" in report and "<form" not in report and "UHC-1002" in report


def test_a_downloaded_csv_never_hands_a_spreadsheet_a_formula(client):
    from engine.reports.cells import cell

    csrf = signed_in(client)
    hostile = dict(AUDIO_ONLY_2025, id='=HYPERLINK("http://x.example","open")')
    as_csv = client.post("/scrub/download", data={"csrf": csrf, "claims": json.dumps([hostile]),
                                                  "known_on": "2025-10-20", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert rows and {r["claim_id"] for r in rows} == {"'" + hostile["id"]}  # shown as text, not run
    assert [cell(v) for v in ("-5.00", "+1", "@SUM(A1)", "\tx", "UHC-1")] == ["-5.00", "+1", "'@SUM(A1)", "'\tx",
                                                                             "UHC-1"]


def test_a_broken_claim_says_which_field_and_the_rest_are_judged(client):
    csrf = signed_in(client)
    bad = dict(AUDIO_ONLY_2025, id="W-9", service_date="2025-13-01")
    page = client.post("/scrub", data={"csrf": csrf, "claims": json.dumps([bad, CLEAN])}).text
    assert "cannot be judged" in page and "<code>service_date</code>" in page and "W-2" in page


def test_suggest_from_the_encounter_form(client):
    csrf = signed_in(client)
    page = client.post("/suggest", data={"csrf": csrf, "payer": "aetna", "service_date": "2024-05-02",
                                         "provider": "MD", "modality": "in-person", "location": "office",
                                         "total_minutes": "38", "psychotherapy_minutes": "18", "mdm": "moderate",
                                         "patient_status": "established"}).text
    assert re.search(r'id="recommended"><strong>99214 \+ 90833 POS 11</strong> \(the level rests on mdm\)', page)
    assert "99213 + 90833 POS 11" in page and "better-paying coding" in page  # an alternative and why it loses
    assert "Psychotherapy minutes, documented separately" in page
    bad = client.post("/suggest", data={"csrf": csrf, "payer": "aetna", "total_minutes": "lots"}).text
    assert "total minutes must be a whole number" in bad


def test_denials_from_uploaded_837_and_835_files(client):
    csrf = signed_in(client)
    example = ROOT / "examples" / "x12-denials"
    files = [("files", (p.name, p.read_bytes(), "text/plain"))
             for p in sorted((example / "remits").glob("*")) + sorted((example / "claims").glob("*"))]
    files.append(("encounters", ("encounters.json", (example / "encounters.json").read_bytes(), "application/json")))
    page = client.post("/denials", data={"csrf": csrf}, files=files).text
    assert 'id="to-recover">To correct, resubmit or appeal: <strong>$155.00</strong>' in page
    assert re.search(r'id="total-predicted">2<', page) and page.count("<svg") == 5
    assert "<dt>overturned</dt><dd>denied and explained then, but a change published later" in page
    assert "<strong>Precision</strong>: of the lines a rule said would be denied" in page
    groups = re.findall(r'<th scope="rowgroup" colspan="5">(.*?) —', page)
    assert groups == ["cpt.code-not-effective · uhc: 1 line, $95.00", "cpt.90863-by-em-prescriber · uhc: 1 line, $60.00"]
    assert "the claim lacks information the payer needs" in page  # the unexplained CO-16, in words
    one_kind = client.post("/denials", data={"csrf": csrf}, files=files[:2]).text
    assert "no claim files among those given" in one_kind


def test_the_worklist_sorts_claim_ids_naturally():
    from engine.reports.denials import natural_key

    assert sorted(["Y-100", "Y-2", "Y-10", "X-3"], key=natural_key) == ["X-3", "Y-2", "Y-10", "Y-100"]


def test_policy_explorer_timeline_and_who_pays(client):
    signed_in(client)
    page = client.get("/policy/code/99442?payer=medicare").text
    rows = re.findall(r"<tr class=\"(\w+)\"><td>(\w+)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", page, re.S)
    deleted = [r for r in rows if r[0] == "code" and "deleted" in r[2]]
    assert deleted and deleted[0][3] == "2025-01-01 – open"
    lapses = [(r[3], r[4]) for r in rows if "medicare.telehealth-home-non-behavioral" in r[2]]
    # each extension moved the date home telehealth would end; the two that came after a lapse reach back
    assert ("2025-10-01 – open", "2025-03-15") in lapses
    assert ("2026-01-31 – open", "2025-11-12 <strong>retroactive</strong>") in lapses
    assert ("2028-01-01 – open", "2026-02-03 <strong>retroactive</strong>") in lapses
    assert page.count("<rect") == len(rows) and "<title id=\"timeline-title\">" in page
    rule = client.get("/policy/rule/medicare.telehealth-home-non-behavioral").text
    assert "- id: medicare.telehealth-home-non-behavioral" in html.unescape(rule) and "must fire" in rule
    asked = client.get("/policy", params={"q": "does medicare pay 99442 on 2025-06-01"}).text
    assert "Asked: 99442, on 2025-06-01" in asked and re.search(r'class="verdict denied">denied</td>', asked)
    unclear = client.get("/policy", params={"q": "does medicare pay 99213 for gizmos"})
    assert unclear.status_code == 422 and "did not understand &#39;gizmos&#39;" in unclear.text


def test_policy_explorer_compares_two_dates_of_service_and_two_knowledge_dates(client):
    signed_in(client)
    deleted = client.get("/policy/between", params={"payer": "medicare", "code": "99442", "first": "2024-12-31",
                                                    "second": "2025-01-01", "first_known": "2026-01-01"}).text
    rows = re.findall(r"<tr><td>(.*?)</td>\s*<td>(.*?)</td>\s*<td>(.*?)</td><td>(.*?)</td></tr>", deleted, re.S)
    assert ("code table", "code 99442", "values") in [r[:3] for r in rows]
    assert any("medicare.telephone-em-deleted" in r[1] and r[2] == "added" for r in rows)
    assert "from dates of service 2024-12-31, as known on 2026-01-01 to dates of service 2025-01-01" in deleted
    lapse = client.get("/policy/between", params={"payer": "medicare", "code": "99213", "first": "2025-10-15",
                                                  "first_known": "2025-10-20", "second_known": "2025-11-20"}).text
    assert re.search(r"medicare.telehealth-home-non-behavioral</a></td>\s*<td>removed", lapse)
    bad = client.get("/policy/between", params={"payer": "medicare", "first": "15/10/2025"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text
    no_store = client.get("/policy/versions", params={"old": "sha256:a", "new": "sha256:b"})
    assert no_store.status_code == 404 and "no store" in no_store.text


def test_whatif_grid_of_variants_and_of_knowledge_dates(client):
    csrf = signed_in(client)
    page = client.post("/whatif", data={"csrf": csrf, "claims": json.dumps(AUDIO_ONLY_2025),
                                        "sets": "service_date=2024-08-01,2025-02-03"}).text
    rows = re.findall(r'<th scope="row">(.*?)</th>', page)
    assert rows == ["as given", "service_date=2024-08-01", "service_date=2025-02-03"]
    statuses = re.findall(r'class="verdict (\w+)"', page)
    assert statuses[:2] == ["reject", "clean"]  # 99442 was still a code in 2024
    assert "− medicare.telephone-em-deleted" in page
    lapse = dict(AUDIO_ONLY_2025, id="W-3", service_date="2025-10-15", diagnoses=["I10"], patient={"location": "home"},
                 encounter={"modality": "video"}, lines=[{"code": "99213", "charge": "110.00"}])
    dates = client.post("/whatif", data={"csrf": csrf, "claims": json.dumps(lapse), "known_a": "2025-10-20",
                                         "known_b": "2026-11-27"}).text
    assert re.findall(r'<th scope="row">(.*?)</th>', dates) == ["known on 2025-10-20", "known on 2026-11-27"]
    assert re.findall(r'class="verdict (\w+)"', dates) == ["reject", "clean"]  # the lapse cured retroactively
    assert "Say what to vary" in client.post("/whatif", data={"csrf": csrf, "claims": json.dumps(lapse)}).text


def test_runs_page_lists_stored_runs_and_replays_them(tmp_path):
    from engine.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    client = TestClient(create_app(load_policies(), store, {TOKEN}))
    run_id = client.post("/v1/scrub?known_on=2025-10-20", json=AUDIO_ONLY_2025,
                         headers={"Authorization": f"Bearer {TOKEN}"}).json()["run_id"]
    csrf = signed_in(client)
    listing = client.get("/runs").text
    assert f"<code>{run_id[:12]}</code>" in listing and "<td>2025-10-20</td>" in listing
    replayed = client.post(f"/runs/{run_id}/replay", data={"csrf": csrf}).text
    assert f"Run {run_id[:12]}: the replay gives the same 2 findings." in replayed
    assert client.post("/runs/nope/replay", data={"csrf": csrf}).status_code == 404


def test_with_a_store_scrubs_are_kept_as_runs_and_judged_against_earlier_ones(tmp_path):
    from engine.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    client = TestClient(create_app(load_policies(), store, {TOKEN}))
    csrf = signed_in(client)
    first = dict(CLEAN, patient={"id": "P-7"})
    page = client.post("/scrub", data={"csrf": csrf, "claims": json.dumps(first), "keep": "on"}).text
    run_id = re.search(r'id="kept-run">Kept in the store as run <a href="/runs#run-(\w+)"', page).group(1)
    assert f'<tr id="run-{run_id}">' in client.get("/runs").text
    # the same service billed again on another claim: a duplicate of the kept one, without keeping this try
    again = client.post("/scrub", data={"csrf": csrf, "claims": json.dumps(dict(first, id="W-2b"))}).text
    assert "cpt.duplicate-line" in again and 'id="kept-run"' not in again
    assert len(store.runs()) == 1


def test_with_a_store_the_explorer_compares_stored_policy_versions(tmp_path, policy_copy):
    from engine.store import Store

    rules = policy_copy / "cpt" / "rules.yaml"
    rules.write_text(rules.read_text().replace("message: \"Modifier 93 (audio-only) took effect on 2022-01-01;",
                                               "message: \"Modifier 93 (audio-only) began on 2022-01-01;"))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    draft = load_policies(policy_copy)
    store.import_policy(draft)
    policy = load_policies()
    client = TestClient(create_app(policy, store, {TOKEN}))
    signed_in(client)
    page = client.get("/policy").text
    assert f'<option value="{policy.digest}" selected>' in page and "(this server&#39;s)" in page
    diff = client.get("/policy/versions", params={"old": draft.digest, "new": policy.digest}).text
    assert re.search(r"cpt.modifier-93-before-2022 revision 2021-09-01</a></td>\s*<td>re-worded</td>", diff)
    assert client.get("/policy/versions", params={"old": "sha256:nope", "new": policy.digest}).status_code == 422


def test_with_a_store_denials_keep_their_files_and_past_analyses_are_read_again(tmp_path):
    from engine.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    client = TestClient(create_app(load_policies(), store, {TOKEN}))
    csrf = signed_in(client)
    assert "keeps no claims from earlier analyses yet" in client.get("/denials").text
    example = ROOT / "examples" / "x12-denials"
    files = [("files", (p.name, p.read_bytes(), "text/plain"))
             for p in sorted((example / "remits").glob("*")) + sorted((example / "claims").glob("*"))]
    files.append(("encounters", ("encounters.json", (example / "encounters.json").read_bytes(), "application/json")))
    first = client.post("/denials", data={"csrf": csrf, "keep": "on", "action": "files"}, files=files).text
    assert "kept in the store by earlier analyses" not in first
    worklist = html.unescape(re.search(r'name="worklist" value="([^"]*)"', first).group(1))
    download = client.post("/denials/worklist", data={"csrf": csrf, "worklist": worklist})
    assert download.headers["content-disposition"].startswith('attachment; filename="worklist-')
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert len(rows) == 2 and sum(float(r["charge"]) for r in rows) == 155.0
    kept = store.denial_claim_count()
    assert kept > 0 and f"The store keeps {kept} claims" in client.get("/denials").text
    again = client.post("/denials", data={"csrf": csrf, "action": "stored"}).text
    assert f"Includes {kept} claims kept in the store by earlier analyses." in again
    assert 'id="to-recover">To correct, resubmit or appeal: <strong>$155.00</strong>' in again
    forged = client.post("/denials/worklist", data={"csrf": "nope", "worklist": worklist})
    assert forged.status_code == 403


# ---- in a real browser -------------------------------------------------------------------

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()


def accessible(driver, page: str) -> None:
    """axe-core (vendored from its npm package) finds no serious or critical violation."""
    driver.execute_script(AXE)
    found = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map("
        "v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))));")
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, f"{page}: {serious}"

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.mark.skipif((CHROMIUM is None or CHROMEDRIVER is None) and os.environ.get("CI") != "true",
                    reason="Chromium and chromium-driver are not installed here (make test installs them)")
def test_the_workbench_in_headless_chromium_by_keyboard(tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as expected
    from selenium.webdriver.support.ui import Select, WebDriverWait

    visible = expected.visibility_of_element_located

    from benchmarks.bench_serve import free_port, wait_healthy

    port = free_port()
    env = dict(os.environ, PAYERPOLICY_TOKENS=TOKEN, PAYERPOLICY_DB=f"sqlite:///{tmp_path / 'store.db'}")
    server = subprocess.Popen([sys.executable, "-m", "engine.cli", "ui", "--port", str(port), "--no-open"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1200,1400",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    shots = Path(os.environ.get("PAYERPOLICY_SCREENSHOTS", tmp_path))
    driver = None
    try:
        assert wait_healthy(port, 60), server.stdout.read() if server.poll() is not None else "no answer"
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        wait = WebDriverWait(driver, 30)

        def gone(element) -> None:
            """Wait until the page that held the element has been replaced."""
            def replaced(_driver) -> bool:
                try:
                    element.is_enabled()
                    return False
                except StaleElementReferenceException:
                    return True
                except WebDriverException:  # asked mid-navigation ("node does not belong to the document")
                    return False
            wait.until(replaced)

        def submit(field) -> None:
            """Submit the field's form and wait for the page it leads to."""
            field.submit()
            gone(field)
        base = f"http://127.0.0.1:{port}"
        driver.get("data:text/html,<html lang=en><title>t</title><img src='x.png'></html>")
        with pytest.raises(AssertionError, match="image-alt"):  # the check can fail
            accessible(driver, "a page with an image without text")
        driver.get(base + "/scrub")
        assert driver.current_url == base + "/login"
        accessible(driver, "sign-in")
        # by keyboard only: the token field has focus; Enter submits
        driver.switch_to.active_element.send_keys(TOKEN + Keys.ENTER)
        wait.until(expected.url_to_be(base + "/scrub"))
        driver.save_screenshot(str(shots / "workbench-scrub-form.png"))
        area = driver.find_element(By.ID, "claims")
        area.send_keys(json.dumps([AUDIO_ONLY_2025, CLEAN]))
        driver.execute_script("document.getElementById('known_on').value = '2025-10-20'")
        for _ in range(15):  # Tab through the form (file, the date's fields, payer) to the Scrub button
            ActionChains(driver).send_keys(Keys.TAB).perform()
            if driver.switch_to.active_element.text == "Scrub":
                break
        ActionChains(driver).send_keys(Keys.ENTER).perform()
        totals = wait.until(visible((By.ID, "totals"))).text
        assert "1 will be denied" in totals and "$75.00" in totals
        first = driver.find_element(By.CSS_SELECTOR, "#claim-1 .finding.error .sentence").text
        assert "99442 was deleted on 2025-01-01" in first
        driver.save_screenshot(str(shots / "workbench-scrub-results.png"))
        accessible(driver, "scrub results")
        button = driver.find_element(By.CSS_SELECTOR, "#claim-1 form[action='/scrub/fix'] button")
        button.send_keys(Keys.ENTER)
        gone(button)
        assert wait.until(visible((By.ID, "at-risk"))).text == "$0.00"
        assert "99213-93" in driver.find_element(By.CSS_SELECTOR, "#claim-1 .facts").text

        driver.get(base + "/suggest")
        Select(driver.find_element(By.ID, "payer")).select_by_value("aetna")
        driver.execute_script("document.getElementById('service_date').value = '2024-05-02'")
        driver.find_element(By.ID, "total_minutes").send_keys("38")
        driver.find_element(By.ID, "psychotherapy_minutes").send_keys("18")
        Select(driver.find_element(By.ID, "mdm")).select_by_value("moderate")
        submit(driver.find_element(By.ID, "mdm"))
        assert "99214 + 90833 POS 11" in wait.until(visible((By.ID, "recommended"))).text
        driver.save_screenshot(str(shots / "workbench-suggest.png"))
        accessible(driver, "suggest")

        driver.get(base + "/policy/code/99442?payer=medicare")
        table = wait.until(visible((By.ID, "timeline-rows"))).text
        assert "code 99442 deleted" in table and "2025-11-12 retroactive" in table and "2026-02-03 retroactive" in table
        driver.save_screenshot(str(shots / "workbench-policy-timeline.png"))
        accessible(driver, "policy timeline")
        driver.get(base + "/policy/between?payer=medicare&code=99213&first=2025-10-15&first_known=2025-10-20"
                          "&second_known=2025-11-20")
        assert "medicare.telehealth-home-non-behavioral" in wait.until(visible((By.ID, "changes"))).text
        driver.save_screenshot(str(shots / "workbench-policy-between.png"))
        accessible(driver, "policy between two knowledge dates")

        driver.get(base + "/denials")
        example = ROOT / "examples" / "x12-denials"
        paths = sorted((example / "claims").glob("*")) + sorted((example / "remits").glob("*"))
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
        driver.find_element(By.ID, "encounters").send_keys(str(example / "encounters.json"))
        submit(driver.find_element(By.ID, "files"))
        assert "$155.00" in wait.until(visible((By.ID, "to-recover"))).text
        driver.save_screenshot(str(shots / "workbench-denials.png"))
        accessible(driver, "denials")
        again = driver.find_element(By.CSS_SELECTOR, 'button[value="stored"]')
        again.send_keys(Keys.ENTER)  # the files were kept: the past analysis, by keyboard
        gone(again)
        assert "$155.00" in wait.until(visible((By.ID, "to-recover"))).text

        driver.get(base + "/whatif")
        driver.find_element(By.ID, "claims").send_keys(json.dumps(AUDIO_ONLY_2025))
        driver.find_element(By.ID, "sets").send_keys("service_date=2024-08-01,2025-02-03")
        submit(driver.find_element(By.ID, "sets"))
        assert "service_date=2024-08-01" in wait.until(visible((By.ID, "grid"))).text
        driver.save_screenshot(str(shots / "workbench-whatif.png"))
        accessible(driver, "what-if")

        driver.get(base + "/runs")
        wait.until(visible((By.ID, "runs")))
        accessible(driver, "runs")
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
