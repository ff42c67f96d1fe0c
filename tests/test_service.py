"""The HTTP service: same answers as the command line, authentication, limits, concurrency,
clean logs, no 5xx on arbitrary input, and the committed OpenAPI schema."""

import json
import logging
import threading
import warnings

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from engine.policy.loader import load_policies
from engine.service import Limits, create_app
from engine.store import Store

from .conftest import ROOT

TOKEN = "test-token-7f3a"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = (ROOT / "examples" / "claims.json").read_text()
POLICY = load_policies()


@pytest.fixture
def client(db_url):
    # Build the app before freezing time: FastAPI imports pydantic.v1 lazily, which cannot
    # subclass freezegun's fake date class.
    test_client = TestClient(create_app(POLICY, Store(db_url), {TOKEN}, Limits(max_body_bytes=200_000, max_claims=50)))
    with freeze_time("2026-11-27"):
        yield test_client


def test_no_token_no_data(client):
    assert client.get("/healthz").status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        response = client.post("/v1/scrub", content=EXAMPLES, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/policy/medicare", headers={}).status_code == 401


def test_scrub_answers_exactly_as_the_command_line(client, db_url, tmp_path):
    from typer.testing import CliRunner

    from engine.cli import app

    response = client.post("/v1/scrub?store=false", content=EXAMPLES, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body.pop("run_id") is None
    with freeze_time("2026-11-27"):
        cli = CliRunner().invoke(app, ["scrub", str(ROOT / "examples" / "claims.json"), "--format", "json", "--no-store"])
    assert body == json.loads(cli.stdout)


def test_x12_body_and_known_on(client):
    from engine.claims import parse_claims_text
    from engine.x12.write837 import write_837

    claims = parse_claims_text(json.dumps({"id": "H-1", "payer": "medicare", "service_date": "2025-10-15",
                                           "place_of_service": "10", "diagnoses": ["I10"],
                                           "lines": [{"code": "99213"}]}))
    text = write_837(claims, POLICY)
    response = client.post("/v1/scrub?known_on=2025-10-20", content=text, headers=dict(AUTH, **{"content-type": "text/x12"}))
    (claim,) = response.json()["claims"]
    assert response.json()["known_on"] == "2025-10-20" and claim["id"] == "H-1"


def test_an_x12_body_with_an_envelope_error_names_it_in_files_not_as_a_claim(client):
    text = (ROOT / "tests" / "fixtures" / "x12" / "se-count-error.837").read_text()
    response = client.post("/v1/scrub?known_on=2026-11-27&store=false", content=text,
                           headers=dict(AUTH, **{"content-type": "text/x12"}))
    body = response.json()
    assert response.status_code == 200 and [c["id"] for c in body["claims"]] == ["LINE-1"]
    assert body["summary"]["claims"] == 1
    (problem,) = body["files"]
    assert (problem["name"], problem["segment"]) == ("body", 33) and problem["reason"].startswith("transaction set")


def test_runs_and_policy_endpoints(client):
    run_id = client.post("/v1/scrub", content=EXAMPLES, headers=AUTH).json()["run_id"]
    run = client.get(f"/v1/runs/{run_id}", headers=AUTH).json()
    assert run["summary"]["reject"] == 3 and run["findings"][0]["claim_id"] == "EX-1"
    assert client.get("/v1/runs/nope", headers=AUTH).status_code == 404
    rules = client.get("/v1/policy/medicare?date=2025-10-15&known_on=2025-10-20", headers=AUTH).json()["rules"]
    assert "medicare.telehealth-home-non-behavioral" in {r["rule"] for r in rules}
    assert client.get("/v1/policy/acme", headers=AUTH).status_code == 404
    versions = client.get("/v1/policy/versions", headers=AUTH).json()
    assert versions[0]["digest"] == POLICY.digest and versions[0]["loaded"]


def test_suggest_and_whatif_endpoints(client):
    answer = client.post("/v1/suggest", headers=AUTH, json={
        "payer": "aetna", "service_date": "2024-05-02", "rendering_provider": {"type": "MD"},
        "encounter": {"total_minutes": 38, "psychotherapy_minutes": 18, "mdm": "moderate"}}).json()
    assert [r["code"] for r in answer["recommended"]] == ["99214", "90833"]
    telephone = json.loads((ROOT / "examples" / "telephone.json").read_text())
    comps = client.post("/v1/whatif", headers=AUTH, json={"claims": [telephone],
                                                          "set": ["service_date=2020-04-15,2025-02-03"]}).json()
    assert [c["claims"][0]["status"]["b"] for c in comps["comparisons"]] == ["clean", "reject"]
    # One claim object, as /v1/scrub takes it, is the same question.
    single = client.post("/v1/whatif", headers=AUTH, json={"claims": telephone,
                                                           "set": ["service_date=2020-04-15,2025-02-03"]}).json()
    assert single == comps


def test_limits_and_problem_documents(client):
    big = client.post("/v1/scrub", content="[" + ",".join([EXAMPLES] * 100) + "]", headers=AUTH)
    assert big.status_code == 413 and big.json()["title"] == "Body Too Large"
    many = client.post("/v1/scrub", headers=AUTH, content=json.dumps([{"id": f"C{i}", "payer": "medicare",
                                                                        "service_date": "2024-01-02",
                                                                        "lines": [{"code": "99213"}]}
                                                                       for i in range(51)]))
    assert many.status_code == 413
    bad = client.post("/v1/scrub", content="{nope", headers=AUTH)
    assert bad.status_code == 400 and "Traceback" not in bad.text
    shape = client.post("/v1/whatif", headers=AUTH, json={"claims": "x"})
    assert shape.status_code == 422 and shape.json()["errors"][0]["field"] == "claims"
    payer = client.post("/v1/scrub?payer=acme", content=EXAMPLES, headers=AUTH)
    assert payer.status_code == 422 and payer.json()["errors"] == [{"field": "payer", "reason": "unknown payer"}]
    invalid = client.post("/v1/scrub?store=false", headers=AUTH, json={"id": "X", "payer": "medicare",
                                                                      "service_date": "2024-13-01",
                                                                      "lines": [{"code": "99213"}]})
    assert invalid.status_code == 200 and invalid.json()["claims"][0]["errors"][0]["field"] == "service_date"


def test_a_thousand_mixed_requests_from_many_threads_match_the_serial_answers(client):
    telephone = json.loads((ROOT / "examples" / "telephone.json").read_text())
    requests = []
    for i in range(1000):
        kind = i % 4
        if kind == 0:
            requests.append(("post", "/v1/scrub?store=false", {"content": EXAMPLES}))
        elif kind == 1:
            requests.append(("post", "/v1/scrub?store=false&known_on=2025-10-20",
                             {"content": json.dumps(dict(telephone, id=f"T{i}", service_date=f"20{19 + i % 7}-06-03"))}))
        elif kind == 2:
            requests.append(("post", "/v1/suggest", {"json": {"payer": ["aetna", "medicare"][i % 2],
                                                              "service_date": "2024-05-02",
                                                              "rendering_provider": {"type": "MD"},
                                                              "encounter": {"total_minutes": 20 + i % 60}}}))
        else:
            requests.append(("get", f"/v1/policy/{['medicare', 'uhc', 'medicaid'][i % 3]}?date=2025-01-06", {}))

    def call(method, url, kwargs):
        response = getattr(client, method)(url, headers=AUTH, **kwargs)
        return response.status_code, response.text

    serial = [call(*r) for r in requests]
    results = [None] * len(requests)

    def worker(offset):
        for index in range(offset, len(requests), 16):
            results[index] = call(*requests[index])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(status == 200 for status, _ in serial)
    assert results == serial


def test_logs_carry_no_claim_contents_or_tokens(client, caplog):
    caplog.set_level(logging.DEBUG)
    secret = {"id": "CLAIM-SECRET-99", "payer": "medicare", "service_date": "2025-10-15",
              "patient": {"id": "MRN-SECRET-12", "birth_date": "1950-02-03", "location": "home"},
              "place_of_service": "10", "diagnoses": ["I10"], "encounter": {"modality": "video"},
              "lines": [{"code": "99213"}]}
    client.post("/v1/scrub?known_on=2025-10-20", json=secret, headers=AUTH)
    client.post("/v1/scrub", json=dict(secret, service_date="garbage"), headers=AUTH)
    client.post("/v1/scrub", json=secret, headers={"Authorization": "Bearer MRN-SECRET-12"})
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "POST /v1/scrub 200" in logged
    for needle in ("CLAIM-SECRET-99", "MRN-SECRET-12", "1950-02-03", TOKEN):
        assert needle not in logged


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12)
    | st.sampled_from(["medicare", "aetna", "99213", "2024-01-02", "10", "video", "home", "MD", "F33.1"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "payer", "service_date", "lines", "code", "modifiers", "units", "patient", "encounter",
                         "claims", "total_minutes", "modality", "state", "set", "known_on", "x"]), inner, max_size=6),
    max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, path=st.sampled_from(["/v1/scrub?store=false", "/v1/suggest", "/v1/whatif"]))
def test_arbitrary_bodies_never_cause_a_server_error(client, body, path):
    response = client.post(path, content=json.dumps(body), headers=dict(AUTH, **{"content-type": "application/json"}))
    assert response.status_code < 500, response.text


def test_the_committed_openapi_schema_is_current():
    app = create_app(POLICY, None, {TOKEN})
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(app.openapi(), sort_keys=True))


def test_a_server_that_stops_closes_the_store_it_was_opened_with(tmp_path):
    """``serve`` opens its store with a checkpoint thread; stopping the server stops it."""
    from engine.service import app_from_config

    config = {"policies": None, "db": f"sqlite:///{tmp_path / 'store.sqlite'}", "no_store": False,
              "reference": None, "tokens_file": None, "limits": Limits().model_dump()}
    threads = lambda: {t for t in threading.enumerate() if t.name == "payerpolicy-wal-checkpoint"}  # noqa: E731
    before = threads()
    app = app_from_config(config)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        running = threads() - before
        assert running
    assert not any(t.is_alive() for t in running)


def test_graceful_shutdown_finishes_the_request_in_flight(tmp_path):
    """SIGTERM during a batch: the batch is answered in full and its run is stored whole."""
    import http.client
    import os
    import signal
    import subprocess
    import sys
    import time

    from benchmarks.synthetic import synthetic_claims
    from benchmarks.bench_serve import free_port, wait_healthy

    port = free_port()
    db = f"sqlite:///{tmp_path / 'served.sqlite'}"
    server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--db", db],
                              env=dict(os.environ, PAYERPOLICY_TOKENS=TOKEN), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert wait_healthy(port, 60), "the server did not start"
        body = json.dumps(synthetic_claims(1500, seed=3))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("POST", "/v1/scrub", body=body, headers=dict(AUTH, **{"Content-Type": "application/json"}))
        time.sleep(0.5)
        server.send_signal(signal.SIGTERM)
        response = conn.getresponse()
        data = json.loads(response.read())
        assert response.status == 200 and data["summary"]["claims"] == 1500
        # uvicorn re-raises SIGTERM after its graceful shutdown, so the exit status is the signal.
        assert server.wait(timeout=60) in (0, -signal.SIGTERM)
    finally:
        if server.poll() is None:
            server.kill()
    run, rows = Store(db).get_run(data["run_id"])
    assert run.claims == 1500 and len(rows) == sum(len(c.get("findings", [])) for c in data["claims"])


def test_a_store_error_is_a_problem_document_and_logs_no_claim_data(db_url, caplog):
    """A failing INSERT's traceback would print its parameters (claim data): the log gets the type only."""
    from sqlalchemy.exc import OperationalError

    store = Store(db_url)
    app = create_app(POLICY, store, {TOKEN})

    def broken(*args, **kwargs):
        raise OperationalError("INSERT INTO claimrecord ...", {"body": "MRN-SECRET-77"}, Exception("disk I/O error"))

    store.record_run = broken
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        secret = {"id": "CLAIM-SECRET-77", "payer": "medicare", "service_date": "2025-02-03",
                  "patient": {"id": "MRN-SECRET-77"}, "lines": [{"code": "99213"}]}
        response = test_client.post("/v1/scrub", json=secret, headers=AUTH)
    assert response.status_code == 500 and response.headers["content-type"] == "application/problem+json"
    assert "MRN-SECRET-77" not in response.text
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "internal error OperationalError on /v1/scrub" in logged
    assert "MRN-SECRET-77" not in logged and "CLAIM-SECRET-77" not in logged and "Traceback" not in logged


def test_serve_with_two_workers_answers_like_one(tmp_path):
    """`serve --workers 2`: both processes load the policy and answer the same document."""
    import os
    import subprocess
    import sys

    from benchmarks.bench_serve import free_port, wait_healthy

    port = free_port()
    env = dict(os.environ, PAYERPOLICY_TOKENS=TOKEN, PAYERPOLICY_DB=f"sqlite:///{tmp_path / 's.sqlite'}")
    server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers", "2"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_healthy(port, 60), "the server did not start"
        import http.client

        answers = set()
        for _ in range(8):  # new connections, spread over both workers
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/v1/scrub?known_on=2026-11-27", body=EXAMPLES,
                         headers=dict(AUTH, **{"Content-Type": "application/json"}))
            response = conn.getresponse()
            body = json.loads(response.read())
            assert response.status == 200
            answers.add(json.dumps([c["findings"] if "findings" in c else c["errors"] for c in body["claims"]]))
            conn.close()
        assert len(answers) == 1
        assert body["summary"] == {"claims": 6, "clean": 2, "review": 0, "reject": 3, "invalid": 1, "history": 0}
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=60)
    assert b"Traceback" not in stderr
