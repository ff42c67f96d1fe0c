"""The read side of imported releases, for the facts step: a local SQLite file, queried by index.

Lookups go to disk through SQLite's page cache and a bounded memo of the last answers, so a
worker's memory does not grow with a release of a million and a half edits. A SQLite store is
read in place (read-only); any other store (PostgreSQL) is copied once per set of releases into
a cache file beside the user's other payerpolicy caches.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import platformdirs

from .kinds import TABLE_COLUMNS, TABLE_NAMES, chosen

MEMO = 1 << 16


@dataclass(frozen=True)
class Release:
    id: int
    kind: str
    program: str
    name: str
    period_start: dt.date
    period_end: dt.date
    published: dt.date


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


class Reference:
    """Imported releases as the facts step asks for them (one per process: it reconnects after fork)."""

    def __init__(self, path: str | None = None, connection: sqlite3.Connection | None = None):
        self.path = path
        self._connection = connection
        self._pid = os.getpid()
        self.releases = self._load_releases()
        self._chosen: dict[tuple, int | None] = {}
        self.ptp = lru_cache(MEMO)(self._ptp)
        self.mue = lru_cache(MEMO)(self._mue)
        self.addon = lru_cache(MEMO)(self._addon)
        self.mpfs = lru_cache(MEMO)(self._mpfs)
        self.telehealth = lru_cache(MEMO)(self._telehealth)

    def __getstate__(self) -> dict[str, Any]:
        if self.path is None:
            raise TypeError("an in-memory reference cannot be sent to another process")
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    @property
    def db(self) -> sqlite3.Connection:
        if self._connection is None or (self.path is not None and self._pid != os.getpid()):
            # A connection must not cross a fork: each process opens its own.
            self._connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._connection

    def _load_releases(self) -> tuple[Release, ...]:
        rows = self.db.execute("SELECT id, kind, program, name, period_start, period_end, published "
                               "FROM refrelease").fetchall()
        return tuple(Release(r[0], r[1], r[2], r[3], _day(r[4]), _day(r[5]), _day(r[6])) for r in rows)

    def release(self, kind: str, program: str, day: dt.date, known_on: dt.date) -> int | None:
        """The release governing a date of service as known on a date (see releases.chosen)."""
        key = (kind, program, day, known_on)
        if key in self._chosen:
            return self._chosen[key]
        best = chosen(self.releases, kind, program, day, known_on)
        if len(self._chosen) > MEMO:
            self._chosen.clear()
        found = self._chosen[key] = best.id if best else None
        return found

    # Each answer is the rows for one key, dates still as ISO text: callers compare with the day.

    def _ptp(self, release: int, column2: str, column1: str) -> tuple[tuple[str, str | None, int], ...]:
        return tuple(self.db.execute("SELECT effective, deletion, modifier FROM ptpedit WHERE release_id = ? "
                                     "AND column2 = ? AND column1 = ?", (release, column2, column1)))

    def _mue(self, release: int, code: str) -> tuple[int, int] | None:
        return self.db.execute("SELECT value, mai FROM mueedit WHERE release_id = ? AND code = ?",
                               (release, code)).fetchone()

    def _addon(self, release: int, code: str) -> tuple[tuple[str | None, int, str, str | None], ...]:
        return tuple(self.db.execute("SELECT primary_code, edit_type, effective, deletion FROM addonedit "
                                     "WHERE release_id = ? AND addon = ?", (release, code)))

    def _mpfs(self, release: int, code: str) -> tuple[str, str | None, float | None] | None:
        return self.db.execute("SELECT status, global_days, rvu FROM mpfsindicator WHERE release_id = ? AND code = ? "
                               "AND modifier = ''", (release, code)).fetchone()

    def _telehealth(self, release: int, code: str) -> tuple[str | None, Any, str | None] | None:
        return self.db.execute("SELECT status, audio_only, effective FROM telehealthcode WHERE release_id = ? "
                               "AND code = ?", (release, code)).fetchone()


_opened: dict[str, Reference] = {}


def open_reference(path: str | None) -> Reference | None:
    """The reference at ``path``, opened once per process (None: no release is imported)."""
    if path is None:
        return None
    found = _opened.get(path)
    if found is None:
        found = _opened[path] = Reference(path)
    return found


def _ddl() -> list[str]:
    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from .tables import ROW_TABLES, RefRelease

    statements = []
    for model in (RefRelease, *ROW_TABLES.values()):
        table = model.__table__
        statements.append(str(CreateTable(table).compile(dialect=sqlite.dialect())))
        statements.extend(str(CreateIndex(i).compile(dialect=sqlite.dialect())) for i in table.indexes)
    return statements


def _fill(db: sqlite3.Connection, releases: Iterable[tuple], rows: dict[str, Iterable[tuple]]) -> None:
    """A reference file's tables, its releases, and each kind's rows (release id first; dates as
    dates or ISO text)."""
    def iso(rows: Iterable[tuple]) -> Iterator[list]:
        return ([v.isoformat() if isinstance(v, dt.date) else v for v in row] for row in rows)

    for statement in _ddl():
        db.execute(statement)
    db.executemany("INSERT INTO refrelease (id, kind, program, name, period_start, period_end, published, digest, "
                   "files, rows, imported_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", iso(releases))
    for kind, table_rows in rows.items():
        columns = ("release_id",) + TABLE_COLUMNS[kind]
        db.executemany(f"INSERT INTO {TABLE_NAMES[kind]} ({', '.join(columns)}) "
                       f"VALUES ({', '.join('?' * len(columns))})", iso(table_rows))


def in_memory(data: dict[str, list[tuple]], programs: tuple[str, ...] = ("medicare", "medicaid")) -> Reference:
    """A reference holding a few rows of each kind, in force on every date and known always (a
    policy case's ``data:``)."""
    db = sqlite3.connect(":memory:", check_same_thread=False)
    releases, rows = [], {}
    number = 0
    for kind, kind_rows in data.items():
        for program in programs:
            number += 1
            releases.append((number, kind, program, "case", "1900-01-01", "9999-12-31", "1900-01-01", "", "[]",
                             len(kind_rows), "1900-01-01T00:00:00"))
            rows.setdefault(kind, []).extend((number,) + tuple(r) for r in kind_rows)
    _fill(db, releases, rows)
    return Reference(None, db)


def imported_releases(url: str | None) -> list[Release]:
    """Every imported release, without creating a store that is not there."""
    path = reference_path(url)
    return list(Reference(path).releases) if path else []


def _has_tables(path: Path) -> bool:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'refrelease'").fetchone()
            return bool(found) and bool(db.execute("SELECT 1 FROM refrelease LIMIT 1").fetchone())
        finally:
            db.close()
    except sqlite3.Error:
        return False


def reference_path(url: str | None) -> str | None:
    """The SQLite file the facts step reads releases from, for the store at ``url``; None when the
    store holds no release (or does not exist: reading reference data never creates a store)."""
    from ..store_location import resolve_url, sqlite_file

    resolved = resolve_url(url)
    path = sqlite_file(resolved)
    if path is not None:
        return str(path) if path.is_file() and _has_tables(path) else None
    if resolved.startswith("sqlite"):
        return None  # an in-memory store holds nothing between runs
    from ..store import Store

    return _cached_copy(Store(resolved))


def _cached_copy(store) -> str | None:
    from sqlmodel import Session, select

    from .tables import RefRelease

    with Session(store.engine) as session:
        releases = list(session.exec(select(RefRelease).order_by(RefRelease.id)))
    if not releases:
        return None
    key = hashlib.sha256("|".join(f"{r.id}:{r.digest}:{r.published}" for r in releases).encode()).hexdigest()[:24]
    folder = Path(platformdirs.user_cache_dir("payerpolicy", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"reference-{key}.sqlite"
    if target.is_file():
        return str(target)
    from sqlalchemy import text

    partial = folder / f".reference-{key}-{os.getpid()}.sqlite"
    db = sqlite3.connect(partial)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        with store.engine.connect() as connection:
            def stored(kind: str) -> Iterator[tuple]:  # streamed, a kind at a time, as _fill asks for them
                columns = ("release_id",) + TABLE_COLUMNS[kind]
                yield from connection.execution_options(stream_results=True).execute(
                    text(f"SELECT {', '.join(columns)} FROM {TABLE_NAMES[kind]}"))

            _fill(db, [(r.id, r.kind, r.program, r.name, r.period_start, r.period_end, r.published, r.digest,
                        r.files, r.rows, r.imported_at) for r in releases],
                  {kind: stored(kind) for kind in sorted({r.kind for r in releases})})
        db.commit()
    finally:
        db.close()
    os.replace(partial, target)
    _forget_old_copies(folder, target)
    return str(target)


def _forget_old_copies(folder: Path, keep: Path, days: int = 7) -> None:
    """Copies of earlier sets of releases, unused for a week, go: each can be as large as a release."""
    import time

    for old in folder.glob("reference-*.sqlite"):
        try:
            if old != keep and time.time() - old.stat().st_atime > days * 86400:
                old.unlink()
        except OSError:
            pass
