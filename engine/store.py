"""The versioned store (SQLModel): policy versions, runs with their receipts and
findings, and claims kept as patient history.

SQLite in the user data directory by default; ``--db`` or ``PAYERPOLICY_DB`` for any
SQLAlchemy URL. Every write is one transaction: all of it lands or none of it does.

Many writers share one store: on SQLite each write transaction takes the write lock at
its start (``BEGIN IMMEDIATE``), waits up to ``BUSY_SECONDS`` for it, and is retried a
few times before the caller sees a ``StoreBusy``; on PostgreSQL serialization failures
are retried the same way. The schema is under Alembic migrations (``engine/migrations``):
a store is upgraded in place when opened, and one written by a newer payerpolicy is
refused. The engine hides statement parameters, so no error text carries claim data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

try:
    import fcntl
except ImportError:  # Windows has no fcntl: there, writers of other processes meet SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import Text, bindparam, event, func, insert, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import defer
from sqlmodel import Column, Field, Session, SQLModel, create_engine, select

from . import clock
from .claims import Claim, InvalidClaim
from .findings import Finding
from .history import History, in_person
from .policy.model import PolicySet
from .reference import tables as _reference_tables  # noqa: F401  (their tables are part of the schema)
from .store_location import ENV_DB, default_url, resolve_url, sqlite_file as _sqlite_file  # noqa: F401



class PolicyVersion(SQLModel, table=True):
    digest: str = Field(primary_key=True)
    imported_at: dt.datetime
    source: str
    rule_count: int
    content: str = Field(sa_column=Column(Text))


class PolicyRule(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    version_digest: str = Field(foreign_key="policyversion.digest", index=True)
    layer: str
    rule_id: str = Field(index=True)
    published: dt.date
    effective_from: dt.date
    effective_to: dt.date | None
    kind: str  # finding or derive
    severity: str | None
    confidence: str
    source: str
    title: str


class CodeValueRow(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    version_digest: str = Field(foreign_key="policyversion.digest", index=True)
    layer: str
    code: str = Field(index=True)
    published: dt.date
    effective_from: dt.date
    effective_to: dt.date | None
    attrs: str = Field(sa_column=Column(Text))
    source: str
    confidence: str


class Run(SQLModel, table=True):
    id: str = Field(primary_key=True)
    started_at: dt.datetime
    policy_digest: str = Field(foreign_key="policyversion.digest")
    known_on: dt.date
    input_digest: str
    options: str
    history_upto: int
    claims: int
    clean: int
    review: int
    reject: int
    invalid: int
    input: str = Field(sa_column=Column(Text))
    # Where the input came from, when it was too large to keep (replay re-reads it and checks
    # input_digest); a run is visible to runs, history and replay only once complete.
    sources: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    complete: bool = Field(default=True, sa_column_kwargs={"server_default": "1"})


class FindingRow(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    claim_position: int
    claim_id: str | None
    line: int
    rule: str = Field(index=True)
    severity: str
    carc: str | None
    body: str = Field(sa_column=Column(Text))


class ClaimRecord(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="run.id", index=True)
    claim_id: str = Field(index=True)
    patient_id: str | None = Field(default=None, index=True)
    payer: str
    service_date: dt.date
    status: str
    body: str = Field(sa_column=Column(Text))


# Built once: the service reads these on every request it stores (building a statement per
# request cost more than running it).
_NO_LIMIT = 2**62
_MAX_RECORD = select(func.coalesce(func.max(ClaimRecord.__table__.c.id), 0))
_RECORDS = ClaimRecord.__table__.c
_LATEST = (select(_RECORDS.id, _RECORDS.claim_id, _RECORDS.patient_id, _RECORDS.body)
           .join(Run.__table__, Run.__table__.c.id == _RECORDS.run_id)
           .where(Run.__table__.c.complete == True,  # noqa: E712
                  _RECORDS.patient_id.in_(bindparam("patients", expanding=True)),
                  _RECORDS.id <= bindparam("upto"))
           .order_by(_RECORDS.id))


class StoredClaim(SQLModel, table=True):
    """A claim kept for denial analysis: one row per claim id, the latest version wins."""

    claim_id: str = Field(primary_key=True)
    payer: str
    service_date: dt.date
    body: str = Field(sa_column=Column(Text))


class StoredRemit(SQLModel, table=True):
    """A remitted claim (835 CLP or CSV rows): one row per claim, adjudication date and payer claim number."""

    key: str = Field(primary_key=True)
    claim_id: str = Field(index=True)
    production_date: dt.date | None
    body: str = Field(sa_column=Column(Text))


class IdempotentRequest(SQLModel, table=True):
    """An HTTP request sent with an Idempotency-Key: in progress while response is None."""

    key: str = Field(primary_key=True)  # a digest of the client's token and its key, never the key itself
    request_digest: str
    started_at: dt.datetime
    run_id: str | None = None
    response: str | None = Field(default=None, sa_column=Column(Text))


# The newest schema revision this code knows, and every one before it (see engine/migrations).
SCHEMA_REVISIONS = ("0001", "0002", "0003", "0004")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]

BUSY_SECONDS = 30
WRITER_WAIT_SECONDS = BUSY_SECONDS  # see _WriterQueue
WRITE_ATTEMPTS = 4

T = TypeVar("T")


class StoreError(Exception):
    """The store cannot be used; the message is for people and carries no claim data."""


class StoreBusy(StoreError):
    """Other writers held the store for longer than this one would wait: nothing was written."""


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer commits, and NORMAL syncs at checkpoints rather
    # than at every commit: a committed run survives a crash of the process, as before.
    # Transactions are begun by _sqlite_begin, not by the driver (isolation_level None).
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_SECONDS * 1000}")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # A writer that began by reading could not take the lock later without failing at once
    # (SQLITE_BUSY, no wait) when another writer got there first: take it at the start.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")


class _WriterQueue:
    """Writers of one SQLite file take turns: threads of this process on a lock, processes on an
    advisory lock on a file beside the store (``<store>.writer-lock``).

    SQLite lets one writer in at a time, and a writer kept out waits in its busy handler, which
    sleeps and polls with sleeps growing to 100 ms: under eight concurrent requests some waited a
    second in one process, and with two service workers on one file the tail doubled. Here a
    thread waits on a lock and goes in as soon as the writer before it commits, and a process
    polls the file lock every 2 ms at most. If the file lock cannot be had within
    ``WRITER_WAIT_SECONDS`` (a writer elsewhere is stuck) or the file cannot be made, the writer
    goes on to SQLite, whose own busy handler then decides.
    """

    def __init__(self, path: Path):
        self._threads = threading.RLock()
        self._path = path.with_name(path.name + ".writer-lock")
        self._depth = 0
        self._fd: int | None = None
        self._pid: int | None = None
        self._held = False

    def __enter__(self) -> "_WriterQueue":
        self._threads.acquire()
        self._depth += 1
        if self._depth == 1:
            try:
                self._held = self._take_file()
            except BaseException:
                self._depth -= 1
                self._threads.release()
                raise
        return self

    def __exit__(self, *_exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._held:
            self._held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def _file(self) -> int | None:
        if fcntl is None:
            return None
        if self._pid != os.getpid():  # a forked child must not share its parent's lock
            self._pid = os.getpid()
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError:
                self._fd = None
        return self._fd

    def _take_file(self) -> bool:
        fd = self._file()
        if fd is None:
            return False
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
            except OSError:  # a file system without locks (some network mounts): SQLite decides
                return False


_WRITER_QUEUES: dict[str, _WriterQueue] = {}
_WRITER_QUEUES_GUARD = threading.Lock()


def _writer_lock(path: Path | None) -> Any:
    """The writer queue of one SQLite file, shared by every Store on it in this process.
    PostgreSQL takes concurrent writers itself: no queue."""
    if path is None:
        return nullcontext()
    path = path.resolve()
    with _WRITER_QUEUES_GUARD:
        return _WRITER_QUEUES.setdefault(str(path), _WriterQueue(path))


def _is_busy(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower():
        return True
    return getattr(exc.orig, "sqlstate", None) in ("40001", "40P01")  # PostgreSQL: serialization, deadlock


def _create_private(path: Path) -> None:
    """A new store file readable and writable by its owner only: it holds patient data."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:  # another process created it first
        pass


def _safe_reason(exc: DBAPIError) -> str:
    """The driver's own message (never the statement or its parameters), first line only."""
    return str(exc.orig).splitlines()[0][:200] if exc.orig is not None else type(exc).__name__


def _revision(connection: Any) -> str | None:
    """The schema revision a store is at: None for an empty store; '0001' or '0002' for one
    made before the schema was under migrations (by whether runs are written in chunks)."""
    from sqlalchemy import inspect

    tables = _tables(connection)
    if "alembic_version" in tables:
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
        if row is not None:
            return row[0]
    if "run" not in tables:
        return None
    columns = {c["name"] for c in inspect(connection).get_columns("run")}
    return "0002" if "complete" in columns else "0001"


def _refuse_newer(revision: str | None) -> None:
    if revision is not None and revision not in SCHEMA_REVISIONS:
        raise StoreError(f"the store's schema (revision {revision}) is newer than this payerpolicy knows "
                         f"(up to {SCHEMA_HEAD}): upgrade payerpolicy to use it")


def _migrate(connection: Any, current: str | None) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    config.attributes["connection"] = connection
    if current is not None and "alembic_version" not in _tables(connection):
        command.stamp(config, current)  # a store made before migrations: record where it stands
    command.upgrade(config, "head")


def _tables(connection: Any) -> set[str]:
    from sqlalchemy import inspect

    return set(inspect(connection).get_table_names())


# A run keeps its input as text below this many claims; above it, the digest and the paths.
KEEP_INPUT_CLAIMS = 5000


def _no_autocheckpoint(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class _Checkpointer(threading.Thread):
    """WAL checkpoints on a thread of their own, for a process that commits small transactions
    all day (the service).

    By default SQLite checkpoints inside whichever commit takes the log past 1,000 pages, and
    that commit waits for the copy and the disk: in one process storing 1,400 single-claim runs,
    p99 14-18 ms and a maximum of 20-27 ms (2026-12-01). Here, every ``every`` seconds, a
    passive checkpoint copies what it can into the database file without waiting for anyone.
    A passive checkpoint alone never lets the log start over while requests keep writing (it
    grew past 90 MB in that run), so once the log holds more than ``restart_frames`` pages the
    thread takes its turn in the writer queue, as a writer would, and restarts it: what is left
    to copy then is what came since the passive pass. Measured the same way: p99 2.4-3.6 ms,
    maximum 12-19 ms, the log file's size bounded by what a few intervals write. A checkpoint
    that finds another one running (a second service worker's) skips its turn. Processes that
    write a run at a time (the command line) keep SQLite's own checkpoints.
    """

    def __init__(self, path: Path, every: float, restart_frames: int, queue: Any):
        super().__init__(name="payerpolicy-wal-checkpoint", daemon=True)
        self._path, self._every, self._restart_frames, self._queue = path, every, restart_frames, queue
        self._done = threading.Event()

    def run(self) -> None:
        # A reader still on the log holds a restart back: wait 0.1 s for it at most, holding
        # the writer queue, and try again next turn.
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=0.1)
        try:
            while True:
                stopping = self._done.wait(self._every)
                self.turn(connection, final=stopping)
                if stopping:
                    return
        finally:
            connection.close()

    def turn(self, connection: sqlite3.Connection, final: bool = False) -> None:
        try:
            _busy, frames, _copied = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if final or frames > self._restart_frames:
                with self._queue:
                    connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except sqlite3.Error:
            pass  # busy with another checkpoint or a reader: the next turn catches up

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


CHECKPOINT_SECONDS = 0.5
CHECKPOINT_RESTART_FRAMES = 1000  # pages in the log, as SQLite's own checkpoints


class Store:
    def __init__(self, url: str | None = None, *, background_checkpoints: bool = False):
        """``background_checkpoints``: for a long-lived process, checkpoint a SQLite store's log on
        a thread of its own rather than inside a commit (see ``_Checkpointer``); call ``close``."""
        self.url = resolve_url(url)
        path = _sqlite_file(self.url)
        if path is not None:
            _create_private(path)
        # Parameters are hidden from every error message: they are claim data.
        self.engine = create_engine(self.url, hide_parameters=True)
        if self.engine.dialect.name == "sqlite":
            # Readers and writers in separate pools: readers begin plainly and never block a
            # writer; writers begin by taking the write lock.
            self.writer = create_engine(self.url, hide_parameters=True)
            for engine, begin in ((self.engine, _sqlite_begin), (self.writer, _sqlite_begin_immediate)):
                event.listen(engine, "connect", _sqlite_pragmas)
                event.listen(engine, "begin", begin)
            if background_checkpoints:
                event.listen(self.writer, "connect", _no_autocheckpoint)
        else:
            self.writer = self.engine
        self._write_lock = _writer_lock(path)
        try:
            self._upgrade_schema()
        except OperationalError as exc:
            raise StoreError(f"cannot open the store ({type(exc.orig).__name__}): "
                             f"{_safe_reason(exc)}") from None
        self._imported: set[str] = set()
        self._checkpointer: _Checkpointer | None = None
        if background_checkpoints and path is not None:
            self._checkpointer = _Checkpointer(path, CHECKPOINT_SECONDS, CHECKPOINT_RESTART_FRAMES, self._write_lock)
            self._checkpointer.start()

    def close(self) -> None:
        """Stop the checkpoint thread (after a last checkpoint) and close the pools' connections."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()
        if self.writer is not self.engine:
            self.writer.dispose()

    # ---- schema --------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        with self.engine.connect() as connection:
            return _revision(connection)

    def _upgrade_schema(self) -> None:
        with self.engine.connect() as connection:
            current = _revision(connection)
        if current == SCHEMA_HEAD:
            return
        _refuse_newer(current)
        with self._migration_transaction() as connection:
            current = _revision(connection)  # another process may have upgraded it meanwhile
            if current == SCHEMA_HEAD:
                return
            _refuse_newer(current)
            _migrate(connection, current)

    @contextmanager
    def _migration_transaction(self) -> Iterator[Any]:
        """One transaction that no other process can migrate beside: DDL is transactional on
        both SQLite and PostgreSQL, so a failed upgrade leaves the store as it was."""
        with self.writer.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(7271845)"))
            yield connection

    def _write(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one write transaction and commit it, retrying when other writers hold the store."""
        def once() -> T:
            with Session(self.writer) as session:
                value = work(session)
                session.commit()
                return value
        return self._retried(once)

    def _write_rows(self, work: Callable[[Any], T]) -> T:
        """``_write`` on a Core connection, without an ORM session: for the rows the service writes
        on every request it stores."""
        def once() -> T:
            with self.writer.begin() as connection:
                return work(connection)
        return self._retried(once)

    def _retried(self, once: Callable[[], T]) -> T:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self._write_lock:
                    return once()
            except IntegrityError:
                raise
            except DBAPIError as exc:
                if not _is_busy(exc):
                    raise StoreError(f"the store refused a write ({type(exc.orig).__name__}): "
                                     f"{_safe_reason(exc)}") from None
                if attempt == WRITE_ATTEMPTS - 1:
                    raise StoreBusy(f"the store stayed locked by other writers for over "
                                    f"{BUSY_SECONDS * WRITE_ATTEMPTS} s; nothing was written - try again") from None
                time.sleep(0.05 * 2 ** attempt)
        raise AssertionError("unreachable")

    # ---- policy versions ---------------------------------------------------------

    def import_policy(self, policy: PolicySet) -> bool:
        """Store a policy version once; False when that digest is already stored."""
        if policy.digest in self._imported:
            return False

        def write(session: Session) -> bool:
            if session.get(PolicyVersion, policy.digest) is not None:
                return False
            rules = [r for layer in policy.layers.values() for r in layer.rules]
            session.add(PolicyVersion(digest=policy.digest, imported_at=clock.now(), source=policy.root,
                                      rule_count=len(rules), content=policy.model_dump_json()))
            session.flush()
            for r in rules:
                session.add(PolicyRule(
                    version_digest=policy.digest, layer=r.layer, rule_id=r.rule_id, published=r.published,
                    effective_from=r.effective.from_, effective_to=r.effective.to,
                    kind="derive" if r.derive else "finding", severity=r.then.severity if r.then else None,
                    confidence=r.confidence, source=r.source, title=r.title))
            for layer in policy.layers.values():
                for revisions in layer.codes.values():
                    for rev in revisions:
                        for value in rev.values:
                            session.add(CodeValueRow(
                                version_digest=policy.digest, layer=layer.name, code=rev.code,
                                published=rev.published, effective_from=value.effective.from_,
                                effective_to=value.effective.to, attrs=json.dumps(value.attrs, sort_keys=True),
                                source=value.source, confidence=value.confidence))
            return True

        try:
            imported = self._write(write)
        except IntegrityError:  # another process imported the same version first (PostgreSQL): it is stored
            imported = False
        self._imported.add(policy.digest)
        return imported

    def policy_versions(self) -> list[PolicyVersion]:
        """Every stored version, oldest first, without its content (``load_policy`` reads one)."""
        with Session(self.engine) as session:
            return list(session.exec(select(PolicyVersion).options(defer(PolicyVersion.content))
                                     .order_by(PolicyVersion.imported_at)))

    def load_policy(self, digest: str) -> PolicySet:
        with Session(self.engine) as session:
            row = session.get(PolicyVersion, digest)
            if row is None:
                raise KeyError(f"no stored policy version {digest}")
            return PolicySet.model_validate_json(row.content)

    # ---- history -----------------------------------------------------------------

    def _latest_records(self, connection: Any, patients: set[str], upto: int | None) -> list[tuple]:
        """(id, claim id, patient id, body) of each claim's latest complete record, oldest first."""
        if not patients:
            return []
        latest: dict[str, tuple] = {}
        rows = connection.execute(_LATEST, {"patients": sorted(patients), "upto": _NO_LIMIT if upto is None else upto})
        for row in rows:
            latest[row[1]] = tuple(row)  # a re-scrubbed claim counts once, as last seen
        return sorted(latest.values())

    def history_for(self, claims: Iterable[Claim | InvalidClaim], family, upto: int | None = None) -> History:
        """Stored services of the batch's patients; claims in the batch are not their own history."""
        batch = [c for c in claims if isinstance(c, Claim)]
        patients = sorted({c.patient.id for c in batch if c.patient and c.patient.id})
        ids = {c.id for c in batch}
        return History.from_rows(self.history_rows(patients, upto, lambda found: set(found) & ids, family))

    def history_rows(self, patients: list[str], upto: int | None, in_batch, family) -> list[tuple]:
        """Stored services of these patients as (patient, day ordinal, seq, line, code, family, in person, units,
        days) rows.

        ``in_batch`` names which claim ids belong to the batch being judged: those are
        judged now, so they are not their own history.
        """
        rows: list[tuple] = []
        with self.engine.connect() as connection:
            records = self._latest_records(connection, set(patients), upto)
        batch = in_batch(sorted({claim_id for _, claim_id, _, _ in records})) if records else set()
        for record_id, claim_id, patient_id, body in records:
            if claim_id in batch:
                continue
            claim = Claim.model_validate_json(body)
            for number, line in enumerate(claim.lines, 1):
                day = claim.line_date(line)
                rows.append((patient_id, day.toordinal(), record_id - 10**12, number, line.code,
                             family(claim, day, line.code), in_person(claim, line), line.units,
                             claim.line_days(line)))
        return rows

    def max_claim_record(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(_MAX_RECORD).scalar_one()

    # ---- runs --------------------------------------------------------------------

    def record_run(self, result, items: list[Claim | InvalidClaim], raw_input: list[Any],
                   options: dict[str, Any], history_upto: int,
                   attach: Callable[[Any, str], None] | None = None) -> str:
        """Store a run's receipt, its findings and its claims, in one transaction.

        ``attach`` adds rows of the caller's to the same transaction (the service's
        idempotency record), given the Core connection and the run id, so both land or neither does.
        """
        run_id = uuid.uuid4().hex
        text = json.dumps(raw_input, sort_keys=True, default=str)
        summary = result.summary
        findings = [{"run_id": run_id, "claim_position": c.position, "claim_id": c.id, "line": f.line, "rule": f.rule,
                     "severity": f.severity, "carc": f.carc, "body": json.dumps(f.as_dict())}
                    for c in result.claims for f in c.findings]
        claims = [{"run_id": run_id, "claim_id": item.id, "patient_id": item.patient.id if item.patient else None,
                   "payer": item.payer, "service_date": item.service_date, "status": c.status,
                   "body": item.model_dump_json()}
                  for item, c in zip(items, result.claims) if isinstance(item, Claim)]

        run = {"id": run_id, "started_at": clock.now(), "policy_digest": result.policy_version,
               "known_on": result.known_on, "input_digest": "sha256:" + hashlib.sha256(text.encode()).hexdigest(),
               "options": json.dumps(options, sort_keys=True), "history_upto": history_upto,
               "claims": summary["claims"], "clean": summary["clean"], "review": summary["review"],
               "reject": summary["reject"], "invalid": summary["invalid"], "input": text, "sources": "",
               "complete": True}

        def write(connection: Any) -> None:
            # Core inserts, not ORM objects: a run's rows are written in one statement a table.
            connection.execute(insert(Run.__table__), [run])
            if findings:
                connection.execute(insert(FindingRow.__table__), findings)
            if claims:
                connection.execute(insert(ClaimRecord.__table__), claims)
            if attach is not None:
                attach(connection, run_id)

        self._write_rows(write)
        return run_id

    # ---- denial history ------------------------------------------------------------

    def add_denial_history(self, claims: Iterable[Claim], remits: Any) -> tuple[int, int]:
        """Keep claims and remits (a ``RemitIndex``); the same file twice adds nothing.

        Written a few thousand rows per transaction, so a year is never held at once.
        Returns (new claims, new remits).
        """
        counts = [0, 0]

        def claims_batch(batch: list[Claim]) -> Callable[[Session], int]:
            def write(session: Session) -> int:
                new = 0
                for claim in batch:
                    row = session.get(StoredClaim, claim.id)
                    body = claim.model_dump_json()
                    if row is None:
                        new += 1
                        session.add(StoredClaim(claim_id=claim.id, payer=claim.payer,
                                                service_date=claim.service_date, body=body))
                    else:
                        row.body, row.payer, row.service_date = body, claim.payer, claim.service_date
                return new
            return write

        def remits_batch(batch: list[tuple[Any, Any]]) -> Callable[[Session], int]:
            def write(session: Session) -> int:
                new = 0
                for rc, day in batch:
                    key = f"{rc.claim_id}|{day}|{rc.payer_claim_number or ''}|{rc.status}"
                    if session.get(StoredRemit, key) is None:
                        new += 1
                        session.add(StoredRemit(key=key, claim_id=rc.claim_id, production_date=day,
                                                body=rc.model_dump_json()))
                return new
            return write

        for batch in _batches(claims, 2000):
            counts[0] += self._write(claims_batch(batch))
        for batch in _batches(remits.all(), 2000):
            counts[1] += self._write(remits_batch(batch))
        return counts[0], counts[1]

    def denial_remits(self) -> Any:
        """Every kept remit, in an index on disk (see ``denials.RemitIndex``)."""
        from .denials import RemitIndex
        from .x12.remit835 import RemitClaim, Remittance

        index = RemitIndex()
        with Session(self.engine) as session:
            for r in session.exec(select(StoredRemit).order_by(StoredRemit.key).execution_options(yield_per=2000)):
                index.add(Remittance(production_date=r.production_date,
                                     claims=[RemitClaim.model_validate_json(r.body)]))
        return index

    def denial_claims(self) -> Iterable[Claim]:
        """Every kept claim, read a few hundred rows at a time."""
        with Session(self.engine) as session:
            for row in session.exec(select(StoredClaim.body).order_by(StoredClaim.claim_id).execution_options(
                    yield_per=500)):
                yield Claim.model_validate_json(row)

    def denial_claim_count(self) -> int:
        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(StoredClaim)).one()

    def get_run(self, run_id: str) -> tuple[Run, list[FindingRow]]:
        with Session(self.engine) as session:
            run = session.get(Run, run_id)
            if run is None or not run.complete:
                raise KeyError(f"no stored run {run_id}")
            rows = list(session.exec(select(FindingRow).where(FindingRow.run_id == run_id).order_by(FindingRow.id)))
            return run, rows

    def runs(self, limit: int = 20) -> list[Run]:
        with Session(self.engine) as session:
            return list(session.exec(select(Run).where(Run.complete == True)  # noqa: E712
                                     .order_by(Run.started_at.desc()).limit(limit)))

    # ---- runs written in chunks ------------------------------------------------------

    def begin_run(self, policy_digest: str, known_on: dt.date, options: dict[str, Any], history_upto: int,
                  sources: list[str]) -> str:
        """An incomplete run: invisible to runs, history and replay until finish_run."""
        run_id = uuid.uuid4().hex
        self._write(lambda session: session.add(Run(
            id=run_id, started_at=clock.now(), policy_digest=policy_digest, known_on=known_on, input_digest="",
            options=json.dumps(options, sort_keys=True), history_upto=history_upto, claims=0, clean=0, review=0,
            reject=0, invalid=0, input="", sources=json.dumps(sources), complete=False)))
        return run_id

    def add_records(self, run_id: str, records: list[dict]) -> None:
        """One chunk of a run's results: its findings and the claims kept as history."""
        findings = [{"run_id": run_id, "claim_position": r["position"], "claim_id": r["result"]["id"], "line": f["line"],
                     "rule": f["rule"], "severity": f["severity"], "carc": f["carc"], "body": json.dumps(f)}
                    for r in records for f in r["result"].get("findings", ())]
        claims = [{"run_id": run_id, "claim_id": r["result"]["id"], "patient_id": r["patient"], "payer": r["payer"],
                   "service_date": dt.date.fromisoformat(r["service_date"]), "status": r["result"]["status"],
                   "body": r["body"]} for r in records if "body" in r]

        def write(session: Session) -> None:
            if findings:
                session.execute(insert(FindingRow), findings)
            if claims:
                session.execute(insert(ClaimRecord), claims)

        self._write(write)

    def finish_run(self, run_id: str, summary: dict[str, int], input_digest: str, input_text: str | None) -> None:
        def write(session: Session) -> None:
            run = session.get(Run, run_id)
            run.input_digest = input_digest
            run.input = input_text or ""
            for key in ("claims", "clean", "review", "reject", "invalid"):
                setattr(run, key, summary[key])
            run.complete = True
            session.add(run)

        self._write(write)

    def abandon_run(self, run_id: str) -> None:
        """Remove what a failed run wrote (a killed one is simply never completed)."""
        from sqlalchemy import delete

        def write(session: Session) -> None:
            session.exec(delete(FindingRow).where(FindingRow.run_id == run_id))
            session.exec(delete(ClaimRecord).where(ClaimRecord.run_id == run_id))
            session.exec(delete(Run).where(Run.id == run_id))

        self._write(write)

    # ---- idempotent requests ---------------------------------------------------------

    def claim_request(self, key: str, request_digest: str, stale_after: float) -> IdempotentRequest | None:
        """Take an idempotency key for a new request; the existing record when the key is taken.

        A record left in progress for over ``stale_after`` seconds (its server died) is taken over.
        """
        def write(session: Session) -> IdempotentRequest | None:
            row = session.get(IdempotentRequest, key)
            now = clock.now()
            if row is not None and (row.response is not None or row.request_digest != request_digest
                                    or (now - row.started_at).total_seconds() < stale_after):
                session.expunge(row)
                return row
            if row is not None:
                session.delete(row)
                session.flush()
            session.add(IdempotentRequest(key=key, request_digest=request_digest, started_at=now))
            return None

        try:
            return self._write(write)
        except IntegrityError:  # taken by a concurrent request this instant (PostgreSQL)
            return IdempotentRequest(key=key, request_digest=request_digest, started_at=clock.now())

    @staticmethod
    def answer_request(key: str, request_digest: str, respond: Callable[[str], str]) -> Callable[[Any, str], None]:
        """An ``attach`` for record_run: the answer (made from the run id) is stored with the run."""
        def attach(connection: Any, run_id: str) -> None:
            requests = IdempotentRequest.__table__
            answer = {"run_id": run_id, "response": respond(run_id)}
            updated = connection.execute(update(requests).where(requests.c.key == key).values(**answer))
            if updated.rowcount == 0:  # its in-progress row is gone (taken as stale, then released)
                connection.execute(insert(requests).values(key=key, request_digest=request_digest,
                                                           started_at=clock.now(), **answer))
        return attach

    def release_request(self, key: str) -> None:
        """Forget a key whose request stored nothing (it failed or timed out): a retry runs afresh."""
        from sqlalchemy import delete

        self._write(lambda session: session.exec(delete(IdempotentRequest).where(
            IdempotentRequest.key == key, IdempotentRequest.response == None)))  # noqa: E711


def _batches(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def stored_findings(rows: list[FindingRow]) -> list[tuple[int, dict[str, Any]]]:
    return [(r.claim_position, json.loads(r.body)) for r in rows]


def finding_key(position: int, finding: Finding) -> tuple[int, dict[str, Any]]:
    return position, finding.as_dict()
