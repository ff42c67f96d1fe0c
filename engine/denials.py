"""Historical denial analysis: re-judge each claim as known when the payer adjudicated it and
as known today, and join that to what the payer did.

Per remitted line: ``predicted`` (a rule in force at adjudication explains the denial),
``overturned`` (it did, but a later, retroactive change means it no longer does: reprocess
or appeal), ``unexplained`` (no rule predicts it), ``false_positive`` (paid although a rule
said it would be denied) and ``agreed_paid``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator

from . import collector
from .claims import Claim
from .findings import Finding
from .money import ZERO, cents, json_default, money_text, parse_money
from .policy.model import PolicySet
from .reports import cells
from .scrub import scrub_iter
from .x12.match import match_claim
from .x12.remit835 import Adjustment, RemitClaim, RemitLine, Remittance, read_835

CSV_COLUMNS = ["claim_id", "line", "code", "charge", "paid", "adjustments", "remarks", "adjudication_date"]


class RemitFileError(ValueError):
    pass


def _csv_rows(lines: Iterable[str], name: str) -> Iterator[tuple[str, dt.date, RemitLine]]:
    """The service lines of a CSV remittance file, checked row by row."""
    reader = csv.DictReader(lines)
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RemitFileError(f"{name}: missing columns {', '.join(missing)}")
    for number, row in enumerate(reader, 2):
        try:
            day = dt.date.fromisoformat(row["adjudication_date"])
            charge, paid = parse_money(row["charge"]) or ZERO, parse_money(row["paid"]) or ZERO
            position = int(row["line"])
        except ValueError:
            raise RemitFileError(f"{name}:{number}: line, charge, paid or adjudication_date is not valid") from None
        adjustments = []
        for item in filter(None, (row["adjustments"] or "").split(";")):
            code, _, amount = item.partition(":")
            group, _, carc = code.strip().partition("-")
            if not group or not carc:
                raise RemitFileError(f"{name}:{number}: adjustment '{item}' is not GROUP-CARC[:amount]")
            adjustments.append(Adjustment(group=group.upper(), carc=carc.upper(),
                                          amount=_amount(amount, item, name, number)))
        yield row["claim_id"], day, RemitLine(position=position, code=row["code"].strip().upper(), charge=charge,
                                              paid=paid, adjustments=adjustments,
                                              remarks=[r for r in (row["remarks"] or "").split(";") if r])


def _amount(text: str, item: str, name: str, number: int) -> Decimal | None:
    try:
        return parse_money(text)
    except ValueError:
        raise RemitFileError(f"{name}:{number}: adjustment '{item}': '{text}' is not an amount") from None


def _csv_claim(claim_id: str, lines: list[RemitLine]) -> RemitClaim:
    """One claim's CSV rows of one adjudication date as a remitted claim (denied when nothing was paid)."""
    claim = RemitClaim(claim_id=claim_id, status="1", charge=sum((ln.charge or ZERO for ln in lines), ZERO),
                       paid=sum((ln.paid or ZERO for ln in lines), ZERO), lines=lines)
    if not claim.paid and all(ln.paid == 0 for ln in lines):
        claim.status = "4"
    return claim


def read_remit_csv(text: str, name: str = "remits.csv") -> list[Remittance]:
    """CSV remittances: claim_id, line, code, charge, paid, adjustments ("CO-96;PR-1:20.00"),
    remarks ("N130;M51"), adjudication_date (YYYY-MM-DD). One row per service line."""
    by_date: dict[dt.date, dict[str, list[RemitLine]]] = defaultdict(dict)
    for claim_id, day, line in _csv_rows(io.StringIO(text), name):
        by_date[day].setdefault(claim_id, []).append(line)
    return [Remittance(production_date=day, claims=[_csv_claim(cid, lines) for cid, lines in claims.items()])
            for day, claims in sorted(by_date.items())]


class RemitIndex:
    """Remitted claims by claim id, on disk: memory does not grow with the number of remits.

    835 claims are kept as read; CSV rows are kept per line and joined into one remitted
    claim per claim id and adjudication date when looked up, whatever their order in the file.
    """

    def __init__(self) -> None:
        self.db = sqlite3.connect("")  # a private temporary database, deleted when closed
        self.db.executescript("""
            PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
            CREATE TABLE remit (claim_id TEXT, day INT, body TEXT);
            CREATE TABLE csv_line (claim_id TEXT, day INT, body TEXT);
            CREATE TABLE seen (claim_id TEXT PRIMARY KEY);
        """)
        self._sealed = False

    def add(self, remittance: Remittance) -> None:
        day = remittance.production_date.toordinal() if remittance.production_date else None
        self.db.executemany("INSERT INTO remit VALUES (?, ?, ?)",
                            [(rc.claim_id, day, rc.model_dump_json()) for rc in remittance.claims])

    def add_csv(self, rows: Iterable[tuple[str, dt.date, RemitLine]]) -> None:
        batch = []
        for claim_id, day, line in rows:
            batch.append((claim_id, day.toordinal(), line.model_dump_json()))
            if len(batch) >= 10_000:
                self.db.executemany("INSERT INTO csv_line VALUES (?, ?, ?)", batch)
                batch = []
        self.db.executemany("INSERT INTO csv_line VALUES (?, ?, ?)", batch)

    def _seal(self) -> None:
        if not self._sealed:
            self.db.execute("CREATE INDEX remit_claim ON remit (claim_id)")
            self.db.execute("CREATE INDEX csv_claim ON csv_line (claim_id, day)")
            self._sealed = True

    def lookup(self, claim_ids: list[str]) -> dict[str, list[tuple[RemitClaim, dt.date | None]]]:
        """Each claim's remits (in the order they were read), and the claims marked as seen."""
        self._seal()
        found: dict[str, list[tuple[RemitClaim, dt.date | None]]] = defaultdict(list)
        for start in range(0, len(claim_ids), 500):
            group = claim_ids[start:start + 500]
            marks = ",".join("?" * len(group))
            for claim_id, day, body in self.db.execute(
                    f"SELECT claim_id, day, body FROM remit WHERE claim_id IN ({marks}) ORDER BY rowid", group):
                found[claim_id].append((RemitClaim.model_validate_json(body), _date(day)))
            lines: dict[tuple[str, int], list[RemitLine]] = defaultdict(list)
            for claim_id, day, body in self.db.execute(
                    f"SELECT claim_id, day, body FROM csv_line WHERE claim_id IN ({marks}) ORDER BY day, rowid", group):
                lines[(claim_id, day)].append(RemitLine.model_validate_json(body))
            for (claim_id, day), claim_lines in lines.items():
                found[claim_id].append((_csv_claim(claim_id, claim_lines), _date(day)))
        self.db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(c,) for c in found])
        return found

    def all(self) -> Iterator[tuple[RemitClaim, dt.date | None]]:
        """Every remitted claim with its adjudication date (CSV rows joined per claim and date)."""
        for claim_id, day, body in self.db.execute("SELECT claim_id, day, body FROM remit ORDER BY rowid"):
            yield RemitClaim.model_validate_json(body), _date(day)
        current: tuple[str, int] | None = None
        lines: list[RemitLine] = []
        for claim_id, day, body in self.db.execute("SELECT claim_id, day, body FROM csv_line "
                                                   "ORDER BY claim_id, day, rowid"):
            if current is not None and (claim_id, day) != current:
                yield _csv_claim(current[0], lines), _date(current[1])
                lines = []
            current = (claim_id, day)
            lines.append(RemitLine.model_validate_json(body))
        if current is not None:
            yield _csv_claim(current[0], lines), _date(current[1])

    def unmatched(self) -> list[str]:
        """Remitted claim ids that no claim looked up."""
        self._seal()
        return [c for (c,) in self.db.execute(
            "SELECT DISTINCT claim_id FROM (SELECT claim_id FROM remit UNION SELECT claim_id FROM csv_line) "
            "WHERE claim_id NOT IN (SELECT claim_id FROM seen) ORDER BY claim_id")]

    def close(self) -> None:
        self.db.close()


def _date(ordinal: int | None) -> dt.date | None:
    return dt.date.fromordinal(ordinal) if ordinal is not None else None


def read_remit_files(paths: list[Path]) -> RemitIndex:
    """835 and CSV remittance files (or folders of them) into an index on disk."""
    index = RemitIndex()
    try:
        for path in _expand(paths, {".835", ".csv", ".x12", ".edi", ".txt"}):
            if path.suffix.lower() == ".csv":
                with path.open(encoding="utf-8", errors="replace", newline="") as handle:
                    index.add_csv(_csv_rows(handle, path.name))
            else:
                for remittance in read_835(path.read_text(encoding="utf-8", errors="replace")):
                    index.add(remittance)
    except BaseException:
        index.close()
        raise
    return index


def _expand(paths: list[Path], suffixes: set[str]) -> list[Path]:
    found = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes))
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    return found


INPUT_SUFFIXES = {".json", ".jsonl", ".837", ".835", ".x12", ".edi", ".txt", ".csv"}


def sort_inputs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Claim files and remittance files, in any order and any number, told apart by content:
    an interchange by its transaction set (ST*835 or ST*837), a CSV by its header (a Tuva
    medical_claim table is claims, any other CSV remittances), everything else claims."""
    from .tuva import TUVA_KEYS

    claims, remits = [], []
    for path in _expand(paths, INPUT_SUFFIXES):
        with path.open("rb") as handle:
            head = handle.read(4096)
        start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if path.suffix.lower() == ".csv":
            header = {h.strip().strip('"') for h in start.split(b"\n", 1)[0].decode("utf-8", "replace").split(",")}
            (claims if TUVA_KEYS <= header else remits).append(path)
        elif start.startswith(b"ISA") and len(start) > 3:
            separator = start[3:4]
            (remits if b"ST" + separator + b"835" in head else claims).append(path)
        else:
            claims.append(path)
    return claims, remits


@dataclass(slots=True, frozen=True)
class RuleHit:
    """What the analysis keeps of a finding (a year of lines must not hold every trace)."""

    rule: str
    revision: str
    carc: str | None
    message: str
    fix: str | None
    source: str

    @classmethod
    def of(cls, f: Finding) -> "RuleHit":
        return cls(f.rule, f.revision, f.carc, f.message, f.fix["text"] if f.fix else None, f.source)


@dataclass(slots=True)
class LineOutcome:
    claim_id: str
    line: int
    code: str
    payer: str
    service_date: dt.date
    adjudicated: dt.date | None
    charge: Decimal
    paid: Decimal
    carcs: list[str]  # "CO-96"
    category: str
    rules_then: list[RuleHit] = field(default_factory=list)
    rules_now: list[RuleHit] = field(default_factory=list)
    carc_match: bool = False
    family: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id, "line": self.line, "code": self.code, "payer": self.payer,
            "service_date": self.service_date.isoformat(),
            "adjudicated": self.adjudicated.isoformat() if self.adjudicated else None,
            "charge": self.charge, "paid": self.paid, "carcs": self.carcs,
            "category": self.category, "carc_match": self.carc_match,
            "rules_then": [f.rule for f in self.rules_then], "rules_now": [f.rule for f in self.rules_now],
            "fix": self.rules_then[0].fix if self.rules_then else None,
            "source": self.rules_then[0].source if self.rules_then else None,
        }


class DenialReport:
    """The analysis, aggregated line by line as lines arrive, so a year need not be held.

    ``lines`` keeps every line's outcome only when asked (the JSON output lists them)."""

    def __init__(self, known_on: dt.date, keep_lines: bool = True):
        self.known_on = known_on
        self.keep_lines = keep_lines
        self.lines: list[LineOutcome] = []
        # filled by the callers that read the files: claims that could not be read, problems of files
        self.not_analysed: list[dict[str, Any]] = []
        self.files: list[dict[str, Any]] = []
        self.unmatched_remits: list[str] = []
        self.claims_from_earlier_runs = 0  # kept in the store by earlier runs, when the store was read
        # The worklist and the claims without a remit grow with the year: they are kept on disk.
        self._db = sqlite3.connect("")
        self._db.executescript("""
            PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
            CREATE TABLE work (cents INTEGER, body TEXT);
            CREATE TABLE unremitted (claim_id TEXT);
        """)
        self._counts: dict[str, int] = defaultdict(int)
        self._dollars: dict[str, Decimal] = defaultdict(Decimal)
        self._stats: dict[tuple[str, str], dict[str, Any]] = {}
        self._denied_by_carc: dict[tuple[str, str], int] = defaultdict(int)
        self._trends: dict[str, dict[str, dict[str, Any]]] = {"month": {}, "payer": {}, "family": {}, "carc": {}}
        self._unexplained: dict[tuple[str, str], dict[str, Any]] = {}
        self._work = 0

    def add_unremitted(self, claim_id: str) -> None:
        self._db.execute("INSERT INTO unremitted VALUES (?)", (claim_id,))

    @property
    def unremitted_claims(self) -> list[str]:
        return [c for (c,) in self._db.execute("SELECT claim_id FROM unremitted ORDER BY rowid")]

    def _to_work(self, row: dict[str, Any]) -> None:
        # ordered by the charge in whole cents; the body keeps it as money text
        self._db.execute("INSERT INTO work VALUES (?, ?)", (int(cents(row["charge"]) * 100),
                                                           json.dumps(row, default=json_default)))
        self._work += 1

    def add(self, ln: LineOutcome) -> None:
        if self.keep_lines:
            self.lines.append(ln)
        self._counts[ln.category] += 1
        self._dollars[ln.category] += ln.charge
        denied = ln.category in ("predicted", "overturned", "unexplained")
        if denied:
            for carc in {c.split("-", 1)[1] for c in ln.carcs}:
                self._denied_by_carc[(ln.payer, carc)] += 1
            keys = {"month": ln.service_date.strftime("%Y-%m"), "payer": ln.payer, "family": ln.family or "other"}
            for axis, key in list(keys.items()) + [("carc", c) for c in (ln.carcs or ["(none)"])]:
                bucket = self._trends[axis].setdefault(key, {"denied": 0, "dollars": ZERO})
                bucket["denied"] += 1
                bucket["dollars"] += ln.charge
        for f in ln.rules_then:
            s = self._stats.setdefault((f.rule, ln.payer), {"rule": f.rule, "payer": ln.payer, "carc": f.carc,
                                                            "fired": 0, "agreed": 0, "caught": 0, "dollars": ZERO})
            s["fired"] += 1
            s["dollars"] += ln.charge
            if ln.category in ("predicted", "overturned"):
                s["agreed"] += 1
                if f.carc and any(c.endswith("-" + f.carc) for c in ln.carcs):
                    s["caught"] += 1
        if ln.category == "unexplained":
            for carc in ln.carcs or ["(none)"]:
                p = self._unexplained.setdefault((carc, ln.payer), {"carc": carc, "payer": ln.payer, "lines": 0,
                                                                    "dollars": ZERO})
                p["lines"] += 1
                p["dollars"] += ln.charge
        if ln.category == "predicted" and ln.rules_now:
            f = ln.rules_now[0]
            self._to_work({"claim_id": ln.claim_id, "line": ln.line, "code": ln.code, "payer": ln.payer,
                                   "charge": ln.charge, "action": "correct and resubmit", "rule": f.rule,
                                   "reason": f.message, "fix": f.fix or "", "source": f.source})
        elif ln.category == "overturned":
            f = ln.rules_then[0]
            self._to_work({"claim_id": ln.claim_id, "line": ln.line, "code": ln.code, "payer": ln.payer,
                                   "charge": ln.charge, "action": "reprocess or appeal", "rule": f.rule,
                                   "reason": f"denied under {f.rule} revision {f.revision}; as known today the line "
                                             f"is payable (a later change applies retroactively)",
                                   "fix": "Ask the payer to reprocess, or appeal citing the retroactive change.",
                                   "source": f.source})

    def totals(self) -> dict[str, Any]:
        lines = sum(self._counts.values())
        return {"lines": lines, "by_category": dict(self._counts),
                "charges_by_category": dict(self._dollars),
                "denied_lines": sum(self._counts[c] for c in ("predicted", "overturned", "unexplained")),
                "unmatched_remits": len(self.unmatched_remits),
                "unremitted_claims": self._db.execute("SELECT count(*) FROM unremitted").fetchone()[0]}

    def rule_stats(self) -> list[dict[str, Any]]:
        out = []
        for (rule, payer), s in sorted(self._stats.items()):
            total = self._denied_by_carc.get((payer, s["carc"]), 0)
            out.append(dict(s,
                            precision=round(s["agreed"] / s["fired"], 3) if s["fired"] else None,
                            recall=round(s["caught"] / total, 3) if total else None))
        return out

    def trends(self) -> dict[str, dict[str, dict[str, Any]]]:
        return {axis: dict(sorted(values.items())) for axis, values in self._trends.items()}

    def top_unexplained(self, limit: int = 10) -> list[dict[str, Any]]:
        return sorted(self._unexplained.values(), key=lambda p: (-p["lines"], -p["dollars"]))[:limit]

    def worklist(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The lines to act on, largest charge first (read back from disk)."""
        return list(self.iter_worklist(limit))

    def iter_worklist(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        query = "SELECT body FROM work ORDER BY cents DESC, rowid" + (f" LIMIT {int(limit)}" if limit else "")
        for (body,) in self._db.execute(query):
            row = json.loads(body)
            row["charge"] = Decimal(row["charge"])
            yield row

    def as_dict(self) -> dict[str, Any]:
        return {"known_on": self.known_on.isoformat(), "totals": self.totals(),
                "lines": [ln.as_dict() for ln in self.lines], "rules": self.rule_stats(), "trends": self.trends(),
                "top_unexplained": self.top_unexplained(), "worklist": self.worklist(),
                "unmatched_remits": self.unmatched_remits, "unremitted_claims": self.unremitted_claims}


def worklist_csv(report: DenialReport) -> str:
    out = io.StringIO()
    columns = ["claim_id", "line", "code", "payer", "charge", "action", "rule", "reason", "fix", "source"]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in report.iter_worklist():
        writer.writerow(cells.row(dict(row, charge=money_text(row["charge"]))))
    return out.getvalue()


def _denied(rc: RemitClaim, rl: RemitLine | None) -> tuple[bool, list[str]]:
    adjustments = (rl.adjustments if rl else []) + (rc.adjustments if rl is None or rc.status == "4" else [])
    carcs = [f"{a.group}-{a.carc}" for a in adjustments if a.group != "PR"]
    paid = rl.paid if rl is not None else rc.paid
    denied = rc.status == "4" or (paid is not None and paid == 0 and bool(carcs))
    return denied, carcs


CHUNK = 5000


def analyze(claims: Iterable[Claim], remits: "Iterable[Remittance] | RemitIndex", policy: PolicySet, today: dt.date,
            progress: Callable[[int], None] | None = None, keep_lines: bool = True,
            workers: int = 1, reference: str | None = None) -> DenialReport:
    """Join remits to claims and classify every remitted line, a chunk of claims at a time.

    Remits are looked up from an index on disk, chunk by chunk, so neither they nor the
    worklist are held in memory. With ``workers`` above 1, chunks are judged in that many
    processes and their outcomes folded into the report in input order.
    """
    from .batch import Context, make_executor

    index = remits if isinstance(remits, RemitIndex) else RemitIndex()
    if index is not remits:
        for remittance in remits:
            index.add(remittance)
    report = DenialReport(today, keep_lines)
    executor = make_executor(Context(policy, today, reference=reference), workers)

    def chunks() -> Iterator[tuple]:
        chunk: list[Claim] = []
        for claim in claims:
            if claim.payer in policy.payers:
                chunk.append(claim)
            if len(chunk) >= CHUNK:
                yield (_pairs_of(chunk, index, report, today), len(chunk))
                chunk = []
        yield (_pairs_of(chunk, index, report, today), len(chunk))

    try:
        sizes: list[int] = []

        def calls() -> Iterator[tuple]:
            for pairs, size in chunks():
                sizes.append(size)
                yield (pairs,)

        for outcomes in executor.ordered(judge_pairs, calls()):
            for outcome in outcomes:
                report.add(outcome)
            if progress:
                progress(sizes.pop(0))
    finally:
        executor.close()
    report.unmatched_remits = index.unmatched()
    if index is not remits:
        index.close()
    return report


def _pairs_of(chunk: list[Claim], index: RemitIndex, report: DenialReport,
              today: dt.date) -> list[tuple[dt.date, list]]:
    """A chunk's claims joined to their remits, grouped by adjudication date (claims without one are noted)."""
    by_date: dict[dt.date, list] = defaultdict(list)
    remitted = index.lookup([c.id for c in chunk]) if chunk else {}
    for claim in chunk:
        entries = remitted.get(claim.id)
        if not entries:
            report.add_unremitted(claim.id)
            continue
        for rc, day in entries:
            by_date[day or today].append(match_claim(claim, rc))
    return sorted(by_date.items())


@collector.per_chunk
def judge_pairs(ctx: Any, by_date: list[tuple[dt.date, list]]) -> list[LineOutcome]:
    """Each remitted line of a chunk judged as known at adjudication and as known today (runs in any worker)."""
    from .batch import _prepared

    prep = _prepared(ctx)
    policy, today, resolver = prep.ctx.policy, prep.ctx.known_on, prep.resolver
    outcomes: list[LineOutcome] = []
    for day, pairs in by_date:
        batch = [p.claim for p in pairs]
        for pair, a, b in zip(pairs, scrub_iter(batch, policy, day, resolver=resolver),
                              scrub_iter(batch, policy, today, resolver=resolver)):
            claim = pair.claim
            for number, line in enumerate(claim.lines, 1):
                rl = pair.lines.get(number)
                if rl is None and pair.lines:
                    continue  # a line the payer did not adjudicate separately
                denied, carcs = _denied(pair.remit, rl)
                errors_then = [RuleHit.of(f) for f in a.findings if f.line == number and f.severity == "error"]
                errors_now = [RuleHit.of(f) for f in b.findings if f.line == number and f.severity == "error"]
                if denied:
                    category = ("unexplained" if not errors_then else "overturned" if not errors_now else "predicted")
                else:
                    category = "false_positive" if errors_then else "agreed_paid"
                attrs = resolver.get(claim.payer, claim.state, today).code_attrs(line.code, claim.line_date(line)) or {}
                outcomes.append(LineOutcome(
                    claim.id, number, line.code, claim.payer, claim.line_date(line), day,
                    line.charge or (rl.charge if rl else None) or ZERO, (rl.paid if rl else pair.remit.paid) or ZERO,
                    carcs, category, errors_then, errors_now,
                    carc_match=any(f.carc and any(c.endswith("-" + f.carc) for c in carcs) for f in errors_then),
                    family=attrs.get("family") or attrs.get("kind")))
    return outcomes


def analyse_files(paths: list[Path], policy: PolicySet, today: dt.date, encounters: dict | None = None,
                  reference: str | None = None, keep_lines: bool = True, store: Any = None) -> DenialReport:
    """Claim and remittance files in any mix, sorted by content and analysed (the Python API, the
    workbench). Without a ``store`` nothing is kept (``denials --no-store``); with one, the files
    join what earlier runs kept and everything kept is analysed, as ``denials`` does, with the
    number of claims from earlier runs in the report's ``claims_from_earlier_runs``. The claims
    that could not be read go to the report's ``not_analysed``, the problems of files outside every
    claim to ``files``: said, never dropped."""
    from .pipeline import iter_claim_files

    claim_files, remit_files = sort_inputs(paths)
    if not claim_files or not remit_files:
        raise ValueError(f"no {'claim' if not claim_files else 'remittance'} files among those given "
                         f"(claims: 837 or JSON; remittances: 835 or CSV)")
    not_analysed: list[dict[str, Any]] = []
    files: list[Any] = []
    given = [0]

    def claims() -> Iterator[Claim]:
        for item in iter_claim_files(claim_files, policy, encounters, files=files):
            if isinstance(item, Claim):
                given[0] += 1
                yield item
            else:
                not_analysed.append({"id": item.id, "errors": [e.as_dict() for e in item.errors]})

    remits = read_remit_files(remit_files)
    if store is None:
        report = analyze(claims(), remits, policy, today, keep_lines=keep_lines, reference=reference)
    else:
        store.add_denial_history(claims(), remits)
        remits.close()
        report = analyse_store(store, policy, today, reference, keep_lines)
        report.claims_from_earlier_runs = max(report.claims_from_earlier_runs - given[0], 0)
    report.not_analysed = not_analysed
    report.files = [p.as_dict() for p in files]
    return report


def analyse_store(store: Any, policy: PolicySet, today: dt.date, reference: str | None = None,
                  keep_lines: bool = True) -> DenialReport:
    """Every claim and remit the store keeps from earlier ``denials`` runs, analysed again as known
    on ``today``; ``claims_from_earlier_runs`` is how many claims that is."""
    report = analyze(store.denial_claims(), store.denial_remits(), policy, today, keep_lines=keep_lines,
                     reference=reference)
    report.claims_from_earlier_runs = store.denial_claim_count()
    return report
