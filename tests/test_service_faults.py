"""The service under retries, time limits and hostile clients: nothing stored twice, nothing
stored for a request answered 504, no body buffered past its limit, docs behind the token."""

import json
import threading
import time
import warnings

import pytest
from freezegun import freeze_time

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from engine import scrub as scrub_module
from engine.policy.loader import load_policies
from engine.service import Limits, create_app
from engine.store import Store

TOKEN = "fault-token-19c2"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POLICY = load_policies()


def body(cid="I-1", patient="P-9"):
    return json.dumps([{"id": cid, "payer": "commercial", "service_date": "2024-04-01", "patient": {"id": patient},
                        "lines": [{"code": "99214"}]}])


def make_client(db_url, **limits):
    return TestClient(create_app(POLICY, Store(db_url), {TOKEN}, Limits(**limits)), raise_server_exceptions=False)


@pytest.fixture
def client(db_url):
    test_client = make_client(db_url)
    with freeze_time("2026-11-27"):
        yield test_client


def test_a_retry_with_the_same_idempotency_key_is_answered_from_the_store(client, db_url):
    first = client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "retry-1"})
    again = client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "retry-1"})
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first.headers
    assert again.json() == first.json()
    assert len(Store(db_url).runs()) == 1
    fresh = client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "retry-2"})
    assert fresh.json()["run_id"] != first.json()["run_id"] and len(Store(db_url).runs()) == 2


def test_a_key_sent_again_with_another_body_is_refused(client):
    assert client.post("/v1/scrub", content=body("A"), headers={**AUTH, "Idempotency-Key": "k"}).status_code == 200
    other = client.post("/v1/scrub", content=body("B"), headers={**AUTH, "Idempotency-Key": "k"})
    assert other.status_code == 422 and other.json()["title"] == "Idempotency Key Reused"


def test_keys_belong_to_their_token(db_url):
    app = create_app(POLICY, Store(db_url), {TOKEN, "other-token-55"})
    with TestClient(app) as test_client, freeze_time("2026-11-27"):
        mine = test_client.post("/v1/scrub", content=body("A"), headers={**AUTH, "Idempotency-Key": "same"})
        theirs = test_client.post("/v1/scrub", content=body("B"), headers={
            "Authorization": "Bearer other-token-55", "Idempotency-Key": "same"})
    assert mine.status_code == theirs.status_code == 200
    assert mine.json()["run_id"] != theirs.json()["run_id"]


def test_a_request_in_progress_answers_409_to_its_retry(client, db_url, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    judge = scrub_module.judge_claim

    def slow(*args, **kwargs):
        entered.set()
        release.wait(30)
        return judge(*args, **kwargs)

    monkeypatch.setattr(scrub_module, "judge_claim", slow)
    answers = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", client.post(
        "/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "busy"})))
    first.start()
    assert entered.wait(30)
    retry = client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "busy"})
    release.set()
    first.join(30)
    assert retry.status_code == 409 and retry.headers["Retry-After"] == "1"
    assert answers["first"].status_code == 200 and len(Store(db_url).runs()) == 1


def test_a_request_answered_504_stores_nothing_and_its_retry_runs_afresh(db_url, monkeypatch):
    judge = scrub_module.judge_claim
    delay = {"seconds": 3.0}

    def slow(*args, **kwargs):
        time.sleep(delay["seconds"])
        return judge(*args, **kwargs)

    monkeypatch.setattr(scrub_module, "judge_claim", slow)
    # The limit leaves a loaded machine (CI, two test processes and PostgreSQL on two cores) time to
    # read the body, so the request times out while judging (504), not while receiving (408).
    test_client = make_client(db_url, timeout_seconds=1.0)
    # The retry goes to a server with room to spare: a loaded machine must not make it a second 504.
    # (Apps are built before the clock is frozen: FastAPI cannot build one around freezegun's dates.)
    roomy_client = make_client(db_url)
    with freeze_time("2026-11-27", real_asyncio=True):  # the time limit is measured on the event loop's clock
        late = test_client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "late"})
        assert late.status_code == 504 and "nothing was stored" in late.json()["detail"]
        time.sleep(3.5)  # the abandoned scrub has finished judging by now, and stored nothing
        assert Store(db_url).runs() == []
        delay["seconds"] = 0
        retry = roomy_client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "late"})
    assert retry.status_code == 200 and len(Store(db_url).runs()) == 1


def test_a_chunked_body_is_refused_at_the_limit_not_after_reading_it_all(db_url):
    import asyncio

    app = create_app(POLICY, Store(db_url), {TOKEN}, Limits(max_body_bytes=10_000))
    received, sent = [], []

    async def receive():
        received.append(1)  # 1 MB offered, 1 KB at a time, with no Content-Length
        return {"type": "http.request", "body": b" " * 1024, "more_body": len(received) < 1000}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/scrub", "raw_path": b"/v1/scrub", "query_string": b"", "root_path": "",
             "headers": [(b"authorization", AUTH["Authorization"].encode()), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    with freeze_time("2026-11-27"):
        asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 413
    assert len(received) <= 12  # stopped reading just past 10 KB


def test_docs_are_behind_the_token_and_load_nothing_from_elsewhere(db_url):
    with make_client(db_url) as test_client:
        assert test_client.get("/docs").status_code == 401
        assert test_client.get("/openapi.json").status_code == 401
        page = test_client.get("/docs", headers=AUTH)
        assert page.status_code == 200 and "https://" not in page.text.replace("https://payerpolicy.invalid", "")
        assert test_client.get("/docs/assets/swagger-ui-bundle.js").status_code == 200
        assert test_client.get("/openapi.json", headers=AUTH).json()["info"]["title"] == "payerpolicy"
    with make_client(db_url, public_docs=True) as public:
        assert public.get("/docs").status_code == 200 and public.get("/openapi.json").status_code == 200
        assert public.post("/v1/scrub", content=body()).status_code == 401


def test_failed_tokens_are_throttled_per_address(db_url):
    with make_client(db_url, failed_tokens=5, failed_token_window_seconds=60) as test_client:
        codes = [test_client.post("/v1/scrub", content=body(), headers={"Authorization": f"Bearer guess-{n}"})
                 .status_code for n in range(7)]
        assert codes == [401] * 5 + [429] * 2
        blocked = test_client.post("/v1/scrub", content=body(), headers=AUTH)
        assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "60"


def test_a_busy_store_is_503_with_retry_after_and_no_run(db_url, monkeypatch):
    from engine.store import StoreBusy

    store = Store(db_url)

    def busy(*args, **kwargs):
        raise StoreBusy("the store stayed locked")

    monkeypatch.setattr(store, "record_run", busy)
    with TestClient(create_app(POLICY, store, {TOKEN}), raise_server_exceptions=False) as test_client:
        response = test_client.post("/v1/scrub", content=body(), headers={**AUTH, "Idempotency-Key": "b"})
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert store.runs() == [] and store.claim_request(_scoped("b"), "x", 60) is None  # the key was released


def _scoped(key):
    import hashlib

    return hashlib.sha256(f"{TOKEN}\0{key}".encode()).hexdigest()
