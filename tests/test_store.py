"""The store: policy versions, run receipts that replay, and claims kept as history."""

import datetime as dt

import pytest
from sqlmodel import Session, select

from engine.pipeline import replay, scrub_items
from engine.store import ClaimRecord, CodeValueRow, FindingRow, PolicyRule, PolicyVersion, Run, Store, resolve_url

from .conftest import claims, judged

KNOWN = dt.date(2026, 11, 27)


def visit(cid, day="2024-04-01", code="99214", patient="P-1", **extra):
    return dict({"id": cid, "payer": "commercial", "service_date": day, "patient": {"id": patient},
                 "lines": [{"code": code}]}, **extra)


def count(store, model):
    with Session(store.engine) as s:
        return len(list(s.exec(select(model))))


def test_policy_import_is_once_per_digest(policy, db_url):
    store = Store(db_url)
    assert store.import_policy(policy) is True
    assert store.import_policy(policy) is False
    assert count(store, PolicyVersion) == 1
    assert count(store, PolicyRule) == sum(len(layer.rules) for layer in policy.layers.values())
    assert count(store, CodeValueRow) > 50
    assert store.load_policy(policy.digest).model_dump() == policy.model_dump()


def test_policy_import_is_all_or_nothing(policy, db_url, monkeypatch):
    store = Store(db_url)

    class Boom(Exception):
        pass

    original = CodeValueRow.__init__

    def fail(self, *a, **kw):
        raise Boom()

    monkeypatch.setattr(CodeValueRow, "__init__", fail)
    with pytest.raises(Boom):
        store.import_policy(policy)
    monkeypatch.setattr(CodeValueRow, "__init__", original)
    assert count(store, PolicyVersion) == 0 and count(store, PolicyRule) == 0


def test_a_run_is_stored_with_its_receipt_and_replays_identically(policy, db_url):
    store = Store(db_url)
    batch = claims(visit("R-1"), visit("R-2", code="99442", day="2025-03-03"),
                   visit("R-3", patient="P-2", payer="medicare", place_of_service="11",
                         encounter={"modality": "video"}, day="2024-05-01"))
    outcome = scrub_items(batch, policy, KNOWN, store, {"format": "json"})
    run, rows = store.get_run(outcome.run_id)
    assert run.known_on == KNOWN and run.policy_digest == policy.digest and run.input_digest.startswith("sha256:")
    assert (run.claims, run.reject) == (3, 2)
    assert len(rows) == sum(len(c.findings) for c in outcome.result.claims) > 0
    # A later run adds history; the replay must still see the history as it was.
    scrub_items(claims(visit("R-9", day="2024-04-01")), policy, KNOWN, store)
    _, stored, fresh = replay(store, outcome.run_id)
    assert stored == fresh


def test_history_across_runs_finds_the_duplicate(policy, db_url):
    store = Store(db_url)
    scrub_items(claims(visit("H-1")), policy, KNOWN, store)
    second = scrub_items(claims(visit("H-2")), policy, KNOWN, store).result.claims[0]
    assert [f.rule for f in judged(second.findings)] == ["cpt.duplicate-line"]
    assert count(store, ClaimRecord) == 2


def test_rescrubbing_the_same_claim_is_not_its_own_duplicate(policy, db_url):
    store = Store(db_url)
    for _ in range(3):
        result = scrub_items(claims(visit("S-1")), policy, KNOWN, store).result.claims[0]
        assert result.status == "clean"
    # and a different claim later counts the stored one once, not three times
    third = scrub_items(claims(visit("S-2", code="90834"), visit("S-3")), policy, KNOWN, store).result
    assert [f.rule for f in judged(third.claims[1].findings)] == ["cpt.duplicate-line"]


def test_writers_of_one_process_take_turns_instead_of_failing_busy(policy, tmp_path, monkeypatch):
    """The service's request threads share one SQLite file: with no busy wait at all, every
    one of their runs still lands, each exactly once (they queue in the process, not in SQLite)."""
    import threading

    import engine.store as store_module

    monkeypatch.setattr(store_module, "BUSY_SECONDS", 0)  # SQLite's busy handler gives up at once
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    stores = [Store(url) for _ in range(2)]  # two Store objects on one file, as two apps in one process
    stores[0].import_policy(policy)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(15):
                scrub_items(claims(visit(f"T-{n}-{i}", patient=f"P-{n}")), policy, KNOWN, stores[n % 2])
        except BaseException as exc:  # collected: a thread's exception would otherwise be lost
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert count(stores[0], Run) == 120 and count(stores[0], ClaimRecord) == 120


def _write_runs_in_a_process(url: str, prefix: str, runs: int) -> None:
    """A second service worker or a CLI run on the same file: its own process, its own Store."""
    import engine.store as store_module
    from engine.policy.loader import load_policies

    store_module.BUSY_SECONDS = 0  # SQLite's busy handler gives up at once,
    store_module.WRITE_ATTEMPTS = 1  # and the store does not try again
    policy = load_policies()
    store = Store(url)
    for i in range(runs):
        scrub_items(claims(visit(f"{prefix}-{i}", patient=prefix)), policy, KNOWN, store)


def test_writers_of_two_processes_take_turns_instead_of_failing_busy(policy, tmp_path):
    """Two processes on one SQLite file (``serve --workers 2``): with no busy wait in SQLite, every
    run of both lands first time; they queue on the file lock beside the store, which only its
    owner may open."""
    import multiprocessing
    import stat

    path = tmp_path / "store.sqlite"
    url = f"sqlite:///{path}"
    Store(url).import_policy(policy)
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_write_runs_in_a_process, args=(url, f"W{n}", 40)) for n in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(180)
    assert [w.exitcode for w in workers] == [0, 0]
    store = Store(url)
    assert count(store, Run) == 80 and count(store, ClaimRecord) == 80
    lock = tmp_path / "store.sqlite.writer-lock"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_a_store_on_a_file_system_without_locks_still_writes(policy, tmp_path, monkeypatch):
    """Some network mounts refuse file locks: writers then go straight to SQLite, as before."""
    import errno

    import engine.store as store_module

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(store_module.fcntl, "flock", no_locks)
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    scrub_items(claims(visit("L-1")), policy, KNOWN, store)
    assert count(store, Run) == 1


def test_a_served_store_checkpoints_its_log_on_its_own_thread_not_in_a_commit(policy, tmp_path, monkeypatch):
    """The service's store: no commit copies the log into the database file (that made one
    request in a hundred wait); the checkpoint thread does, and stops when the store closes."""
    import shutil
    import sqlite3
    import time

    import engine.store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 0.05)
    path = tmp_path / "store.sqlite"
    store = Store(f"sqlite:///{path}", background_checkpoints=True)
    with store.writer.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    for n in range(3):
        scrub_items(claims(visit(f"C-{n}")), policy, KNOWN, store)

    def runs_in_the_database_file() -> int:
        """What a reader of the database file alone sees: only what was checkpointed."""
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(path, copy)
        try:
            with sqlite3.connect(copy) as db:
                return db.execute("SELECT count(*) FROM run").fetchone()[0]
        except sqlite3.DatabaseError:  # copied mid-checkpoint or before the table reached it
            return -1
        finally:
            copy.unlink()

    deadline = time.monotonic() + 10
    while runs_in_the_database_file() != 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert runs_in_the_database_file() == 3
    thread = store._checkpointer
    store.close()
    assert not thread.is_alive()


def test_under_steady_writes_the_log_is_started_over_and_stays_small(policy, tmp_path, monkeypatch):
    """Passive checkpoints alone never let the log start over while runs keep coming (it grew
    by every run's pages); past its length limit the checkpoint thread restarts it."""
    import engine.store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 0.02)
    monkeypatch.setattr(store_module, "CHECKPOINT_RESTART_FRAMES", 100)
    path = tmp_path / "store.sqlite"
    store = Store(f"sqlite:///{path}", background_checkpoints=True)
    log = tmp_path / "store.sqlite-wal"
    scrub_items(claims(visit("R-0")), policy, KNOWN, store)
    start = log.stat().st_size
    for n in range(1, 201):
        scrub_items(claims(visit(f"R-{n}", patient=f"P-{n}")), policy, KNOWN, store)
    grown = log.stat().st_size - start
    store.close()
    # Without the restart the log grew by 6.5-8.4 MB over these runs; with it, by about 0.15 MB.
    assert grown < 1 << 20, grown
    assert count(Store(f"sqlite:///{path}"), Run) == 201


def test_a_store_of_the_command_line_leaves_checkpoints_to_sqlite(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    with store.writer.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    assert store._checkpointer is None


def test_without_a_store_nothing_is_read_or_written(policy, db_url):
    store = Store(db_url)
    scrub_items(claims(visit("N-1")), policy, KNOWN, store)
    result = scrub_items(claims(visit("N-2")), policy, KNOWN, None)
    assert result.run_id is None and result.result.claims[0].status == "clean"
    assert count(store, Run) == 1


def test_a_failed_run_write_leaves_nothing_half_written(policy, db_url, monkeypatch):
    store = Store(db_url)
    store.import_policy(policy)

    from engine import store as store_module

    real_insert = store_module.insert

    def failing_insert(table):
        if table is ClaimRecord.__table__:  # after the run and its findings were sent, inside the transaction
            raise RuntimeError("disk full")
        return real_insert(table)

    monkeypatch.setattr(store_module, "insert", failing_insert)
    with pytest.raises(RuntimeError):
        scrub_items(claims(visit("F-1", code="99442", day="2025-03-03")), policy, KNOWN, store)
    assert count(store, Run) == 0 and count(store, FindingRow) == 0


def test_store_url_from_flag_then_environment_then_user_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PAYERPOLICY_DB", "sqlite:///from-env.sqlite")
    assert resolve_url("sqlite:///flag.sqlite") == "sqlite:///flag.sqlite"
    assert resolve_url(None) == "sqlite:///from-env.sqlite"
    monkeypatch.delenv("PAYERPOLICY_DB")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'payerpolicy' / 'payerpolicy.sqlite'}"


def test_runs_replay_from_the_command_line(db_url):
    from freezegun import freeze_time
    from typer.testing import CliRunner

    from engine.cli import app

    from .conftest import ROOT

    runner = CliRunner()
    with freeze_time("2026-11-27"):
        runner.invoke(app, ["scrub", str(ROOT / "examples" / "claims.json"), "--db", db_url])
        listing = runner.invoke(app, ["runs", "list", "--db", db_url])
        as_json = runner.invoke(app, ["runs", "list", "--db", db_url, "--format", "json"])
        run_id = Store(db_url).runs()[0].id
        result = runner.invoke(app, ["runs", "replay", run_id, "--db", db_url])
    assert run_id in listing.stdout  # whole, though not on a terminal
    import json

    (run,) = json.loads(as_json.stdout)
    assert run["run"] == run_id and run["claims"] == 6 and run["known_on"] == "2026-11-27"
    assert run["policy_version"].startswith("sha256:")
    assert result.exit_code == 0 and "same" in result.stdout
