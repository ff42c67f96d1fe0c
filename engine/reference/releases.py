"""Releases of CMS reference data in the store: import, list, show and diff.

A release is named by its period: ``2026Q1`` (a quarter), ``2026`` (a calendar year, as the
telehealth list and add-on edits are published), or either with a suffix for a correction
(``2026Q1r1``). It became known on ``--published``, by default the first day of its period.

Importing is one transaction (a failed file leaves the store as it was) and idempotent: the
same rows under the same name change nothing, and other rows under a name already imported
are refused rather than silently replacing what earlier judgements saw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from .. import clock
from .layouts import KINDS, read_rows
from .kinds import MEDICARE_ONLY, PROGRAMS, TABLE_COLUMNS, chosen
from .tables import ROW_TABLES, RefRelease

BATCH = 50_000

_NAME = re.compile(r"^(\d{4})(?:Q([1-4]))?([-_.]?[A-Za-z0-9]+)?$")


class ReleaseError(Exception):
    """A release that cannot be imported or found; the message is for people."""


def period_of(name: str) -> tuple[dt.date, dt.date]:
    match = _NAME.match(name)
    if match is None or (match.group(3) and not match.group(2) and match.group(3).upper().startswith("Q")):
        raise ReleaseError(f"release '{name}' is not a period: write 2026Q1 (a quarter), 2026 (a year), "
                           f"or either with a suffix for a correction (2026Q1r1)")
    year = int(match.group(1))
    if match.group(2):
        quarter = int(match.group(2))
        start = dt.date(year, 3 * quarter - 2, 1)
        end = (dt.date(year + 1, 1, 1) if quarter == 4 else dt.date(year, 3 * quarter + 1, 1)) - dt.timedelta(days=1)
        return start, end
    return dt.date(year, 1, 1), dt.date(year, 12, 31)


def current_quarter(today: dt.date) -> str:
    return f"{today.year}Q{(today.month - 1) // 3 + 1}"


@dataclass
class ImportResult:
    release: RefRelease
    created: bool


# What identifies a row across releases (for diff), and what may change.
_KEYS = {
    "ncci-ptp": (("column1", "column2", "effective"), ("deletion", "modifier")),
    "ncci-mue": (("code",), ("value", "mai")),
    "ncci-addon": (("addon", "primary_code", "effective"), ("edit_type", "deletion")),
    "mpfs-indicators": (("code", "modifier"), ("status", "global_days", "rvu")),
    "telehealth-list": (("code",), ("status", "audio_only", "effective")),
}


def _check(kind: str, program: str) -> None:
    if kind not in KINDS:
        raise ReleaseError(f"unknown kind '{kind}': one of {', '.join(KINDS)}")
    if program not in PROGRAMS:
        raise ReleaseError(f"unknown program '{program}': medicare or medicaid")
    if program != "medicare" and kind in MEDICARE_ONLY:
        raise ReleaseError(f"{kind} is published for Medicare only")


def _rows(kind: str, paths: list[Path]) -> Iterator[tuple]:
    for path in sorted(paths, key=lambda p: p.name):
        yield from read_rows(kind, path)


def row_digest(kind: str, paths: list[Path]) -> tuple[str, int]:
    """A digest of the rows as read (text, numbers, ISO dates): the same rows from a workbook or text agree."""
    digest = hashlib.sha256(kind.encode())
    count = 0
    for row in _rows(kind, paths):
        digest.update(repr(row).encode())
        count += 1
    return digest.hexdigest(), count


def _insert(session: Session, kind: str, release_id: int, rows: Iterator[tuple], digest) -> int:
    """Write the rows in batches by the driver's fastest path; returns how many."""
    table = ROW_TABLES[kind].__tablename__
    columns = ("release_id",) + TABLE_COLUMNS[kind]
    connection = session.connection()
    raw = connection.connection.driver_connection
    dialect = connection.dialect.name
    count = 0

    def stamped() -> Iterator[tuple]:
        nonlocal count
        for row in rows:
            digest.update(repr(row).encode())
            count += 1
            yield (release_id,) + row

    if dialect == "postgresql":
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in stamped():
                    copy.write_row(row)
        return count
    if dialect == "sqlite":
        # The lookup index takes rows in no order: keep its pages in memory while they arrive.
        raw.execute("PRAGMA cache_size=-262144")
    marks = ", ".join("?" if dialect == "sqlite" else "%s" for _ in columns)
    statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
    cursor = raw.cursor()
    batch: list[tuple] = []
    for row in stamped():
        batch.append(row)
        if len(batch) >= BATCH:
            cursor.executemany(statement, batch)
            batch.clear()
    if batch:
        cursor.executemany(statement, batch)
    cursor.close()
    if dialect == "sqlite":
        raw.execute("PRAGMA cache_size=-2000")
    return count


def find_release(session: Session, kind: str, program: str, name: str) -> RefRelease | None:
    return session.exec(select(RefRelease).where(RefRelease.kind == kind, RefRelease.program == program,
                                                 RefRelease.name == name)).first()


def import_release(store, kind: str, program: str, name: str, paths: list[Path],
                   published: dt.date | None = None) -> ImportResult:
    """Read CMS files of one kind into one release, all or nothing."""
    _check(kind, program)
    start, end = period_of(name)
    published = published or start
    if not paths:
        raise ReleaseError("name at least one file")
    with Session(store.engine) as session:
        existing = find_release(session, kind, program, name)
    if existing is not None:
        digest, _ = row_digest(kind, paths)
        if digest != existing.digest:
            raise ReleaseError(f"release {name} of {kind} ({program}) is already imported with other rows; "
                               f"import a correction under its own name (for example {name}r1)")
        return ImportResult(existing, False)

    def write(session: Session) -> RefRelease | None:
        if find_release(session, kind, program, name) is not None:
            return None  # another process imported it while these files were read
        release = RefRelease(kind=kind, program=program, name=name, period_start=start, period_end=end,
                             published=published, digest="", files=json.dumps(sorted(p.name for p in paths)),
                             rows=0, imported_at=clock.now())
        session.add(release)
        session.flush()
        digest = hashlib.sha256(kind.encode())
        release.rows = _insert(session, kind, release.id, _rows(kind, paths), digest)
        if release.rows == 0:
            raise ReleaseError(f"the files hold no {kind} rows")
        release.digest = digest.hexdigest()
        session.add(release)
        session.flush()
        session.refresh(release)
        session.expunge(release)
        return release

    try:
        written = store._write(write)
    except IntegrityError:  # the same race on PostgreSQL, caught by the unique name
        written = None
    if written is None:
        return import_release(store, kind, program, name, paths, published)
    return ImportResult(written, True)


def list_releases(store) -> list[RefRelease]:
    with Session(store.engine) as session:
        return list(session.exec(select(RefRelease).order_by(RefRelease.kind, RefRelease.program,
                                                             RefRelease.period_start, RefRelease.published)))




def show_rows(store, kind: str, program: str, code: str, day: dt.date, known_on: dt.date
              ) -> tuple[RefRelease | None, list[dict[str, Any]]]:
    """The release governing ``day`` as known on ``known_on``, and its rows for a code."""
    _check(kind, program)
    release = chosen(list_releases(store), kind, program, day, known_on)
    if release is None:
        return None, []
    table = ROW_TABLES[kind].__tablename__
    columns = TABLE_COLUMNS[kind]
    where = {"ncci-ptp": "(column1 = :code OR column2 = :code)",
             "ncci-addon": "(addon = :code OR primary_code = :code)"}.get(kind, "code = :code")
    order = ", ".join(columns[:3])
    with store.engine.connect() as connection:
        result = connection.execute(text(f"SELECT {', '.join(columns)} FROM {table} WHERE release_id = :r AND "
                                         f"{where} ORDER BY {order}"), {"r": release.id, "code": code.upper()})
        rows = [dict(zip(columns, row)) for row in result]
    return release, rows


@dataclass
class Diff:
    first: RefRelease
    second: RefRelease
    added: int
    removed: int
    changed: dict[str, int]  # column -> rows whose value changed
    samples: dict[str, list[dict[str, Any]]]


def diff_releases(store, kind: str, program: str, first: str, second: str, samples: int = 10) -> Diff:
    _check(kind, program)
    with Session(store.engine) as session:
        a = find_release(session, kind, program, first)
        b = find_release(session, kind, program, second)
    for name, found in ((first, a), (second, b)):
        if found is None:
            raise ReleaseError(f"no release {name} of {kind} ({program}) is imported; see payerpolicy data list")
    table = ROW_TABLES[kind].__tablename__
    keys, values = _KEYS[kind]
    on = " AND ".join(f"COALESCE(CAST(x.{k} AS VARCHAR), '') = COALESCE(CAST(y.{k} AS VARCHAR), '')" for k in keys)
    shown = ", ".join(f"x.{c}" for c in keys + values)
    out: dict[str, Any] = {}
    with store.engine.connect() as connection:
        def query(sql: str, params: dict) -> list:
            return list(connection.execute(text(sql), params))

        for label, left, right in (("added", b, a), ("removed", a, b)):
            base = (f"FROM {table} x WHERE x.release_id = :l AND NOT EXISTS "
                    f"(SELECT 1 FROM {table} y WHERE y.release_id = :r AND {on})")
            params = {"l": left.id, "r": right.id}
            out[label] = query(f"SELECT COUNT(*) {base}", params)[0][0]
            out[f"{label}_samples"] = [dict(zip(keys + values, row)) for row in
                                       query(f"SELECT {shown} {base} ORDER BY {shown} LIMIT {samples}", params)]
        changed: dict[str, int] = {}
        change_samples: list[dict[str, Any]] = []
        for column in values:
            differs = (f"((x.{column} IS NULL AND y.{column} IS NOT NULL) OR (x.{column} IS NOT NULL AND "
                       f"y.{column} IS NULL) OR x.{column} <> y.{column})")
            base = f"FROM {table} x JOIN {table} y ON {on} WHERE x.release_id = :a AND y.release_id = :b AND {differs}"
            params = {"a": a.id, "b": b.id}
            changed[column] = query(f"SELECT COUNT(*) {base}", params)[0][0]
            for row in query(f"SELECT {shown}, y.{column} {base} ORDER BY {shown} LIMIT {samples}", params):
                sample = dict(zip(keys + values, row[:-1]))
                sample["changed"] = column
                sample["to"] = row[-1]
                change_samples.append(sample)
    return Diff(a, b, out["added"], out["removed"], changed,
                {"added": out["added_samples"], "removed": out["removed_samples"], "changed": change_samples})
