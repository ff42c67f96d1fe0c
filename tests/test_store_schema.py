"""The store's schema under migrations, its file permissions, and writers sharing it."""

import datetime as dt
import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine import store as store_module
from engine.pipeline import scrub_items
from engine.store import SCHEMA_HEAD, SCHEMA_REVISIONS, SQLModel, Store, StoreBusy, StoreError

from .conftest import ROOT, claims, judged

KNOWN = dt.date(2026, 11, 27)

# The tables of the first release, as its create_all made them (before the schema had migrations).
FIRST_RELEASE = """
CREATE TABLE policyversion (digest VARCHAR NOT NULL, imported_at DATETIME NOT NULL, source VARCHAR NOT NULL,
  rule_count INTEGER NOT NULL, content TEXT, PRIMARY KEY (digest));
CREATE TABLE storedclaim (claim_id VARCHAR NOT NULL, payer VARCHAR NOT NULL, service_date DATE NOT NULL, body TEXT,
  PRIMARY KEY (claim_id));
CREATE TABLE storedremit ("key" VARCHAR NOT NULL, claim_id VARCHAR NOT NULL, production_date DATE, body TEXT,
  PRIMARY KEY ("key"));
CREATE TABLE codevaluerow (id INTEGER NOT NULL, version_digest VARCHAR NOT NULL, layer VARCHAR NOT NULL,
  code VARCHAR NOT NULL, published DATE NOT NULL, effective_from DATE NOT NULL, effective_to DATE, attrs TEXT,
  source VARCHAR NOT NULL, confidence VARCHAR NOT NULL, PRIMARY KEY (id));
CREATE TABLE policyrule (id INTEGER NOT NULL, version_digest VARCHAR NOT NULL, layer VARCHAR NOT NULL,
  rule_id VARCHAR NOT NULL, published DATE NOT NULL, effective_from DATE NOT NULL, effective_to DATE,
  kind VARCHAR NOT NULL, severity VARCHAR, confidence VARCHAR NOT NULL, source VARCHAR NOT NULL,
  title VARCHAR NOT NULL, PRIMARY KEY (id));
CREATE TABLE run (id VARCHAR NOT NULL, started_at DATETIME NOT NULL, policy_digest VARCHAR NOT NULL,
  known_on DATE NOT NULL, input_digest VARCHAR NOT NULL, options VARCHAR NOT NULL, history_upto INTEGER NOT NULL,
  claims INTEGER NOT NULL, clean INTEGER NOT NULL, review INTEGER NOT NULL, reject INTEGER NOT NULL,
  invalid INTEGER NOT NULL, input TEXT, PRIMARY KEY (id));
CREATE TABLE claimrecord (id INTEGER NOT NULL, run_id VARCHAR NOT NULL, claim_id VARCHAR NOT NULL,
  patient_id VARCHAR, payer VARCHAR NOT NULL, service_date DATE NOT NULL, status VARCHAR NOT NULL, body TEXT,
  PRIMARY KEY (id));
CREATE TABLE findingrow (id INTEGER NOT NULL, run_id VARCHAR NOT NULL, claim_position INTEGER NOT NULL,
  claim_id VARCHAR, line INTEGER NOT NULL, rule VARCHAR NOT NULL, severity VARCHAR NOT NULL, carc VARCHAR,
  body TEXT, PRIMARY KEY (id));
"""


def visit(cid, patient="P-1", day="2024-04-01", code="99214"):
    return {"id": cid, "payer": "commercial", "service_date": day, "patient": {"id": patient},
            "lines": [{"code": code}]}


def test_the_migrations_make_exactly_the_models_schema(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    store = Store(db_url)
    assert store.schema_revision() == SCHEMA_HEAD
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []
    config = Config()
    config.set_main_option("script_location", str(Path(store_module.__file__).with_name("migrations")))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_current_head() == SCHEMA_HEAD
    assert sorted(r.revision for r in scripts.walk_revisions()) == sorted(SCHEMA_REVISIONS)


def test_a_store_from_the_first_release_is_upgraded_in_place_and_keeps_its_runs(tmp_path, policy):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(FIRST_RELEASE)
    old.execute("INSERT INTO policyversion VALUES ('sha256:old', '2025-01-01 00:00:00', 'policies', 0, '{}')")
    old.execute("INSERT INTO run VALUES ('r1', '2025-01-02 00:00:00', 'sha256:old', '2025-01-02', 'sha256:x', '{}',"
                " 0, 1, 1, 0, 0, 0, '[]')")
    old.commit()
    old.close()
    store = Store(f"sqlite:///{path}")
    assert store.schema_revision() == SCHEMA_HEAD
    (run,) = store.runs()
    assert (run.id, run.complete, run.sources) == ("r1", True, "")
    # And it works as a store of today: a run written in chunks, an idempotent request.
    outcome = scrub_items(claims(visit("U-1")), policy, KNOWN, store)
    assert {r.id for r in store.runs()} == {"r1", outcome.run_id}
    assert store.claim_request("k", "d", 60) is None


def test_a_store_newer_than_the_code_is_refused_with_a_clear_message(db_url):
    store = Store(db_url)
    with store.writer.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match=r"revision 9999\) is newer than this payerpolicy knows"):
        Store(db_url)


def test_the_command_line_refuses_a_newer_store_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    store = Store(url)
    with store.writer.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    done = subprocess.run([sys.executable, "-m", "engine.cli", "runs", "list", "--db", url],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("store: the store's schema (revision 9999)")
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1  # one line, not wrapped


def test_a_new_store_file_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "private" / "store.sqlite"
    old_umask = os.umask(0o022)
    try:
        Store(f"sqlite:///{path}")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_write_blocked_past_every_retry_is_store_busy_and_writes_nothing(tmp_path, policy, monkeypatch):
    monkeypatch.setattr(store_module, "BUSY_SECONDS", 0)
    url = f"sqlite:///{tmp_path / 'busy.sqlite'}"
    store = Store(url)
    store.import_policy(policy)
    blocker = sqlite3.connect(tmp_path / "busy.sqlite", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        busy = Store(url)
        with pytest.raises(StoreBusy) as caught:
            scrub_items(claims(visit("B-1", patient="Jane-Doe-4411")), policy, KNOWN, busy)
        assert "Jane-Doe-4411" not in str(caught.value) and "B-1" not in str(caught.value)
        assert caught.value.__cause__ is None and caught.value.__suppress_context__
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert store.runs() == []


def _scrub_process(db: str, source: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "scrub", str(source), "--db", db, "--format", "json",
                             "-o", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_eight_command_line_writers_on_one_new_store_lose_no_run(tmp_path):
    """Eight `scrub` processes start together on a store nobody has made yet: each makes or
    upgrades it, imports the policy and writes its run; every run is stored once."""
    db = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    batches = []
    for n in range(8):
        source = tmp_path / f"batch-{n}.json"
        source.write_text(json.dumps([visit(f"W{n}-{i}", patient=f"P{n}-{i}") for i in range(40)]))
        batches.append(_scrub_process(db, source, tmp_path / f"out-{n}.json"))
    results = [(p.wait(timeout=600), p.stderr.read()) for p in batches]
    assert all(code in (0, 1) for code, _ in results), [e for _, e in results]  # 0 or 1: judged, not a crash
    assert all("Traceback" not in e for _, e in results)
    assert not any(f"W{n}-" in e or f"P{n}-" in e for n in range(8) for _, e in results)  # no claim or patient ids
    store = Store(db)
    runs = store.runs(limit=100)
    assert len(runs) == 8 and all(r.claims == 40 for r in runs)
    assert len(store.policy_versions()) == 1


def test_postgresql_store_url_works_end_to_end_when_a_server_is_here(postgres_url, policy):
    store = Store(postgres_url)
    assert store.schema_revision() == SCHEMA_HEAD
    first = scrub_items(claims(visit("PG-1")), policy, KNOWN, store)
    second = scrub_items(claims(visit("PG-2")), policy, KNOWN, store)
    assert [f.rule for f in judged(second.result.claims[0].findings)] == ["cpt.duplicate-line"]
    assert {r.id for r in store.runs()} == {first.run_id, second.run_id}
    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM run")).scalar() == 2
    engine.dispose()
