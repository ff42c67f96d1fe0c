"""A generated year of claims and remittances with known, planted causes of denial.

    python -m benchmarks.denials_bench [--claims 200000] [--seed 5] [--workers 1]

Used by the tests (small) and the benchmark (large): every claim's expected category per
line is known, so the analysis can be checked line by line.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import random
import resource
import tempfile
import time
from pathlib import Path

CAUSES = ["telephone-2025", "lapse-2025", "lapse-2026", "prolonged-medicare", "unexplained", "false-positive",
          "clean-paid"]


def _day(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rng.randrange((last - first).days + 1))


def generate(count: int, seed: int) -> tuple[list[dict], str, dict[str, dict[int, str]]]:
    """The claims, the remittance CSV text and each line's expected category, in memory (for tests)."""
    claims: list[dict] = []
    rows: list[dict] = []
    expected: dict[str, dict[int, str]] = {}
    for claim, remit_rows, want in iter_generated(count, seed):
        claims.append(claim)
        rows.extend(remit_rows)
        expected[claim["id"]] = want
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return claims, out.getvalue(), expected


def write_generated(count: int, seed: int, claims_path: Path, remits_path: Path) -> None:
    """The same year written straight to a JSON Lines file and a CSV file, for runs of any size."""
    with claims_path.open("w") as claims_out, remits_path.open("w", newline="") as remits_out:
        writer = None
        for claim, remit_rows, _ in iter_generated(count, seed):
            claims_out.write(json.dumps(claim) + "\n")
            if writer is None:
                writer = csv.DictWriter(remits_out, fieldnames=list(remit_rows[0]))
                writer.writeheader()
            writer.writerows(remit_rows)


def iter_generated(count: int, seed: int):
    rng = random.Random(seed)
    for n in range(count):
        cause = CAUSES[n % len(CAUSES)]
        cid = f"Y-{n}"
        patient = {"id": f"P-{n}", "location": "home"}
        base = {"id": cid, "payer": "medicare", "state": "OH", "patient": patient,
                "rendering_provider": {"npi": "1234567893", "type": "MD"}, "diagnoses": ["I10"]}
        if cause == "telephone-2025":
            dos = _day(rng, dt.date(2025, 3, 1), dt.date(2025, 9, 15))
            claim = dict(base, service_date=dos.isoformat(), place_of_service="11",
                         encounter={"modality": "in-person"}, lines=[{"code": "99442", "charge": 80.0}])
            remit = [(1, "99442", 80.0, 0.0, "CO-181")]
            adjudicated = dos + dt.timedelta(days=12)
            want = {1: "predicted"}
        elif cause == "lapse-2025":
            dos = _day(rng, dt.date(2025, 10, 1), dt.date(2025, 10, 31))
            claim = dict(base, service_date=dos.isoformat(), place_of_service="10",
                         encounter={"modality": "video"}, lines=[{"code": "99213", "charge": 110.0}])
            remit = [(1, "99213", 110.0, 0.0, "CO-96")]
            adjudicated = min(dos + dt.timedelta(days=7), dt.date(2025, 11, 11))
            want = {1: "overturned"}
        elif cause == "lapse-2026":
            dos = dt.date(2026, 1, 31) + dt.timedelta(days=rng.randrange(3))
            claim = dict(base, service_date=dos.isoformat(), place_of_service="10",
                         encounter={"modality": "video"}, lines=[{"code": "99214", "charge": 150.0}])
            remit = [(1, "99214", 150.0, 0.0, "CO-96")]
            adjudicated = dt.date(2026, 2, 2)
            want = {1: "overturned"}
        elif cause == "prolonged-medicare":
            dos = _day(rng, dt.date(2025, 3, 1), dt.date(2026, 2, 28))
            claim = dict(base, service_date=dos.isoformat(), place_of_service="11",
                         encounter={"modality": "in-person", "level_basis": "time", "total_minutes": 72},
                         lines=[{"code": "99215", "charge": 210.0}, {"code": "99417", "charge": 60.0}])
            remit = [(1, "99215", 210.0, 160.0, ""), (2, "99417", 60.0, 0.0, "CO-96")]
            adjudicated = dos + dt.timedelta(days=14)
            want = {1: "agreed_paid", 2: "predicted"}
        elif cause == "unexplained":
            dos = _day(rng, dt.date(2025, 3, 1), dt.date(2026, 2, 28))
            claim = dict(base, payer="commercial", service_date=dos.isoformat(), place_of_service="11",
                         encounter={"modality": "in-person"}, lines=[{"code": "99213", "charge": 100.0}])
            remit = [(1, "99213", 100.0, 0.0, "CO-197")]
            adjudicated = dos + dt.timedelta(days=20)
            want = {1: "unexplained"}
        elif cause == "false-positive":
            dos = _day(rng, dt.date(2025, 3, 1), dt.date(2026, 2, 28))
            claim = dict(base, payer="aetna", state="NY", service_date=dos.isoformat(), place_of_service="02",
                         encounter={"modality": "video"}, lines=[{"code": "99214", "charge": 140.0}])
            remit = [(1, "99214", 140.0, 95.0, "")]
            adjudicated = dos + dt.timedelta(days=9)
            want = {1: "false_positive"}
        else:
            dos = _day(rng, dt.date(2025, 3, 1), dt.date(2026, 2, 28))
            claim = dict(base, service_date=dos.isoformat(), place_of_service="11",
                         encounter={"modality": "in-person"}, lines=[{"code": "99213", "charge": 100.0}])
            remit = [(1, "99213", 100.0, 72.0, "")]
            adjudicated = dos + dt.timedelta(days=10)
            want = {1: "agreed_paid"}
        rows = [{"claim_id": cid, "line": line, "code": code, "charge": f"{charge:.2f}", "paid": f"{paid:.2f}",
                 "adjustments": adjustment + (f":{charge - paid:.2f}" if adjustment else ""),
                 "remarks": "", "adjudication_date": adjudicated.isoformat()}
                for line, code, charge, paid, adjustment in remit]
        yield claim, rows, want


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


class RssSampler:
    """A progress callback that notes RSS at each tenth of a batch, to show whether memory grows with it."""

    def __init__(self, total: int):
        self.tenth = max(1, total // 10)
        self.done = 0
        self.samples: list[float] = []

    def __call__(self, n: int) -> None:
        before, self.done = self.done, self.done + n
        if self.done // self.tenth > before // self.tenth:
            self.samples.append(rss_mb())

    def report(self) -> str:
        first, last = self.samples[0], self.samples[-1]
        return f"RSS first tenth {first:.0f} MB, last tenth {last:.0f} MB, growth {last - first:+.1f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    from engine.denials import analyze, read_remit_files
    from engine.pipeline import iter_claim_files
    from engine.policy.loader import load_policies

    policy = load_policies()
    with tempfile.TemporaryDirectory() as tmp:
        path, remits_path = Path(tmp) / "claims.jsonl", Path(tmp) / "remits.csv"
        write_generated(args.claims, args.seed, path, remits_path)
        started = time.perf_counter()
        remits = read_remit_files([remits_path])
        progress = RssSampler(args.claims)
        # Claims stream from the file a chunk at a time; remits and the worklist are on disk.
        report = analyze(iter_claim_files([path], policy), remits, policy, dt.date(2026, 11, 27),
                         progress=progress, keep_lines=False, workers=args.workers)
        totals = report.totals()
        elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"denial analysis, --workers {args.workers}: {args.claims:,} claims, {totals['lines']:,} remitted lines in "
          f"{elapsed:.1f} s "
          f"({args.claims / elapsed:,.0f} claims/s, each judged twice); peak RSS {peak:.0f} MB; {progress.report()}")
    print("categories: " + ", ".join(f"{k} {v}" for k, v in sorted(totals["by_category"].items())))


if __name__ == "__main__":
    main()
