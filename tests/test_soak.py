"""Soak and fuzz: many writers, many parallel requests with client retries, thousands of
hostile inputs. Bounded here; ``make soak`` runs the full counts (PAYERPOLICY_SOAK=1)
and prints its figures for the README's reliability section."""

import concurrent.futures
import http.client
import json
import os
import random
import re
import subprocess
import sys
import time
import warnings

import pytest

from engine.store import Store

from . import fuzzing
from .conftest import ROOT

FULL = os.environ.get("PAYERPOLICY_SOAK") == "1"
REQUESTS = 400 if FULL else 60
FUZZ_INPUTS = 5000 if FULL else 150  # per seed; two seeds
TOKEN = "soak-token-5e1d"


def claim(n: int) -> dict:
    return {"id": f"SOAKCLM{n:05d}", "payer": "commercial", "service_date": "2024-04-01",
            "patient": {"id": f"SOAKMBR{n:05d}"}, "diagnoses": ["F33.1"],
            "rendering_provider": {"npi": "1234567893", "type": "MD"}, "lines": [{"code": "99214"}]}


def post(port: int, body: str, key: str) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/v1/scrub", body=body, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Idempotency-Key": key})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def send_until_answered(port: int, body: str, key: str) -> tuple[list[int], dict]:
    """A client that retries with the same key on 409 (still in progress) and 503 (store busy)."""
    statuses = []
    for _ in range(200):
        status, answer = post(port, body, key)
        statuses.append(status)
        if status not in (409, 503):
            return statuses, answer
        time.sleep(0.05)
    return statuses, {}


def test_parallel_requests_with_retries_store_each_run_once_and_log_no_claim_data(tmp_path):
    from benchmarks.bench_serve import free_port, wait_healthy

    port = free_port()
    db = f"sqlite:///{tmp_path / 'soak.sqlite'}"
    env = dict(os.environ, PAYERPOLICY_TOKENS=TOKEN, PAYERPOLICY_DB=db)
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--workers", "2"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            assert wait_healthy(port, 60), "the server did not start"
            rng = random.Random(20261130)
            bodies = {f"key-{n}": json.dumps([claim(n)]) for n in range(REQUESTS)}
            # Every key is sent twice at once (a client that timed out and retried), in shuffled order.
            sends = list(bodies.items()) * 2
            rng.shuffle(sends)
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(lambda kv: (kv[0], *send_until_answered(port, kv[1], kv[0])), sends))
        finally:
            server.terminate()
            server.wait(timeout=60)
    statuses = [s for _, codes, _ in answers for s in codes]
    assert not [s for s in statuses if s >= 500 and s != 503], sorted(set(statuses))
    assert all(codes[-1] == 200 for _, codes, _ in answers)
    by_key: dict[str, set] = {}
    for key, _, answer in answers:
        by_key.setdefault(key, set()).add(answer["run_id"])
    assert all(len(runs) == 1 for runs in by_key.values())  # the retry got the first answer
    stored = Store(db).runs(limit=10 * REQUESTS)
    assert len(stored) == REQUESTS == len({r.id for r in stored})
    logged = log_path.read_text()
    assert "Traceback" not in logged
    assert not re.search(r"SOAKCLM|SOAKMBR|1234567893|F33\.?1|key-\d", logged)
    print(f"\nsoak: {REQUESTS} keys sent twice each in parallel; statuses {sorted(set(statuses))}; "
          f"{len(stored)} runs stored")


@pytest.mark.parametrize("seed", ["soak-a", "soak-b"])
def test_hostile_inputs_never_crash_hang_or_lose_a_claim(seed, tmp_path, policy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from engine.service import create_app

    client = TestClient(create_app(policy, None, {TOKEN}), raise_server_exceptions=False)
    started = time.monotonic()
    tally = fuzzing.run(FUZZ_INPUTS, seed, tmp_path, client, {"Authorization": f"Bearer {TOKEN}"})
    assert tally.failures == []
    assert sum(tally.inputs.values()) == FUZZ_INPUTS and tally.claims > FUZZ_INPUTS // 2 and tally.invalid > 0
    print(f"\nfuzz {seed}: {tally.inputs} inputs, {tally.claims} claim results ({tally.invalid} invalid), "
          f"slowest input {tally.slowest:.2f} s, {time.monotonic() - started:.0f} s in all")
