"""Benchmark: CMS releases of the real size - importing them, and scrubbing with them.

    python -m benchmarks.reference_bench [--ptp-rows 1500000] [--claims 50000] [--seed 3]

Writes a generated practitioner PTP release in CMS's text layout (four files, like
ccipra-v3xxr0-f1..f4.txt) and a practitioner MUE table for each quarter 2019Q1-2026Q4, imports
them into a fresh SQLite store, then scrubs the same synthetic claims with ``--no-store
--workers 1`` against a store with no release and against the one with them, in one run so
the ratio compares like with like. The rows are random, not CMS's: they have the real count
and shape, and every code the synthetic claims bill has edits, so the lookups are exercised.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import tempfile
import time
from pathlib import Path

from .bench import KNOWN, run_cli, write_claims
from .synthetic import ADDONS, CODES

HEADER = ("Column 1\tColumn 2\t*=in existence prior to 1996\tEffective Date\tDeletion Date *=no data\t"
          "Modifier 0=not allowed 1=allowed 9=not applicable\tPTP Edit Rationale")


def _codes(rng: random.Random, count: int) -> list[str]:
    pool = {f"{n:05d}" for n in rng.sample(range(10000, 99999), count)}
    pool |= set(CODES) | set(ADDONS)
    return sorted(pool)


def write_ptp(folder: Path, rows: int, rng: random.Random) -> list[Path]:
    codes = _codes(rng, 12000)
    billed = sorted(set(CODES) | set(ADDONS))
    pairs: set[tuple[str, str]] = set()
    # Every billed code is column two of some edits with other billed codes, as E/M and
    # psychotherapy codes are in CMS's tables; the rest is spread over the code set.
    for c2 in billed:
        for c1 in rng.sample(billed, 6):
            if c1 != c2:
                pairs.add((c1, c2))
    while len(pairs) < rows:
        c1, c2 = rng.choice(codes), rng.choice(codes)
        if c1 != c2:
            pairs.add((c1, c2))
    ordered = sorted(pairs)
    paths = []
    per_file = len(ordered) // 4 + 1
    for part in range(4):
        path = folder / f"ccipra-v999r0-f{part + 1}.txt"
        with path.open("w", encoding="latin-1", newline="") as out:
            out.write("CPT only copyright American Medical Association. All rights reserved.\r\n\r\n")
            out.write(HEADER + "\r\n")
            for c1, c2 in ordered[part * per_file:(part + 1) * per_file]:
                effective = dt.date(1996, 1, 1) + dt.timedelta(days=rng.randrange(11000))
                deleted = effective + dt.timedelta(days=rng.randrange(3000)) if rng.random() < 0.2 else None
                indicator = rng.choice("0111119")
                out.write(f"{c1}\t{c2}\t\t{effective:%Y%m%d}\t{f'{deleted:%Y%m%d}' if deleted else '*'}\t"
                          f"{indicator}\tStandards of medical / surgical practice\r\n")
        paths.append(path)
    return paths


def write_mue(folder: Path, rng: random.Random) -> Path:
    path = folder / "MCR_MUE_PractitionerServices.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write('"CPT codes and descriptions only are copyright American Medical Association."\r\n')
        out.write("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator,MUE Rationale\r\n")
        for code in _codes(rng, 14000):
            mai = rng.choice(["1 Line Edit", "2 Date of Service Edit: Policy", "3 Date of Service Edit: Clinical"])
            out.write(f"{code},{rng.randrange(1, 5)},{mai},Clinical: Data\r\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ptp-rows", type=int, default=1_500_000)
    parser.add_argument("--claims", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="payerpolicy-refbench-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        ptp = write_ptp(folder, args.ptp_rows, rng)
        mue = write_mue(folder, rng)
        print(f"generated {args.ptp_rows:,} PTP rows in 4 files ({sum(p.stat().st_size for p in ptp) / 2**20:.0f} MB) "
              f"and a MUE table in {time.perf_counter() - started:.1f} s")
        with_db = f"sqlite:///{folder / 'with.sqlite'}"
        empty_db = f"sqlite:///{folder / 'empty.sqlite'}"
        seconds, rss, _ = run_cli(["data", "import", "ncci-ptp", *map(str, ptp), "--release", "2026Q4",
                                   "--db", with_db])
        print(f"import ncci-ptp 2026Q4: {args.ptp_rows:,} rows in {seconds:.1f} s ({args.ptp_rows / seconds:,.0f} rows/s), "
              f"peak RSS {rss:.0f} MB")
        seconds = 0.0
        quarters = [f"{year}Q{q}" for year in range(2019, 2027) for q in range(1, 5)]
        for quarter in quarters:
            spent, _, _ = run_cli(["data", "import", "ncci-mue", str(mue), "--release", quarter, "--db", with_db])
            seconds += spent
        print(f"import ncci-mue, {len(quarters)} quarters 2019Q1-2026Q4: {seconds:.1f} s in all")
        print(f"store with the releases: {(folder / 'with.sqlite').stat().st_size / 2**20:.0f} MB")
        claims = folder / "claims.jsonl"
        write_claims(claims, args.claims, args.seed)
        figures = {}
        for label, db in (("no release", empty_db), ("PTP + MUE", with_db)):
            env_db = os.environ.get("PAYERPOLICY_DB")
            os.environ["PAYERPOLICY_DB"] = db
            try:
                run_cli(["scrub", str(claims), "--format", "jsonl", "--no-store", "--known-on", KNOWN, "--workers", "1",
                         "-o", str(folder / "warm.jsonl")])  # first run builds the policy cache
                seconds, rss, _ = run_cli(["scrub", str(claims), "--format", "jsonl", "--no-store", "--known-on", KNOWN,
                                           "--workers", "1", "-o", str(folder / f"{label}.jsonl")])
            finally:
                if env_db is None:
                    os.environ.pop("PAYERPOLICY_DB", None)
                else:
                    os.environ["PAYERPOLICY_DB"] = env_db
            figures[label] = (args.claims / seconds, rss)
            print(f"scrub {args.claims:,} claims, {label}: {args.claims / seconds:,.0f} claims/s, peak RSS {rss:.0f} MB")
        ratio = figures["PTP + MUE"][0] / figures["no release"][0]
        print(f"throughput with the releases / without: {ratio:.2f} (goal: at least 0.80)")


if __name__ == "__main__":
    main()
