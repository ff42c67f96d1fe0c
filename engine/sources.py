"""Claim inputs read a piece at a time: JSON, JSON Lines, X12 837P, Parquet and CSV.

Each source yields *raw items* in input order, without validating them (validation
happens where the claim is judged, possibly in another process):

- ``JsonText``: one JSON Lines line, still bytes, with its line number;
- a ``dict``: a claim from a JSON document, a Parquet row or grouped Tuva rows;
- ``Structural``: claim data the X12 validator objected to, or a file-level problem;
- ``InvalidClaim``: an item that could not even be read (a non-UTF-8 file).

JSON Lines, Parquet and Tuva tables stream in constant memory; a JSON document or an
837 interchange is read whole (use JSON Lines or Parquet for very large batches).
Every byte read is fed to a digest, so a run's receipt names exactly what it judged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .claims import InputError, InvalidClaim, raw_items
from .policy.model import PolicySet


class UsageError(Exception):
    """A problem with how the command was called (exit code 2)."""


X12_SUFFIXES = {".837", ".x12", ".edi", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
READ_BLOCK = 1 << 20


@dataclass
class JsonText:
    """One line of a JSON Lines file, parsed where it is judged."""

    number: int
    text: bytes


@dataclass(frozen=True)
class FileProblem:
    """A problem of a file, outside any claim's span (an envelope error, a file that holds no
    claims): reported in the output's ``files`` section, never counted as a claim."""

    name: str
    segment: int | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "segment": self.segment, "reason": self.reason}


@dataclass
class FileProblems:
    problems: list[FileProblem]


@dataclass
class Structural:
    """Claim data the X12 validator objected to: ``errors`` in segments the claim is read from
    (the claim is not judged), ``warnings`` in segments it is not (judged, and said beside)."""

    raw: dict[str, Any] | None
    errors: list[InputError]
    warnings: list[InputError] = field(default_factory=list)


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES or path.is_dir()


def is_url(path: Any) -> bool:
    return isinstance(path, str) and "://" in path


def _expand_url(url: str) -> list[str]:
    """A Parquet file or folder at an fsspec URL (s3://, gs://, abfs://, memory://, file://...)."""
    try:
        import fsspec

        fs, root = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise UsageError(f"{url}: no filesystem for this URL is installed ({type(exc).__name__})") from None
    protocol = url.split("://", 1)[0]
    if fs.isdir(root):
        parts = sorted(p for p in fs.find(root) if p.lower().endswith(tuple(PARQUET_SUFFIXES)))
        if not parts:
            raise UsageError(f"{url}: a folder with no Parquet files")
        return [f"{protocol}://{p.removeprefix(protocol + '://')}" for p in parts]
    if not fs.exists(root):
        raise UsageError(f"{url}: no such file")
    if not root.lower().endswith(tuple(PARQUET_SUFFIXES)):
        raise UsageError(f"{url}: only Parquet is read from a URL; copy other inputs to a local file")
    return [url]


def expand(paths: list[Any]) -> list[Any]:
    """Files as given; a folder stands for the Parquet files in it (a partitioned table), and so
    does an fsspec URL to a folder."""
    found: list[Any] = []
    for path in paths:
        if is_url(path):
            found.extend(_expand_url(path))
        elif path.is_dir():
            parts = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PARQUET_SUFFIXES)
            if not parts:
                raise UsageError(f"{path}: a folder with no Parquet files")
            found.extend(parts)
        elif not path.is_file():
            raise UsageError(f"{path}: no such file")
        else:
            found.append(path)
    return found


class Input:
    """The raw items of several files, in order, with the digest of everything read."""

    def __init__(self, paths: list[Path], policy: PolicySet | None):
        self.paths = expand(paths)
        self.policy = policy
        self._digest = hashlib.sha256()

    @property
    def digest(self) -> str:
        return "sha256:" + self._digest.hexdigest()

    def total_bytes(self) -> int:
        total = 0
        for path in self.paths:
            if is_url(path):
                import fsspec

                fs, root = fsspec.core.url_to_fs(path)
                total += fs.size(root) or 0
            else:
                total += path.stat().st_size
        return total

    def __iter__(self) -> Iterator[Any]:
        self._digest = hashlib.sha256()
        for path in self.paths:
            if is_url(path):
                self._digest.update(path.encode() + b"\0")
                yield from self._parquet(path)
                continue
            self._digest.update(str(path.name).encode() + b"\0")
            suffix = path.suffix.lower()
            if suffix in PARQUET_SUFFIXES:
                yield from self._parquet(path)
            elif suffix == ".csv":
                yield from self._csv(path)
            else:
                yield from self._text(path)

    def _text(self, path: Path) -> Iterator[Any]:
        with path.open("rb") as handle:
            head = handle.read(READ_BLOCK)
            self._digest.update(head)
            start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
            first_line, _, after = start.partition(b"\n")
            # JSON Lines: one whole object on the first line and another object after it.
            if path.suffix.lower() == ".jsonl" or (start.startswith(b"{") and after.lstrip().startswith(b"{")
                                                  and _whole_json(first_line)):
                yield from self._lines(handle, head)
                return
            rest = handle.read()
            self._digest.update(rest)
        data = head + rest
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            yield InvalidClaim(None, 0, [InputError("file", f"{path.name} is not UTF-8 text")])
            return
        if looks_like_x12(text, path.suffix.lower() in X12_SUFFIXES):
            yield from x12_items(path.name, text, self.policy)
        else:
            yield from raw_items(text)

    def _lines(self, handle, head: bytes) -> Iterator[JsonText]:
        number = 0
        pending = head.removeprefix(b"\xef\xbb\xbf")
        while True:
            *complete, pending = pending.split(b"\n")
            for line in complete:
                number += 1
                if line.strip():
                    yield JsonText(number, line)
            block = handle.read(READ_BLOCK)
            if not block:
                break
            self._digest.update(block)
            pending += block
        if pending.strip():
            yield JsonText(number + 1, pending)

    def _parquet(self, path: Path | str) -> Iterator[dict]:
        import pyarrow.parquet as pq

        from .tuva import TUVA_KEYS, TuvaGrouper

        if is_url(path):
            import fsspec

            opened = fsspec.open(path, "rb")
        else:
            opened = path.open("rb")
        with opened as handle:
            digest = hashlib.sha256()
            for block in iter(lambda: handle.read(READ_BLOCK), b""):
                digest.update(block)
            self._digest.update(digest.digest())
            handle.seek(0)
            table = pq.ParquetFile(handle)
            names = set(table.schema_arrow.names)
            rows = (row for batch in table.iter_batches(batch_size=4096) for row in batch.to_pylist())
            if TUVA_KEYS <= names:
                yield from TuvaGrouper(str(path).rsplit("/", 1)[-1]).claims(rows)
            else:
                for row in rows:
                    yield _without_nulls(row)

    def _csv(self, path: Path) -> Iterator[Any]:
        import csv

        from .tuva import TUVA_KEYS, TuvaGrouper

        self._digest.update(_file_digest(path))
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            reader = csv.DictReader(handle)
            if not TUVA_KEYS <= set(reader.fieldnames or ()):
                yield InvalidClaim(None, 0, [InputError(path.name, "a CSV input must be a Tuva medical_claim table "
                                                                   "(claim_id, hcpcs_code, ... columns)")])
                return
            yield from TuvaGrouper(path.name).claims({k: (v if v != "" else None) for k, v in row.items()}
                                                     for row in reader)


def looks_like_x12(text: str, x12_name: bool) -> bool:
    """By content first: an interchange starts with ISA, JSON with { or [; the file's name decides
    only for text that is neither (so its X12 errors say what is missing)."""
    start = text.lstrip("\ufeff \t\r\n")[:3]
    if start.startswith("ISA"):
        return True
    if start[:1] in ("{", "["):
        return False
    return x12_name


def _whole_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(READ_BLOCK), b""):
            digest.update(block)
    return digest.digest()


def _without_nulls(value: Any) -> Any:
    """A Parquet row as claim JSON: absent fields are nulls there, and absent here."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def x12_items(name: str, text: str, policy: PolicySet | None) -> list[Any]:
    """An 837's claims as raw dicts, with structural problems attached or listed for the file."""
    from .x12.claim837 import READ_SEGMENTS, read_837, read_837_segments
    from .x12.validate import validate_and_read

    payers = policy.payers.items() if policy else []
    # A payer key written as the id (our own exports do that) maps to itself.
    payer_ids = {key.upper(): key for key, _ in payers}
    payer_ids.update({pid: key for key, payer in payers for pid in payer.x12_payer_ids})
    taxonomy = policy.taxonomy if policy else {}
    # One pass: pyx12 validates and tokenizes, and the claims are read from its segments. Only
    # a file pyx12 cannot read is split again, by the reader, which says where and why it stops.
    problems, segments = validate_and_read(text)
    if segments is not None:
        parsed = read_837_segments(segments, payer_ids, taxonomy)
    else:
        parsed = read_837(text, payer_ids, taxonomy)
        if parsed.errors:
            problems = []  # the reader's own reason names the segment; the validator's adds nothing
    items: list[Any] = []
    placed = set()
    for raw, (first, last) in zip(parsed.claims, parsed.spans):
        mine = [p for p in problems if p.segment is not None and first <= p.segment <= last]
        placed.update(id(p) for p in mine)
        if mine:
            # A finding where the claim is read from blocks judging (it may not say what it was meant
            # to); elsewhere (addresses, contacts, notes...) it is reported beside the findings.
            blocking = [p for p in mine if p.segment_id is None or p.segment_id in READ_SEGMENTS]
            items.append(Structural(raw, [InputError(f"{name} segment {p.segment}", p.reason) for p in blocking],
                                    [InputError(f"{name} segment {p.segment}", p.reason)
                                     for p in mine if p not in blocking]))
        else:
            items.append(raw)
    rest = [(seg, reason) for seg, reason in parsed.errors] + \
           [(p.segment, p.reason) for p in problems if id(p) not in placed]
    if not parsed.claims and not rest:
        rest = [(None, "the interchange holds no 837 claims")]
    if rest:
        items.append(FileProblems([FileProblem(name, seg, reason) for seg, reason in rest]))
    return items
