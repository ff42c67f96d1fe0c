"""Load run for the HTTP service: single-claim scrubs against a local server on loopback.

    python -m engine.bench_serve [--requests 2000] [--threads 8]

Starts ``payerpolicy serve`` on 127.0.0.1 (a free port, no store), sends a bounded number
of requests (and stops after --seconds whatever happens), prints requests per second and
p50/p99 latency, and stops the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()

    port = free_port()
    env = dict(os.environ, PAYERPOLICY_TOKENS=TOKEN)
    server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--no-store"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_healthy(port, 30):
            raise SystemExit("the server did not start")
        bodies = [json.dumps(c) for c in synthetic_claims(min(args.requests, 5000), seed=11)]
        latencies: list[float] = []
        errors = [0]
        lock = threading.Lock()
        stop_at = time.monotonic() + args.seconds
        counter = iter(range(args.requests))

        def worker() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            while time.monotonic() < stop_at:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                started = time.perf_counter()
                conn.request("POST", "/v1/scrub?store=false", body=bodies[n % len(bodies)],
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors[0] += response.status != 200

        began = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        total = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}")
    print(f"single-claim scrubs over HTTP: {len(latencies)} requests, {args.threads} client threads, "
          f"{errors[0]} errors")
    print(f"{len(latencies) / total:,.0f} requests/s; p50 {p50:.1f} ms, p99 {p99:.1f} ms")


if __name__ == "__main__":
    main()
