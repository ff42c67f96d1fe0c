"""Serve: the HTTP service, one process or several workers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ._app import app
from ._options import DbOpt, PoliciesOpt, err, load_tree, open_store, out


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port"),
    tokens_file: Optional[Path] = typer.Option(None, "--tokens-file", help="Bearer tokens, one per line "
                                               "(also PAYERPOLICY_TOKENS, comma-separated)."),
    db: Optional[str] = DbOpt,
    no_store: bool = typer.Option(False, "--no-store"),
    policies: Optional[Path] = PoliciesOpt,
    max_body: int = typer.Option(5 * 2**20, "--max-body", help="Largest request body in bytes."),
    max_claims: int = typer.Option(2000, "--max-claims", help="Most claims in one request."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds a request may take."),
    openapi: bool = typer.Option(False, "--openapi", help="Print the OpenAPI schema and exit."),
    public_docs: bool = typer.Option(False, "--public-docs", help="Serve /docs and /openapi.json without a "
                                     "token (they describe the API and hold no data)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Server processes (each loads the policy "
                                "and compiles its rules once); throughput grows with cores."),
) -> None:
    """Serve the scrubber over HTTP: /v1/scrub, /v1/suggest, /v1/whatif, /v1/policy, /v1/runs, /healthz,
    and the web workbench (/login, /scrub, /suggest, /denials, /policy, /whatif, /runs)."""
    import logging

    import uvicorn

    from ..service import Limits, create_app, load_tokens

    policy = load_tree(policies)
    tokens = load_tokens(tokens_file)
    limits = Limits(max_body_bytes=max_body, max_claims=max_claims, timeout_seconds=timeout, public_docs=public_docs)
    from ..reference.lookup import reference_path

    store = None if no_store else open_store(db)
    reference = reference_path(db)
    app_ = create_app(policy, store, tokens, limits, reference)
    if openapi:
        sys.stdout.write(json.dumps(app_.openapi(), indent=2, sort_keys=True) + "\n")
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not tokens:
        err.print("[yellow]no tokens configured (PAYERPOLICY_TOKENS or --tokens-file): every data request "
                  "will be refused[/]")
    # uvicorn's access log prints raw paths and queries; the service logs routes instead.
    if workers == 1:
        uvicorn.run(app_, host=host, port=port, access_log=False, timeout_graceful_shutdown=30, log_level="info")
        return
    if store is not None:
        store.import_policy(policy)  # once, before the workers race to do it
    config = json.dumps({
        "policies": policy.root, "db": store.url if store else None, "no_store": store is None,
        "reference": reference,
        "tokens_file": str(tokens_file) if tokens_file else None, "limits": limits.model_dump()})
    _run_workers(workers, host, port, config)


@app.command()
def ui(
    port: int = typer.Option(8765, "--port"),
    db: Optional[str] = DbOpt,
    no_store: bool = typer.Option(False, "--no-store"),
    policies: Optional[Path] = PoliciesOpt,
    browser: bool = typer.Option(True, "--open/--no-open", help="Open the workbench in the default browser."),
) -> None:
    """Start the web workbench on this machine (loopback only) and open it in the browser.

    Sign in with a token from PAYERPOLICY_TOKENS, or, without one, with the one-time token
    printed here (it lasts as long as this process).
    """
    import logging
    import os
    import secrets
    import threading
    import webbrowser

    import uvicorn

    from ..reference.lookup import reference_path
    from ..service import create_app, load_tokens

    policy = load_tree(policies)
    tokens = load_tokens(None)
    fresh = not tokens
    if fresh:
        tokens = {secrets.token_urlsafe(18)}
    store = None if no_store else open_store(db)
    app_ = create_app(policy, store, tokens, None, reference_path(db))
    url = f"http://127.0.0.1:{port}/login"
    out.print(f"payerpolicy workbench: {url}", highlight=False)
    if fresh:
        out.print(f"sign in with this one-time token: {next(iter(tokens))}", highlight=False)
    else:
        out.print("sign in with one of the PAYERPOLICY_TOKENS tokens", highlight=False)
    if browser and not os.environ.get("CI"):
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    uvicorn.run(app_, host="127.0.0.1", port=port, access_log=False, timeout_graceful_shutdown=5, log_level="warning")


def _run_workers(workers: int, host: str, port: int, config: str) -> None:
    """Start the server processes, pass SIGTERM/SIGINT on to them, and wait for them to finish."""
    import multiprocessing
    import os
    import signal

    from ..service import serve_worker

    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=serve_worker, args=(host, port, config)) for _ in range(workers)]
    for child in children:
        child.start()

    def forward(signum, _frame) -> None:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        child.join()
