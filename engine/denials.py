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
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from .claims import Claim
from .findings import Finding
from .policy.model import PolicySet
from .policy.snapshot import Resolver
from .scrub import scrub_iter
from .x12.match import match_claim
from .x12.remit835 import Adjustment, RemitClaim, RemitLine, Remittance, read_835

CSV_COLUMNS = ["claim_id", "line", "code", "charge", "paid", "adjustments", "remarks", "adjudication_date"]


class RemitFileError(ValueError):
    pass


def read_remit_csv(text: str, name: str = "remits.csv") -> list[Remittance]:
    """CSV remittances: claim_id, line, code, charge, paid, adjustments ("CO-96;PR-1:20.00"),
    remarks ("N130;M51"), adjudication_date (YYYY-MM-DD). One row per service line."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise RemitFileError(f"{name}: missing columns {', '.join(missing)}")
    by_date: dict[dt.date, dict[str, RemitClaim]] = defaultdict(dict)
    for number, row in enumerate(reader, 2):
        try:
            day = dt.date.fromisoformat(row["adjudication_date"])
            charge, paid = float(row["charge"] or 0), float(row["paid"] or 0)
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
                                          amount=float(amount) if amount else None))
        claim = by_date[day].setdefault(row["claim_id"], RemitClaim(claim_id=row["claim_id"], status="1",
                                                                    charge=0.0, paid=0.0))
        claim.charge = (claim.charge or 0) + charge
        claim.paid = (claim.paid or 0) + paid
        claim.lines.append(RemitLine(position=position, code=row["code"].strip().upper(), charge=charge, paid=paid,
                                     adjustments=adjustments,
                                     remarks=[r for r in (row["remarks"] or "").split(";") if r]))
    remits = []
    for day, claims in sorted(by_date.items()):
        for claim in claims.values():
            if not claim.paid and all(ln.paid == 0 for ln in claim.lines):
                claim.status = "4"
        remits.append(Remittance(production_date=day, claims=list(claims.values())))
    return remits


def read_remit_files(paths: list[Path]) -> list[Remittance]:
    remits: list[Remittance] = []
    for path in _expand(paths, {".835", ".csv", ".x12", ".edi", ".txt"}):
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() == ".csv":
            remits.extend(read_remit_csv(text, path.name))
        else:
            remits.extend(read_835(text))
    return remits


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


def claim_files(paths: list[Path]) -> list[Path]:
    return _expand(paths, {".json", ".jsonl", ".837", ".x12", ".edi", ".txt"})


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
    charge: float
    paid: float
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
            "charge": round(self.charge, 2), "paid": round(self.paid, 2), "carcs": self.carcs,
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
        self.unmatched_remits: list[str] = []
        self.unremitted_claims: list[str] = []
        self._counts: dict[str, int] = defaultdict(int)
        self._dollars: dict[str, float] = defaultdict(float)
        self._stats: dict[tuple[str, str], dict[str, Any]] = {}
        self._denied_by_carc: dict[tuple[str, str], int] = defaultdict(int)
        self._trends: dict[str, dict[str, dict[str, float]]] = {"month": {}, "payer": {}, "family": {}, "carc": {}}
        self._unexplained: dict[tuple[str, str], dict[str, Any]] = {}
        self._worklist: list[dict[str, Any]] = []

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
                bucket = self._trends[axis].setdefault(key, {"denied": 0, "dollars": 0.0})
                bucket["denied"] += 1
                bucket["dollars"] = round(bucket["dollars"] + ln.charge, 2)
        for f in ln.rules_then:
            s = self._stats.setdefault((f.rule, ln.payer), {"rule": f.rule, "payer": ln.payer, "carc": f.carc,
                                                            "fired": 0, "agreed": 0, "caught": 0, "dollars": 0.0})
            s["fired"] += 1
            s["dollars"] += ln.charge
            if ln.category in ("predicted", "overturned"):
                s["agreed"] += 1
                if f.carc and any(c.endswith("-" + f.carc) for c in ln.carcs):
                    s["caught"] += 1
        if ln.category == "unexplained":
            for carc in ln.carcs or ["(none)"]:
                p = self._unexplained.setdefault((carc, ln.payer), {"carc": carc, "payer": ln.payer, "lines": 0,
                                                                    "dollars": 0.0})
                p["lines"] += 1
                p["dollars"] = round(p["dollars"] + ln.charge, 2)
        if ln.category == "predicted" and ln.rules_now:
            f = ln.rules_now[0]
            self._worklist.append({"claim_id": ln.claim_id, "line": ln.line, "code": ln.code, "payer": ln.payer,
                                   "charge": round(ln.charge, 2), "action": "correct and resubmit", "rule": f.rule,
                                   "reason": f.message, "fix": f.fix or "", "source": f.source})
        elif ln.category == "overturned":
            f = ln.rules_then[0]
            self._worklist.append({"claim_id": ln.claim_id, "line": ln.line, "code": ln.code, "payer": ln.payer,
                                   "charge": round(ln.charge, 2), "action": "reprocess or appeal", "rule": f.rule,
                                   "reason": f"denied under {f.rule} revision {f.revision}; as known today the line "
                                             f"is payable (a later change applies retroactively)",
                                   "fix": "Ask the payer to reprocess, or appeal citing the retroactive change.",
                                   "source": f.source})

    def totals(self) -> dict[str, Any]:
        lines = sum(self._counts.values())
        return {"lines": lines, "by_category": dict(self._counts),
                "charges_by_category": {k: round(v, 2) for k, v in self._dollars.items()},
                "denied_lines": sum(self._counts[c] for c in ("predicted", "overturned", "unexplained")),
                "unmatched_remits": len(self.unmatched_remits), "unremitted_claims": len(self.unremitted_claims)}

    def rule_stats(self) -> list[dict[str, Any]]:
        out = []
        for (rule, payer), s in sorted(self._stats.items()):
            total = self._denied_by_carc.get((payer, s["carc"]), 0)
            out.append(dict(s, dollars=round(s["dollars"], 2),
                            precision=round(s["agreed"] / s["fired"], 3) if s["fired"] else None,
                            recall=round(s["caught"] / total, 3) if total else None))
        return out

    def trends(self) -> dict[str, dict[str, dict[str, float]]]:
        return {axis: dict(sorted(values.items())) for axis, values in self._trends.items()}

    def top_unexplained(self, limit: int = 10) -> list[dict[str, Any]]:
        return sorted(self._unexplained.values(), key=lambda p: (-p["lines"], -p["dollars"]))[:limit]

    def worklist(self) -> list[dict[str, Any]]:
        return sorted(self._worklist, key=lambda r: -r["charge"])

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
    for row in report.worklist():
        writer.writerow(row)
    return out.getvalue()


def _denied(rc: RemitClaim, rl: RemitLine | None) -> tuple[bool, list[str]]:
    adjustments = (rl.adjustments if rl else []) + (rc.adjustments if rl is None or rc.status == "4" else [])
    carcs = [f"{a.group}-{a.carc}" for a in adjustments if a.group != "PR"]
    paid = rl.paid if rl is not None else rc.paid
    denied = rc.status == "4" or (paid is not None and paid == 0 and bool(carcs))
    return denied, carcs


CHUNK = 5000


def analyze(claims: Iterable[Claim], remits: list[Remittance], policy: PolicySet, today: dt.date,
            progress: Callable[[int], None] | None = None, keep_lines: bool = True) -> DenialReport:
    """Join remits to claims and classify every remitted line, a chunk of claims at a time."""
    index: dict[str, list[tuple[RemitClaim, dt.date | None]]] = defaultdict(list)
    for remit in remits:
        for rc in remit.claims:
            index[rc.claim_id].append((rc, remit.production_date))
    report = DenialReport(today, keep_lines)
    resolver = Resolver(policy)
    seen: set[str] = set()
    chunk: list[Claim] = []
    for claim in claims:
        if claim.payer in policy.payers:
            chunk.append(claim)
        if len(chunk) >= CHUNK:
            _judge_chunk(chunk, index, seen, report, policy, resolver, today, progress)
            chunk = []
    _judge_chunk(chunk, index, seen, report, policy, resolver, today, progress)
    report.unmatched_remits = sorted(set(index) - seen)
    return report


def _judge_chunk(chunk: list[Claim], index, seen: set[str], report: DenialReport, policy: PolicySet,
                 resolver: Resolver, today: dt.date, progress) -> None:
    by_date: dict[dt.date, list] = defaultdict(list)
    for claim in chunk:
        entries = index.get(claim.id)
        if not entries:
            report.unremitted_claims.append(claim.id)
            continue
        seen.add(claim.id)
        for rc, day in entries:
            by_date[day or today].append(match_claim(claim, rc))
    for day, pairs in sorted(by_date.items()):
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
                report.add(LineOutcome(
                    claim.id, number, line.code, claim.payer, claim.line_date(line), day,
                    float(line.charge or (rl.charge if rl else 0) or 0), float((rl.paid if rl else pair.remit.paid) or 0),
                    carcs, category, errors_then, errors_now,
                    carc_match=any(f.carc and any(c.endswith("-" + f.carc) for c in carcs) for f in errors_then),
                    family=attrs.get("family") or attrs.get("kind")))
    if progress:
        progress(len(chunk))
