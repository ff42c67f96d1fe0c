"""Batches of any size: read, judged and written a chunk at a time, on one core, every
core, or a Dask cluster, with results identical to a serial run and in input order.

The core is two pure functions over a chunk of raw items (see ``sources``), run by
whichever executor the caller picks:

- ``chunk_services``: validate the chunk and list each claim line as a history service
  (patient, date, position, code, family);
- ``judge_chunk``: validate the chunk again and judge it, given the history its
  patients need; returns one result record per item.

A run makes two passes. The first writes every service of the batch to a small SQLite
index on disk; the second judges each chunk with its patients' services from that
index and from the store. So a claim sees the same history it saw when a whole batch
was judged in memory (the patient's other claims in the batch, and earlier runs),
whatever the order of the input, and memory holds only the chunks in flight. A batch
that fits in one chunk is read once.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import sqlite3
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import orjson

from . import collector
from .claims import Claim, InputError, InvalidClaim, validate_claim
from .findings import charges_at_risk, claim_status
from .history import History, in_person
from .judge import judge_claim
from .money import money_text
from .policy.model import PolicySet
from .policy.snapshot import Resolver
from .scrub import family_of, known_payer
from .sources import FileProblems, Input, JsonText, Structural
from .tuva import TUVA_PAYER, map_payer_name

CHUNK = 1000
# Below this much input a batch runs in this process: start-up of workers costs more.
WORKERS_FROM_BYTES = 2 << 20


@dataclass(frozen=True)
class Context:
    """What every chunk of one run is judged with; shipped once to each worker."""

    policy: PolicySet
    known_on: dt.date
    payer: str | None = None
    encounters: dict[str, dict[str, Any]] | None = None
    with_bodies: bool = False  # return each claim's JSON (the store keeps it as history)
    with_charges: bool = False  # return each claim's charges and charges at risk (the HTML report shows them)
    reference: str | None = None  # the SQLite file of imported CMS releases (reference.lookup)
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


class _Prepared:
    """A context with what it compiles, kept once per process."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        from .reference.lookup import open_reference

        self.resolver = Resolver(ctx.policy, open_reference(ctx.reference))
        self.names = ctx.policy.payer_names()

    def family(self, claim: Claim, day: dt.date, code: str) -> str | None:
        return family_of(self.resolver, claim, day, code, self.ctx.known_on)


_installed: dict[str, _Prepared] = {}


def install(ctx: Context) -> None:
    """Make a context available in this process by its token (a worker's initializer)."""
    if ctx.token not in _installed:
        while len(_installed) >= 4:  # a few runs' contexts at most: memory stays flat across runs
            del _installed[next(iter(_installed))]
        _installed[ctx.token] = _Prepared(ctx)


def _prepared(ctx: Context | str) -> _Prepared:
    if isinstance(ctx, str):
        return _installed[ctx]
    install(ctx)
    return _installed[ctx.token]


# ---- validation ------------------------------------------------------------------


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def validate_item(raw: Any, position: int, encounters: dict[str, dict[str, Any]] | None = None,
                  payer_names: dict[str, str] | None = None) -> Claim | InvalidClaim:
    """One raw item into a claim, or an invalid claim naming each field and reason."""
    if isinstance(raw, Claim):  # already validated (a batch held in memory)
        return raw
    if isinstance(raw, InvalidClaim):
        return InvalidClaim(raw.id, position, raw.errors)
    if isinstance(raw, FileProblems):
        # A batch held in memory (the service, what-if, denials) has no files section: the
        # problems stand as one entry without a claim id. Batches of files report them apart.
        return InvalidClaim(None, position, [InputError(p.name + (f" segment {p.segment}" if p.segment else ""),
                                                        p.reason) for p in raw.problems])
    if isinstance(raw, JsonText):
        if not encounters:
            try:
                return Claim.model_validate_json(raw.text)
            except ValueError:
                pass  # the slow path below names the field, or says the line is not JSON
        try:
            raw = orjson.loads(raw.text)
        except orjson.JSONDecodeError as exc:
            reason = str(exc).split(":", 1)[0]
            return InvalidClaim(None, position, [InputError("claim", f"line {raw.number}: not valid JSON ({reason})")])
    structural: list[InputError] = []
    warnings: list[InputError] = []
    if isinstance(raw, Structural):
        structural, warnings, raw = raw.errors, raw.warnings, raw.raw
        if raw is None:  # a problem of the file, not of one claim
            return InvalidClaim(None, position, structural)
    if isinstance(raw, dict) and TUVA_PAYER in raw:
        raw = map_payer_name(raw, payer_names or {})
    if encounters and isinstance(raw, dict) and str(raw.get("id")) in encounters:
        raw = _merge(raw, orjson.loads(orjson.dumps(encounters[str(raw.get("id"))])))
    checked = validate_claim(raw, position)
    if structural:
        errors = structural + (checked.errors if isinstance(checked, InvalidClaim) else [])
        checked = InvalidClaim(raw.get("id") if isinstance(raw.get("id"), str) else None, position, errors + warnings)
    elif warnings and isinstance(checked, Claim):
        checked.notes.extend(warnings)
    return checked


def _claim_of(prep: _Prepared, raw: Any, position: int) -> Claim | InvalidClaim | FileProblems:
    if isinstance(raw, FileProblems):
        return raw
    ctx = prep.ctx
    item = validate_item(raw, position, ctx.encounters, prep.names)
    if ctx.payer and isinstance(item, Claim):
        item = item.model_copy(update={"payer": ctx.payer})
    return known_payer(item, ctx.policy, position)


# ---- the two chunk functions -----------------------------------------------------

# patient, day, position, line, code, family, in person, units, days spanned
ServiceRow = tuple[str, int, int, int, str, "str | None", bool, int, int]


@collector.per_chunk
def chunk_services(ctx: Context | str, chunk: list[tuple[int, Any]]) -> tuple[list[ServiceRow], list[str]]:
    """Pass one: every claim line of the chunk as a history service, and the claim ids."""
    prep = _prepared(ctx)
    rows: list[ServiceRow] = []
    ids: list[str] = []
    for position, raw in chunk:
        item = _claim_of(prep, raw, position)
        if isinstance(item, Claim):
            ids.append(item.id)
            rows.extend(_services(prep, position, item))
    return rows, ids


def _services(prep: _Prepared, position: int, claim: Claim) -> Iterator[ServiceRow]:
    """A claim's lines as history services (none when the claim names no patient)."""
    patient = claim.patient.id if claim.patient else None
    if not patient:
        return
    for number, line in enumerate(claim.lines, 1):
        day = claim.line_date(line)
        yield (patient, day.toordinal(), position, number, line.code, prep.family(claim, day, line.code),
               in_person(claim, line), line.units, claim.line_days(line))


@collector.per_chunk
def judge_chunk(ctx: Context | str, chunk: list[tuple[int, Any]], history_rows: list[tuple] | None) -> list[dict]:
    """Pass two: judge the chunk with its patients' history; one record per item, in order.

    With ``history_rows`` None the chunk is its own history (a partition judged alone,
    as Spark's mapInArrow or a single-chunk batch calls it).
    """
    prep = _prepared(ctx)
    ctx = prep.ctx
    items = [(position, _claim_of(prep, raw, position)) for position, raw in chunk]
    if history_rows is None:
        history_rows = [row for p, c in items if isinstance(c, Claim) for row in _services(prep, p, c)]
    history = History.from_rows(history_rows)
    out = []
    for position, item in items:
        if isinstance(item, FileProblems):
            out.append({"position": position, "files": [p.as_dict() for p in item.problems]})
            continue
        if isinstance(item, InvalidClaim):
            out.append({"position": position, "result": {"id": item.id, "status": "invalid", "position": position,
                                                         "errors": [e.as_dict() for e in item.errors]}})
            continue
        if item.adjudication is not None:
            status, findings = "history", []
        else:
            snapshot = prep.resolver.get(item.payer, item.state, ctx.known_on)
            findings = judge_claim(item, snapshot, history, position)
            status = claim_status(findings, item.notes)
        result = {"id": item.id, "status": status, "findings": [f.as_dict() for f in findings]}
        if item.notes:
            result["notes"] = [e.as_dict() for e in item.notes]
        record = {"position": position, "result": result,
                  "payer": item.payer, "state": item.state, "service_date": item.service_date.isoformat(),
                  "patient": item.patient.id if item.patient else None}
        if ctx.with_charges and any(line.charge for line in item.lines):
            charges, at_risk = charges_at_risk(item.lines, findings)
            record["charges"], record["at_risk"] = money_text(charges), money_text(at_risk)
        if ctx.with_bodies:
            record["body"] = item.model_dump_json()
        out.append(record)
    return out


def scrub_in_processes(items: list, policy: PolicySet, known_on: dt.date, workers: int,
                       reference: str | None = None) -> Any:
    """A batch held in memory (claims and invalid claims), judged over ``workers`` processes.

    The same result as ``scrub.scrub`` on the whole batch (history included), in order.
    """
    import tempfile

    from .claims import InputError
    from .findings import Finding
    from .scrub import ClaimResult, ScrubResult, scrub

    if workers <= 1 or len(items) <= CHUNK:
        return scrub(items, policy, known_on, reference=reference)
    ctx = Context(policy, known_on, reference=reference)
    records: list[dict] = []
    executor = make_executor(ctx, workers)
    try:
        with tempfile.TemporaryDirectory(prefix="payerpolicy-") as workdir:
            run_batch(items, ctx, executor, sink=records.extend, workdir=Path(workdir))
    finally:
        executor.close()
    results = []
    for record in records:
        result = record["result"]
        results.append(ClaimResult(result["id"], record["position"], result["status"],
                                   [Finding.from_dict(f) for f in result.get("findings", ())],
                                   [InputError(**e) for e in result.get("errors", ())]))
    return ScrubResult(policy.digest, known_on, results)


def scrub_partition(claims: Iterable[Any], policy: PolicySet, known_on: dt.date, payer: str | None = None,
                    start: int = 1) -> list[dict]:
    """A partition of claims (dicts in the claim format) in, result records out.

    Pure and self-contained, for any engine that maps a function over partitions
    (Spark's mapInArrow, Ray, Dask): the partition is its own history, so partition
    by patient. The snapshot is compiled once per process and policy.
    """
    ctx = _partition_contexts.get((policy.digest, known_on, payer))
    if ctx is None:
        ctx = _partition_contexts[(policy.digest, known_on, payer)] = Context(policy, known_on, payer)
    return judge_chunk(ctx, list(enumerate(claims, start)), None)


_partition_contexts: dict[tuple, Context] = {}


# ---- executors ---------------------------------------------------------------------


class Serial:
    """Chunks judged in this process."""

    workers = 1

    def __init__(self, ctx: Context):
        install(ctx)
        self.ref: Context | str = ctx.token

    def ordered(self, fn: Callable, calls: Iterable[tuple]) -> Iterator[Any]:
        for args in calls:
            yield fn(self.ref, *args)

    def close(self) -> None:
        pass


class _Windowed:
    """Submit calls with at most ``window`` in flight and yield results in submission order."""

    window = 4

    def _submit(self, fn: Callable, args: tuple) -> Any:
        raise NotImplementedError

    @staticmethod
    def _result(future: Any) -> Any:
        return future.result()

    def ordered(self, fn: Callable, calls: Iterable[tuple]) -> Iterator[Any]:
        pending: deque = deque()
        try:
            for args in calls:
                pending.append(self._submit(fn, args))
                if len(pending) >= self.window:
                    yield self._result(pending.popleft())
            while pending:
                yield self._result(pending.popleft())
        finally:
            for future in pending:
                future.cancel()


class Processes(_Windowed):
    """Chunks judged by ``workers`` local processes, each compiling the snapshots once."""

    def __init__(self, ctx: Context, workers: int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.workers = workers
        self.window = 2 * workers + 1
        # fork shares the loaded policy; elsewhere the context is pickled once per worker.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                        initializer=install, initargs=(ctx,))
        self.token = ctx.token

    def _submit(self, fn: Callable, args: tuple) -> Any:
        return self.pool.submit(fn, self.token, *args)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class DaskCluster(_Windowed):
    """Chunks judged on a Dask distributed cluster: a LocalCluster, or the scheduler at ``address``."""

    def __init__(self, ctx: Context, workers: int, address: str | None):
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if address:
            self.client = Client(address)
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, host="127.0.0.1")
            self.client = Client(self.cluster)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})) or workers)
        self.window = 2 * self.workers + 1
        # The context (the policy) travels once to each worker, not with every chunk.
        [self.ref] = self.client.scatter([ctx], broadcast=True)

    def _submit(self, fn: Callable, args: tuple) -> Any:
        return self.client.submit(fn, self.ref, *args, pure=False)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_workers(total_bytes: int) -> int:
    return 1 if total_bytes < WORKERS_FROM_BYTES else cores()


def make_executor(ctx: Context, workers: int, scheduler: str | None = None, dask: bool = False):
    if scheduler or dask:
        return DaskCluster(ctx, workers, scheduler)
    if workers > 1:
        return Processes(ctx, workers)
    return Serial(ctx)


# ---- the run index -----------------------------------------------------------------


class RunIndex:
    """Every service and claim id of the batch, on disk (pass one), read back per chunk (pass two)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE service (patient TEXT, day INT, pos INT, line INT, code TEXT, family TEXT, "
                        "in_person INT, units INT, days INT)")
        self.db.execute("CREATE TABLE claim_id (id TEXT)")

    def add(self, rows: list[ServiceRow], ids: list[str]) -> None:
        self.db.executemany("INSERT INTO service VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        self.db.executemany("INSERT INTO claim_id VALUES (?)", [(i,) for i in ids])

    def seal(self) -> None:
        self.db.execute("CREATE INDEX service_patient ON service (patient)")
        self.db.execute("CREATE INDEX service_pos ON service (pos)")
        self.db.execute("CREATE INDEX claim_id_id ON claim_id (id)")
        self.db.commit()

    def patients(self, first: int, last: int) -> list[str]:
        return [p for (p,) in self.db.execute("SELECT DISTINCT patient FROM service WHERE pos BETWEEN ? AND ?",
                                              (first, last))]

    def services(self, patients: list[str]) -> list[tuple]:
        rows: list[tuple] = []
        for group in _groups(patients, 500):
            marks = ",".join("?" * len(group))
            rows.extend(self.db.execute(f"SELECT patient, day, pos, line, code, family, in_person, units, days "
                                        f"FROM service "
                                        f"WHERE patient IN ({marks})", group))
        return rows

    def has_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for group in _groups(ids, 500):
            marks = ",".join("?" * len(group))
            found.update(i for (i,) in self.db.execute(f"SELECT id FROM claim_id WHERE id IN ({marks})", group))
        return found

    def close(self) -> None:
        self.db.close()


def _groups(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def chunked(items: Iterable[Any], size: int) -> Iterator[list[tuple[int, Any]]]:
    """Raw items numbered from 1 (the positions results carry), in lists of ``size``."""
    numbered = enumerate(items, 1)
    while True:
        chunk = list(itertools.islice(numbered, size))
        if not chunk:
            return
        yield chunk


# ---- a run ---------------------------------------------------------------------------


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=lambda: {"claims": 0, "clean": 0, "review": 0, "reject": 0,
                                                              "invalid": 0, "history": 0})
    findings: int = 0
    files: list[dict] = field(default_factory=list)  # problems of files, outside any claim

    def add(self, record: dict) -> None:
        self.counts["claims"] += 1
        self.counts[record["result"]["status"]] += 1
        self.findings += len(record["result"].get("findings", ()))

    @property
    def exit_code(self) -> int:
        return 1 if self.counts["reject"] or self.counts["invalid"] or self.files else 0


class StoreHistory:
    """Earlier runs' services for a chunk's patients (claims of this batch excluded)."""

    def __init__(self, store: Any, upto: int, prep: _Prepared):
        self.store, self.upto, self.prep = store, upto, prep

    def rows(self, patients: list[str], in_batch: Callable[[list[str]], set[str]]) -> list[tuple]:
        return self.store.history_rows(patients, self.upto, in_batch, self.prep.family)


def run_batch(source: Input, ctx: Context, executor, *, store_history: StoreHistory | None = None,
              sink: Callable[[list[dict]], None], chunk_size: int = CHUNK,
              progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None,
              workdir: Path) -> Summary:
    """Judge everything ``source`` yields; each chunk's records go to ``sink`` in input order."""
    summary = Summary()
    chunks = chunked(source, chunk_size)
    first = next(chunks, None)
    second = next(chunks, None) if first is not None else None
    if first is None:
        return summary
    if second is None and store_history is None:
        # One chunk: it is its own history, and the input is read once.
        records = next(executor.ordered(judge_chunk, [(first, None)]))
        _emit(records, summary, sink, progress)
        return summary
    index = RunIndex(workdir / "history.sqlite")
    try:
        count = 0
        rest = itertools.chain([first] + ([second] if second else []), chunks)
        for rows, ids in executor.ordered(chunk_services, ((chunk,) for chunk in rest)):
            index.add(rows, ids)
            count += len(ids)
        index.seal()
        first_digest = getattr(source, "digest", None)
        if total:
            total(count)
        again = [first] if second is None else chunked(source, chunk_size)

        def calls() -> Iterator[tuple]:
            for chunk in again:
                patients = index.patients(chunk[0][0], chunk[-1][0])
                rows = index.services(patients)
                if store_history is not None and patients:
                    rows.extend(store_history.rows(patients, index.has_ids))
                yield chunk, rows

        for records in executor.ordered(judge_chunk, calls()):
            _emit(records, summary, sink, progress)
        if second is not None and getattr(source, "digest", None) != first_digest:
            from .sources import UsageError

            raise UsageError("the input changed while it was being read; run again on a file that is not being written")
    finally:
        index.close()
    return summary


def _emit(records: list[dict], summary: Summary, sink: Callable[[list[dict]], None],
          progress: Callable[[int], None] | None) -> None:
    claims = []
    for record in records:
        if "files" in record:
            summary.files.extend(record["files"])
        else:
            summary.add(record)
            claims.append(record)
    sink(claims)
    if progress:
        progress(len(claims))
