"""Use cases over the pipeline: scrub files of any size (streamed, on any executor, into the
store in chunks), scrub a small in-memory batch, and replay a stored run."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol

from .batch import CHUNK, Context, StoreHistory, Summary, _prepared, default_workers, make_executor, run_batch
from .batch import validate_item
from .claims import Claim, InputError, InvalidClaim
from .policy.model import PolicySet
from .policy.snapshot import Resolver
from .scrub import ScrubResult, family_of, scrub
from .sources import FileProblem, FileProblems, Input, UsageError

if TYPE_CHECKING:
    from .store import Store
    from .reports.writers import Writer


def read_encounters(path: Path) -> dict[str, dict[str, Any]]:
    """The side file of facts an 837 does not carry: {claim id: {encounter: ..., patient: ...}}."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UsageError(f"{path}: not a JSON object keyed by claim id") from None
    if isinstance(data, list):
        data = {str(item.get("id")): {k: v for k, v in item.items() if k != "id"} for item in data
                if isinstance(item, dict)}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"{path}: not a JSON object keyed by claim id")
    return data


def validate_items(raws: list[Any], encounters: dict[str, dict[str, Any]] | None = None,
                   policy: PolicySet | None = None, files: list[FileProblem] | None = None
                   ) -> list[Claim | InvalidClaim]:
    """Raw items (dicts, structural results, unreadable entries) into claims, in order.

    Problems of a file (an envelope error, a file with no claims) go to ``files`` and never
    count as claims; without that list they stand as an entry without a claim id."""
    names = policy.payer_names() if policy else None
    return [validate_item(raw, position, encounters, names) for position, raw in
            enumerate(_apart(raws, files), 1)]


def _apart(raws: Iterable[Any], files: list[FileProblem] | None) -> Iterator[Any]:
    for raw in raws:
        if files is not None and isinstance(raw, FileProblems):
            files.extend(raw.problems)
        else:
            yield raw


def read_claim_files(paths: list[Path], policy: PolicySet | None = None,
                     encounters: dict[str, dict[str, Any]] | None = None,
                     files: list[FileProblem] | None = None) -> list[Claim | InvalidClaim]:
    """JSON, JSON Lines, X12 837P, Parquet and Tuva files, in any mix, into one in-memory batch;
    problems of a file, outside every claim, into ``files``."""
    return validate_items(list(Input(paths, policy)), encounters, policy, files)


def iter_claim_files(paths: list[Path], policy: PolicySet | None = None,
                     encounters: dict[str, dict[str, Any]] | None = None,
                     files: list[FileProblem] | None = None) -> Iterator[Claim | InvalidClaim]:
    """Claims one at a time, so a year need not be held at once; ``encounters`` adds what an 837 lacks."""
    names = policy.payer_names() if policy else None
    for position, raw in enumerate(_apart(Input(paths, policy), files), 1):
        yield validate_item(raw, position, encounters, names)


# ---- files of any size -------------------------------------------------------------------


@dataclass
class FileRun:
    summary: Summary
    run_id: str | None
    workers: int


def scrub_files(paths: list[Path], policy: PolicySet, known_on: dt.date, writer: "Writer", *,
                payer: str | None = None, encounters: Path | None = None, store: "Store | None" = None,
                workers: int | None = None, scheduler: str | None = None, dask: bool = False,
                options: dict[str, Any] | None = None, chunk_size: int = CHUNK,
                progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None,
                reference: str | None = None) -> FileRun:
    """Scrub files a chunk at a time into ``writer``; with a store, keep the run in chunks.

    The run becomes visible in the store only when it is complete; a failure removes
    what it wrote, and the writer leaves no partial file.
    """
    try:
        source = Input(paths, policy)
        ctx = Context(policy, known_on, payer, read_encounters(encounters) if encounters else None,
                      with_bodies=store is not None, with_charges=getattr(writer, "shows_charges", False), reference=reference)
    except BaseException:
        writer.abort()  # nothing was judged: leave no report behind
        raise
    workers = workers or default_workers(source.total_bytes())
    run_id = None
    kept: list[dict] | None = [] if store is not None else None
    store_history = None
    if store is not None:
        from .store import KEEP_INPUT_CLAIMS

        store.import_policy(policy)
        upto = store.max_claim_record()
        keep_limit = KEEP_INPUT_CLAIMS
        run_id = store.begin_run(policy.digest, known_on, options or {}, upto,
                                 _sources(source.paths, encounters))
        store_history = StoreHistory(store, upto, _prepared(ctx))

    def sink(records: list[dict]) -> None:
        nonlocal kept
        writer.write(records)
        if store is not None:
            store.add_records(run_id, records)
            if kept is not None:
                kept.extend(_encoded(r) for r in records)
                if len(kept) > keep_limit:
                    kept = None  # too large to keep as text: the receipt names the files instead

    executor = make_executor(ctx, workers, scheduler, dask)
    try:
        with tempfile.TemporaryDirectory(prefix="payerpolicy-") as workdir:
            summary = run_batch(source, ctx, executor, store_history=store_history, sink=sink,
                                chunk_size=chunk_size, progress=progress, total=total, workdir=Path(workdir))
        if store is not None:
            text = json.dumps(kept, sort_keys=True, default=str) if kept is not None else None
            store.finish_run(run_id, summary.counts, source.digest, text)
        writer.close(summary.counts, run_id, summary.files)
    except BaseException:
        writer.abort()
        if store is not None and run_id is not None:
            store.abandon_run(run_id)
        raise
    finally:
        executor.close()
    return FileRun(summary, run_id, executor.workers)


def _sources(paths: list[Path | str], encounters: Path | None) -> list[str]:
    return [p if isinstance(p, str) else str(p.resolve()) for p in paths] + \
        ([f"encounters={encounters.resolve()}"] if encounters else [])


def _encoded(record: dict) -> dict[str, Any]:
    result = record["result"]
    if result["status"] == "invalid":
        return {"invalid": {"id": result["id"], "errors": result["errors"]}}
    return {"claim": json.loads(record["body"])}


# ---- small batches in memory ---------------------------------------------------------------


def _encode(items: list[Claim | InvalidClaim]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if isinstance(item, Claim):
            out.append({"claim": item.model_dump(mode="json")})
        else:
            out.append({"invalid": {"id": item.id, "errors": [e.as_dict() for e in item.errors]}})
    return out


def _decode(encoded: list[dict[str, Any]]) -> list[Claim | InvalidClaim]:
    items: list[Claim | InvalidClaim] = []
    for position, entry in enumerate(encoded, 1):
        if "claim" in entry:
            items.append(Claim.model_validate(entry["claim"]))
        else:
            bad = entry["invalid"]
            items.append(InvalidClaim(bad["id"], position, [InputError(**e) for e in bad["errors"]]))
    return items


def family_lookup(policy: PolicySet, known_on: dt.date,
                  resolver: Resolver | None = None) -> Callable[[Claim, dt.date, str], str | None]:
    resolver = resolver or Resolver(policy)
    return lambda claim, day, code: family_of(resolver, claim, day, code, known_on)


@dataclass
class RunOutcome:
    result: ScrubResult
    run_id: str | None


class Commit(Protocol):
    """How a caller with a deadline (the service) decides whether a finished batch is stored."""

    def allow(self) -> bool:
        """False when the caller gave up waiting: nothing is stored."""

    def rows(self, result: ScrubResult) -> Callable[[Any, str], None] | None:
        """Rows of the caller's to store in the run's transaction, given its Core connection and the run id."""


def scrub_items(items: list[Claim | InvalidClaim], policy: PolicySet, known_on: dt.date,
                store: "Store | None", options: dict[str, Any] | None = None,
                progress: Callable[[int], None] | None = None, resolver: Resolver | None = None,
                commit: Commit | None = None, reference: str | None = None,
                files: list[FileProblem] | None = None, keep: bool = True) -> RunOutcome:
    """Scrub a batch held in memory (the service's requests); with a store, use its history and keep
    the run (unless ``keep`` is false: judged as the store would, nothing written).

    A caller serving many batches passes one ``resolver``, so snapshots are resolved and compiled once.
    ``files`` are the problems of the files the batch came from, reported in the result's ``files``.
    """
    if resolver is None:
        from .reference.lookup import open_reference

        resolver = Resolver(policy, open_reference(reference))
    problems = [p.as_dict() for p in files or []]
    if store is None:
        result = scrub(items, policy, known_on, progress=progress, resolver=resolver)
        result.files = problems
        return RunOutcome(result, None)
    store.import_policy(policy)
    upto = store.max_claim_record()
    history = store.history_for(items, family_lookup(policy, known_on, resolver), upto)
    result = scrub(items, policy, known_on, history=history, progress=progress, resolver=resolver)
    result.files = problems
    if not keep or (commit is not None and not commit.allow()):
        return RunOutcome(result, None)
    run_id = store.record_run(result, items, _encode(items), options or {}, upto,
                              attach=commit.rows(result) if commit is not None else None)
    return RunOutcome(result, run_id)


class ReplayError(Exception):
    """A stored run cannot be replayed (its input files are gone or changed)."""


def replay(store: "Store", run_id: str) -> tuple[ScrubResult | None, list[tuple[int, dict]], list[tuple[int, dict]]]:
    """Re-run a stored run from its receipt alone; returns the result, stored and new findings.

    A run small enough to keep its input is replayed from the store; a larger one re-reads
    its files and fails if their digest is not the one the run recorded.
    """
    from .reference.lookup import reference_path

    run, rows = store.get_run(run_id)
    policy = store.load_policy(run.policy_digest)
    reference = reference_path(store.url)
    stored = [(r.claim_position, json.loads(r.body)) for r in rows]
    if run.input:
        items = _decode(json.loads(run.input))
        history = store.history_for(items, family_lookup(policy, run.known_on), run.history_upto)
        result = scrub(items, policy, run.known_on, history=history, reference=reference)
        fresh = [(c.position, f.as_dict()) for c in result.claims for f in c.findings]
        return result, stored, fresh
    sources = json.loads(run.sources or "[]")
    paths = [s if "://" in s else Path(s) for s in sources if not s.startswith("encounters=")]
    encounters = [Path(s[len("encounters="):]) for s in sources if s.startswith("encounters=")]
    missing = [p for p in paths + encounters if isinstance(p, Path) and not p.exists()]
    if not paths or missing:
        raise ReplayError(f"run {run_id}: its input files are no longer there ({', '.join(map(str, missing))})"
                          if missing else f"run {run_id}: the run kept neither its input nor its files")
    options = json.loads(run.options or "{}")
    source = Input(paths, policy)
    ctx = Context(policy, run.known_on, (options.get("payer") or "").lower() or None,
                  read_encounters(encounters[0]) if encounters else None, reference=reference)
    fresh: list[tuple[int, dict]] = []

    def sink(records: list[dict]) -> None:
        fresh.extend((r["position"], f) for r in records for f in r["result"].get("findings", ()))

    executor = make_executor(ctx, 1)
    with tempfile.TemporaryDirectory(prefix="payerpolicy-") as workdir:
        run_batch(source, ctx, executor, store_history=StoreHistory(store, run.history_upto, _prepared(ctx)),
                  sink=sink, workdir=Path(workdir))
    if source.digest != run.input_digest:
        raise ReplayError(f"run {run_id}: its input files changed since the run (digest differs)")
    return None, stored, fresh
