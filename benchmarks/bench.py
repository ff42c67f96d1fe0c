"""Benchmark: the scrub command end to end on reproducible synthetic claims.

    python -m benchmarks.bench [--claims 100000] [--large 1000000] [--cluster-claims 200000] [--sections ...]

Each figure is measured here, in one run, so ratios compare like with like on a shared
machine:

- end to end, one process: ``payerpolicy scrub FILE --format json --no-store --workers 1``
  on --claims claims, in claims/s, against a plain JSON round trip of the same file;
- the rules step alone (``CompiledRules.run``) against the C engine driven with nothing
  else (the same messages asserted, actions taken and completed, facts retracted);
- start-up: a one-claim scrub, the median of five;
- every core: the same file with ``--workers 1`` and ``--workers 2``;
- volume: ``--format jsonl`` on 10,000 and on --large claims, peak RSS of each;
- a Dask LocalCluster of 2 workers, and a Parquet-in, Parquet-out run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from engine import clock
from .synthetic import iter_synthetic_claims

KNOWN = "2026-11-27"


def write_claims(path: Path, count: int, seed: int) -> None:
    with path.open("wb") as out:
        for claim in iter_synthetic_claims(count, seed):
            out.write(orjson.dumps(claim) + b"\n")


def run_cli(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS (MB) of the command's own process, exit code."""
    started = time.perf_counter()
    # Compiled bytecode is kept, as an installed package keeps it: a shell that turns it off
    # (PYTHONDONTWRITEBYTECODE) would add ~0.2 s of compiling to every start.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    process = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"payerpolicy {' '.join(args)} failed: {process.stderr.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024, process.returncode


def scrub_args(path: Path, out: Path, fmt: str, workers: int, *extra: str) -> list[str]:
    return ["scrub", str(path), "--format", fmt, "--no-store", "--known-on", KNOWN, "--workers", str(workers),
            "-o", str(out), *extra]


def json_round_trip(path: Path, out: Path) -> float:
    started = time.perf_counter()
    with path.open(encoding="utf-8") as source, out.open("w", encoding="utf-8") as sink:
        for line in source:
            sink.write(json.dumps(json.loads(line)) + "\n")
    return time.perf_counter() - started


def rules_against_raw_engine(path: Path, count: int) -> tuple[float, float, float, int]:
    """Seconds of CompiledRules.run over the claims' facts, and of the bare C engine on the same messages."""
    import durable_rules_engine as engine

    from engine import chaining
    from engine.claims import Claim
    from engine.facts import claim_facts, line_facts
    from engine.history import History
    from engine.policy.loader import load_policies
    from engine.policy.snapshot import Resolver

    policy = load_policies()
    resolver = Resolver(policy)
    known = dt.date.fromisoformat(KNOWN)
    work = []
    with path.open("rb") as source:
        for n, line in zip(range(count), source):
            claim = Claim.model_validate_json(line)
            snap = resolver.get(claim.payer, claim.state, known)
            shared = claim_facts(claim, snap)
            work.append((chaining.compiled_for(snap),
                         [line_facts(claim, i, ln, shared, snap, History(), n) for i, ln in enumerate(claim.lines, 1)]))
    started = time.perf_counter()
    hits = 0
    for compiled, facts in work:
        hits += len(compiled.run(facts)[0])
    rules = time.perf_counter() - started
    # The baseline: the C engine driven directly from the same facts (each line flattened
    # whole and encoded with orjson, asserted, its actions taken and completed, its facts retracted)
    # with none of the driver's bookkeeping; and the C engine alone on messages built beforehand.
    def bare(prebuilt: list | None) -> float:
        started = time.perf_counter()
        for n, (compiled, facts) in enumerate(work):
            stored = []
            for stage, handle in (("l", compiled.derive_handle), ("j", compiled.judge_handle)):
                if handle is None:
                    continue
                if prebuilt is not None:
                    texts = prebuilt[n][stage]
                else:
                    texts = [orjson.dumps(dict(chaining.flatten(f), id=f"r{n}:{stage}:{i}", sid="raw", t="line",
                                               ln=f["line.number"])).decode() for i, f in enumerate(facts)]
                for text in texts:
                    code, state = engine.assert_fact(handle, text)
                    if code == 1:
                        continue
                    stored.append((handle, text))
                    ready = engine.start_action_for_state(handle, state)
                    pending = ready[1] if ready else None
                    while pending:
                        pending = engine.complete_and_start_action(handle, state)
            for handle, text in reversed(stored):
                engine.retract_fact(handle, text)
        return time.perf_counter() - started

    raw = bare(None)
    prebuilt = [{stage: [orjson.dumps(dict(chaining.flatten(f), id=f"p{n}:{stage}:{i}", sid="raw", t="line",
                                           ln=f["line.number"])).decode() for i, f in enumerate(facts)]
                 for stage in ("l", "j")} for n, (_, facts) in enumerate(work)]
    engine_only = bare(prebuilt)
    return rules, raw, engine_only, hits


SECTIONS = ["startup", "end-to-end", "workers", "volume", "cluster", "rules"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--cluster-claims", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sections", default=",".join(SECTIONS), help="Which parts to run: " + ", ".join(SECTIONS))
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, {platform.system()}; {clock.today()}")
    with tempfile.TemporaryDirectory(prefix="payerpolicy-bench-") as tmp:
        tmp = Path(tmp)
        main_file = tmp / "claims.jsonl"
        write_claims(main_file, args.claims, args.seed)

        # Every command runs before the rules step loads claims into this process: a child's
        # peak RSS as the kernel reports it includes this process's size when it was forked.
        if "startup" in sections:
            one = tmp / "one.json"
            one.write_text(json.dumps(next(iter_synthetic_claims(1, args.seed))))
            run_cli(scrub_args(one, tmp / "one.out", "json", 1))  # warm the policy cache
            starts = [run_cli(scrub_args(one, tmp / "one.out", "json", 1))[0] for _ in range(5)]
            print(f"start-up, one-claim scrub: median {statistics.median(starts):.2f} s")

        if "end-to-end" in sections:
            seconds, rss, _ = run_cli(scrub_args(main_file, tmp / "out.json", "json", 1))
            round_trip = json_round_trip(main_file, tmp / "rt.jsonl")
            print(f"end to end, {args.claims:,} claims, --format json --no-store --workers 1: {seconds:.1f} s, "
                  f"{args.claims / seconds:,.0f} claims/s, peak RSS {rss:.0f} MB; JSON round trip of the same file "
                  f"{round_trip:.1f} s ({seconds / round_trip:.1f}x the round trip)")

        if "workers" in sections:
            two, _, _ = run_cli(scrub_args(main_file, tmp / "out2.jsonl", "jsonl", 2))
            single, _, _ = run_cli(scrub_args(main_file, tmp / "out1.jsonl", "jsonl", 1))
            same = (tmp / "out1.jsonl").read_bytes() == (tmp / "out2.jsonl").read_bytes()
            print(f"--format jsonl, {args.claims:,} claims: --workers 1 {args.claims / single:,.0f} claims/s, "
                  f"--workers 2 {args.claims / two:,.0f} claims/s ({single / two:.2f}x); outputs identical: {same}")

        if "volume" in sections:
            small = tmp / "small.jsonl"
            write_claims(small, 10_000, args.seed)
            _, rss_small, _ = run_cli(scrub_args(small, tmp / "small.out", "jsonl", 1))
            print(f"volume: 10,000 claims --format jsonl --workers 1: peak RSS {rss_small:.0f} MB")
            large = tmp / "large.jsonl"
            write_claims(large, args.large, args.seed + 1)
            seconds, rss_large, _ = run_cli(scrub_args(large, tmp / "large.out", "jsonl", 1))
            print(f"volume: {args.large:,} claims --format jsonl --workers 1: {seconds:.0f} s, "
                  f"{args.large / seconds:,.0f} claims/s, peak RSS {rss_large:.0f} MB "
                  f"({rss_large / rss_small:.2f}x the 10,000-claim run)")
            (tmp / "large.out").unlink()
            seconds, _, _ = run_cli(scrub_args(large, tmp / "large.out", "jsonl", 2))
            print(f"volume: {args.large:,} claims --workers 2: {seconds:.0f} s, {args.large / seconds:,.0f} claims/s")
            large.unlink()
            (tmp / "large.out").unlink()

        if "cluster" in sections:
            cluster_file = tmp / "cluster.jsonl"
            write_claims(cluster_file, args.cluster_claims, args.seed + 2)
            seconds, _, _ = run_cli(scrub_args(cluster_file, tmp / "cluster.out", "jsonl", 2, "--dask"))
            print(f"Dask LocalCluster, 2 workers, {args.cluster_claims:,} claims: {seconds:.0f} s, "
                  f"{args.cluster_claims / seconds:,.0f} claims/s")
            parquet_in = tmp / "claims.parquet"
            _to_parquet(cluster_file, parquet_in)
            seconds, _, _ = run_cli(scrub_args(parquet_in, tmp / "pq-out", "parquet", 2))
            print(f"Parquet in, Parquet out, --workers 2, {args.cluster_claims:,} claims: {seconds:.0f} s, "
                  f"{args.cluster_claims / seconds:,.0f} claims/s")

        if "rules" in sections:
            sample = min(args.claims, 20_000)
            rules, raw, engine_only, hits = rules_against_raw_engine(main_file, sample)
            print(f"rules step alone on {sample:,} claims: {rules:.2f} s ({hits:,} hits, {sample / rules:,.0f} "
                  f"claims/s); C engine driven bare from the same facts {raw:.2f} s (ratio {raw / rules:.2f}); "
                  f"C engine alone on prebuilt messages {engine_only:.2f} s")


def _to_parquet(source: Path, target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    batch: list[dict] = []
    with source.open("rb") as lines:
        for line in lines:
            batch.append(orjson.loads(line))
            if len(batch) == 50_000:
                table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
                writer = writer or pq.ParquetWriter(target, table.schema)
                writer.write_table(table)
                batch = []
    if batch:
        table = pa.Table.from_pylist(batch, schema=writer.schema if writer else None)
        writer = writer or pq.ParquetWriter(target, table.schema)
        writer.write_table(table)
    writer.close()


if __name__ == "__main__":
    main()
