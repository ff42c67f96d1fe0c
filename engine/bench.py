"""Benchmark: a reproducible synthetic batch through the whole scrub path.

    python -m engine.bench [--claims 100000] [--seed 7]

Prints claims per second for the whole path (read, parse, facts, rules, findings,
JSON report) and for the rules step alone, peak RSS, and the RSS growth between the
first and the last tenth of the batch. The batch spans payers, states and dates of
service 2019-2026; the store is left out so the figures measure the engine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

from . import chaining
from .claims import parse_claims_text
from .policy.loader import load_policies
from .scrub import scrub_iter
from .synthetic import synthetic_claims

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
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    policy = load_policies()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.jsonl"
        path.write_text("\n".join(json.dumps(c) for c in synthetic_claims(args.claims, args.seed)) + "\n")
        rules_time = 0.0
        original_run = chaining.CompiledRules.run

        def timed_run(self, lines):
            nonlocal rules_time
            t = time.perf_counter()
            try:
                return original_run(self, lines)
            finally:
                rules_time += time.perf_counter() - t

        chaining.CompiledRules.run = timed_run
        progress = RssSampler(args.claims)

        started = time.perf_counter()
        items = parse_claims_text(path.read_text())
        summary = {"claims": 0, "clean": 0, "review": 0, "reject": 0, "invalid": 0, "history": 0}
        findings = 0
        report_path = Path(tmp) / "report.jsonl"
        # Results stream to the report as they come, so memory reflects the engine, not the output.
        with report_path.open("w") as report:
            for claim_result in scrub_iter(items, policy, dt.date(2026, 11, 27)):
                report.write(json.dumps(claim_result.as_dict()) + "\n")
                summary["claims"] += 1
                summary[claim_result.status] += 1
                findings += len(claim_result.findings)
                progress(1)
        report_size = report_path.stat().st_size
        total = time.perf_counter() - started
        chaining.CompiledRules.run = original_run

    s = summary
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
          f"{platform.system()}")
    print(f"claims: {s['claims']}, "
          f"clean {s['clean']}, review {s['review']}, reject {s['reject']}, invalid {s['invalid']}; "
          f"findings {findings}; report {report_size / 2**20:.0f} MB (JSON Lines, streamed)")
    print(f"whole scrub path: {total:.1f} s, {s['claims'] / total:,.0f} claims/s")
    print(f"rules step alone: {rules_time:.1f} s, {s['claims'] / rules_time:,.0f} claims/s")
    print(f"peak RSS: {peak:.0f} MB; {progress.report()}")


if __name__ == "__main__":
    main()
