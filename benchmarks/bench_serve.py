"""Load run for the HTTP service: single-claim scrubs against a local server on loopback.

    python -m benchmarks.bench_serve [--requests 2000] [--seconds 120]

Starts ``payerpolicy serve`` on 127.0.0.1 (a free port) once per configuration - one
worker without and with the store, at 1 and 8 client threads, and two workers without and
with the store (one SQLite file both write) at 8 - sends a
bounded number of requests (stopping after --seconds whatever happens), prints requests
per second and p50/p99 latency, and stops the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
import tempfile
import time
from pathlib import Path

from .synthetic import synthetic_claims

TOKEN = "bench-token"


def wait_healthy(port: int, seconds: float) -> bool:
    """Poll /healthz on loopback until it answers 200 or the time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return True
        except OSError:
            time.sleep(0.2)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(port: int, bodies: list[str], requests: int, threads: int, seconds: float, store: bool) -> dict:
    """Send ``requests`` single-claim scrubs from ``threads`` clients; requests/s and latency percentiles."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    counter = iter(range(requests))
    path = "/v1/scrub" + ("" if store else "?store=false")

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop_at:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=bodies[n % len(bodies)],
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                failed = response.status != 200
            except OSError:  # counted, and the client reconnects
                failed = True
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors[0] += failed

    began = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    total = time.perf_counter() - began
    latencies.sort()
    return {"requests": len(latencies), "errors": errors[0], "rate": len(latencies) / total,
            "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


def serving(workers: int, store: bool, db: str):
    args = [sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", str(free_port()),
            "--workers", str(workers)] + (["--db", db] if store else ["--no-store"])
    env = dict(os.environ, PAYERPOLICY_TOKENS=TOKEN)
    server = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = int(args[args.index("--port") + 1])
    if not wait_healthy(port, 60):
        server.terminate()
        raise SystemExit("the server did not start")
    return server, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--store-only", action="store_true",
                        help="Only the configurations with the store (to compare two versions)")
    args = parser.parse_args()
    bodies = [json.dumps(c) for c in synthetic_claims(min(args.requests, 5000), seed=11)]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}")
    rates = {}
    with tempfile.TemporaryDirectory(prefix="payerpolicy-serve-") as tmp:
        runs = [(1, False, 1), (1, False, 8), (1, True, 1), (1, True, 8), (2, False, 8), (2, True, 8)]
        for workers, store, threads in [r for r in runs if r[1]] if args.store_only else runs:
            server, port = serving(workers, store, f"sqlite:///{tmp}/store-{workers}-{threads}.sqlite")
            try:
                load(port, bodies, 100, threads, 30, store)  # warm: snapshots compiled in every worker
                r = load(port, bodies, args.requests, threads, args.seconds, store)
            finally:
                server.terminate()
                server.wait(timeout=60)
            rates[(workers, store, threads)] = r["rate"]
            print(f"serve --workers {workers}, {'with' if store else 'without'} the store, {threads} client "
                  f"thread(s): {r['requests']} requests, {r['errors']} errors, {r['rate']:,.0f} requests/s, "
                  f"p50 {r['p50']:.1f} ms, p99 {r['p99']:.1f} ms")
    if args.store_only:
        return
    print(f"--workers 2 against 1 (no store, 8 clients): {rates[(2, False, 8)] / rates[(1, False, 8)]:.2f}x "
          f"(the Python client shares the 2 cores with the server)")
    if shutil.which("wrk"):
        with tempfile.TemporaryDirectory(prefix="payerpolicy-wrk-") as tmp:
            print(wrk_workers(Path(tmp), bodies[0]))


def wrk_workers(tmp: Path, body: str) -> str:
    """--workers 1 and 2 driven by wrk (Debian's, a C client): 8 connections for 20 s each."""
    (tmp / "body.json").write_text(body)
    (tmp / "post.lua").write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n'
        f'local f = io.open("{tmp / "body.json"}", "r")\nwrk.body = f:read("*a")\nf:close()\n')
    rates = {}
    lines = []
    for workers in (1, 2):
        server, port = serving(workers, False, "")
        try:
            url = f"http://127.0.0.1:{port}/v1/scrub?store=false"
            command = ["wrk", "-t1", "-c8", "--latency", "-s", str(tmp / "post.lua"), url]
            subprocess.run(command[:3] + ["-d5s"] + command[3:], capture_output=True, timeout=60)
            text = subprocess.run(command[:3] + ["-d20s"] + command[3:], capture_output=True, text=True,
                                  timeout=120).stdout
        finally:
            server.terminate()
            server.wait(timeout=60)
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
        # the latency distribution's own lines: "+/- Stdev" columns end in % too (e.g. 68.50%)
        p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1)
        p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        rates[workers] = rate
        lines.append(f"wrk, serve --workers {workers}, no store, 8 connections: {rate:,.0f} requests/s, "
                     f"p50 {p50}, p99 {p99}, {errors.group(1) if errors else 0} errors")
    lines.append(f"--workers 2 against 1 under wrk: {rates[2] / rates[1]:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
