"""The scrubber as an HTTP service (FastAPI) on the same engine and store.

Bearer tokens come from PAYERPOLICY_TOKENS (comma-separated) or a tokens file; without a
valid token no endpoint but /healthz answers. Bodies, claims per batch and time per
request are limited; errors are problem+json documents naming the field, never a stack
trace. durable_rules is not known to be thread-safe, so the rules step runs under the
engine's lock while FastAPI's worker threads serve requests. Logs carry the route, the
status and the time taken - never a body, a query value or a token.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import orjson

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, clock
from .claims import Claim, InvalidClaim, raw_items
from .pipeline import scrub_items, validate_items
from .policy.fields import describe
from .policy.model import Fix, PolicySet
from .policy.snapshot import Resolver, resolve
from .sources import FileProblem, looks_like_x12, x12_items
from .store import Store, StoreBusy

log = logging.getLogger("payerpolicy.service")


class Limits(BaseModel):
    max_body_bytes: int = 5 * 2**20
    max_claims: int = 2000
    timeout_seconds: float = 30.0
    # Failed tokens allowed per client address in a window before it is answered 429.
    failed_tokens: int = 20
    failed_token_window_seconds: float = 60.0
    public_docs: bool = False


IDEMPOTENCY_KEY_MAX = 255


class CommitGate:
    """Whether a scrub that outlived its request's time limit may still be stored.

    The request's handler and the scrub's thread race here: the first to arrive wins. A
    scrub that reaches its commit first is stored and answered, however long the commit
    takes; a time limit that passes first means nothing is stored and the answer is 504.
    """

    def __init__(self, store_answer: Any = None):
        self._lock = threading.Lock()
        self._state = "judging"
        self._store_answer = store_answer
        self.answer: bytes | None = None

    def allow(self) -> bool:
        with self._lock:
            if self._state == "expired":
                return False
            self._state = "committing"
            return True

    def expire(self) -> bool:
        """True when the scrub will store nothing; False when its commit has begun."""
        with self._lock:
            if self._state == "committing":
                return False
            self._state = "expired"
            return True

    def check(self, _done: int) -> None:
        """A progress callback: stop judging once the answer can no longer be sent."""
        if self._state == "expired":
            raise TimedOut()

    def rows(self, result):
        def answer(run_id: str) -> str:
            body = result.as_dict()
            body["run_id"] = run_id
            self.answer = orjson.dumps(body)
            return self.answer.decode()

        if self._store_answer is None:
            return None
        return self._store_answer(answer)


class TimedOut(Exception):
    """The request's time limit passed while its batch was judged."""


class FailedTokens:
    """Failed bearer tokens per client address in a sliding window, to slow down guessing."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> collections.deque:
        times = self._seen.get(address)
        if times is None:
            if len(self._seen) > 10_000:  # many addresses: forget those with nothing recent
                for stale in [a for a, t in self._seen.items() if not t or t[-1] < now - self.window]:
                    del self._seen[stale]
            times = self._seen[address] = collections.deque()
        while times and times[0] < now - self.window:
            times.popleft()
        return times

    def blocked(self, address: str) -> bool:
        with self._lock:
            return len(self._recent(address, time.monotonic())) >= self.limit

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            self._recent(address, now).append(now)


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None):
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []
        self.headers = headers


def problem_response(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://payerpolicy.invalid/problems/{title.lower().replace(' ', '-')}",
                            "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type="application/problem+json", headers=headers)


# ---- response shapes (the same JSON the command line prints) -------------------------

class FindingOut(BaseModel):
    rule: str
    revision: str
    layer: str
    severity: str
    line: int
    code: str
    carc: str | None
    group: str | None
    rarc: list[str]
    message: str
    fix: Fix | None  # the policy file's fix, with its templates filled in
    source: str
    confidence: str
    effective: dict[str, str | None]
    trace: list[str]
    missing: list[str] | None = None


class InputErrorOut(BaseModel):
    field: str
    reason: str


class ClaimOut(BaseModel):
    id: str | None
    status: str
    findings: list[FindingOut] | None = None
    position: int | None = None
    errors: list[InputErrorOut] | None = None
    notes: list[InputErrorOut] | None = None  # X12 validator findings that did not block judging


class FileProblemOut(BaseModel):
    name: str
    segment: int | None
    reason: str


class ScrubOut(BaseModel):
    policy_version: str
    known_on: dt.date
    claims: list[ClaimOut]
    files: list[FileProblemOut] = []
    summary: dict[str, int]
    run_id: str | None = None


class WhatIfIn(BaseModel):
    claims: list[dict[str, Any]] = Field(max_length=2000)
    set: list[str] = Field(default_factory=list, description="PATH=VALUE[,VALUE...] as for the command line")
    known_on: list[dt.date] = Field(default_factory=list, max_length=2)

    @field_validator("claims", mode="before")
    @classmethod
    def _one_claim(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value  # one claim object, as /v1/scrub takes it


def load_tokens(tokens_file: Path | None) -> set[str]:
    tokens = {t.strip() for t in os.environ.get("PAYERPOLICY_TOKENS", "").split(",") if t.strip()}
    if tokens_file is not None:
        tokens |= {line.strip() for line in tokens_file.read_text().splitlines() if line.strip()}
    return tokens


def app_from_config(config: dict[str, Any]) -> FastAPI:
    """The app for each of ``serve --workers N``'s processes, from the settings the parent resolved."""
    from .policy.loader import load_policies
    from .store import Store

    policy = load_policies(config["policies"])
    # A served store commits a small run per request all day: its log is checkpointed on a
    # thread of its own, not inside a request's commit (see store._Checkpointer).
    store = None if config["no_store"] else Store(config["db"], background_checkpoints=True)
    tokens = load_tokens(Path(config["tokens_file"]) if config["tokens_file"] else None)
    return create_app(policy, store, tokens, Limits(**config["limits"]), config.get("reference"),
                      on_shutdown=store.close if store is not None else None)


def serve_worker(host: str, port: int, config: str) -> None:
    """One process of ``serve --workers N``, with its own listening socket on the shared port (SO_REUSEPORT).

    The socket names its protocol (IPPROTO_TCP): asyncio turns Nagle's algorithm off only on
    connections from such a socket, and with it on (as with uvicorn's own --workers, whose
    shared socket has protocol 0) every answer on a kept-alive connection waited 40 ms for
    a delayed ACK.
    """
    import functools
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = uvicorn.Server(uvicorn.Config(functools.partial(app_from_config, json.loads(config)), factory=True,
                                           access_log=False, timeout_graceful_shutdown=30, log_level="info"))
    server.run(sockets=[sock])


def create_app(policy: PolicySet, store: Store | None, tokens: set[str], limits: Limits | None = None,
               reference: str | None = None, on_shutdown: Callable[[], None] | None = None) -> FastAPI:
    """The API; ``reference`` is the SQLite file of imported CMS releases (default: the store's).
    ``on_shutdown`` runs when the server stops (closing a store the caller opened for it)."""
    from .reference.lookup import open_reference, reference_path

    limits = limits or Limits()
    if reference is None and store is not None:
        reference = reference_path(store.url)
    # One resolver for every request: snapshots (and their compiled rules) are made once per process.
    resolver = Resolver(policy, open_reference(reference))
    if store is not None:
        store.import_policy(policy)  # at start, not raced by the first concurrent requests
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if on_shutdown is not None:
                on_shutdown()

    # The docs pages are served below, behind the same token as the API, with bundled assets.
    app = FastAPI(title="payerpolicy", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Scrub professional claims against dated, cited payer policy.", lifespan=lifespan)
    failures = FailedTokens(limits.failed_tokens, limits.failed_token_window_seconds)

    def authorized(request: Request) -> str:
        address = request.client.host if request.client else "?"
        if failures.blocked(address):
            raise Problem(429, "Too Many Requests", "too many failed tokens from this address; wait a minute",
                          headers={"Retry-After": str(int(limits.failed_token_window_seconds))})
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            failures.failed(address)
            raise Problem(401, "Unauthorized", "a valid bearer token is required")
        return token

    @app.middleware("http")
    async def limit_and_log(request: Request, call_next):
        started = time.perf_counter()
        request_id = os.urandom(6).hex()  # names the request in the log and to the client, nothing else
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
            response = problem_response(413, "Body Too Large", f"the body is over {limits.max_body_bytes} bytes")
        else:
            # /v1/scrub keeps its own time limit: it must decide whether the run is stored.
            timeout = None if request.url.path == "/v1/scrub" else limits.timeout_seconds
            try:
                response = await asyncio.wait_for(call_next(request), timeout=timeout)
            except asyncio.TimeoutError:
                response = problem_response(504, "Timeout", f"the request took over {limits.timeout_seconds} s")
            except StoreBusy:
                log.warning("request %s: the store stayed busy; nothing was stored", request_id)
                response = problem_response(503, "Store Busy", "other writers held the store too long; nothing was "
                                            "stored - retry (with the same Idempotency-Key)", headers={"Retry-After": "5"})
            except Exception as exc:
                # Handled here, not left to the server: its traceback would print the failing statement's
                # parameters (claim data) to the log. The log gets the exception's type only.
                log.error("request %s: internal error %s on %s", request_id, type(exc).__name__,
                          getattr(request.scope.get("route"), "path", "?"))
                response = problem_response(500, "Internal Error", f"the request failed inside payerpolicy "
                                                                   f"(request {request_id})")
        response.headers["X-Request-Id"] = request_id
        route = request.scope.get("route")
        log.info("request %s: %s %s %s %.1fms", request_id, request.method, getattr(route, "path", "(unmatched)"),
                 response.status_code, (time.perf_counter() - started) * 1000)
        return response

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.title, exc.detail, exc.errors, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
                   "reason": str(e["msg"])} for e in exc.errors()]
        return problem_response(422, "Invalid Request", "the request does not have the expected shape", errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return problem_response(exc.status_code, "HTTP Error", str(exc.detail))

    async def body_text(request: Request) -> str:
        # Read a piece at a time, so a chunked body (no Content-Length) is refused at the limit,
        # not after it has all been buffered.
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > limits.max_body_bytes:
                raise Problem(413, "Body Too Large", f"the body is over {limits.max_body_bytes} bytes")
            parts.append(part)
        raw = b"".join(parts)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400, "Bad Encoding", "the body is not UTF-8") from None

    def claims_from(text: str, content_type: str) -> tuple[list[Claim | InvalidClaim], list[FileProblem]]:
        if looks_like_x12(text, "x12" in content_type):
            raws = x12_items("body", text, policy)
        else:
            try:
                json.loads(text.removeprefix("\ufeff"))
            except RecursionError:
                raise Problem(400, "Bad JSON", "the body is nested too deeply to read") from None
            except json.JSONDecodeError:
                if "\n" not in text.strip():
                    raise Problem(400, "Bad JSON", "the body is not JSON, JSON Lines or X12") from None
            raws = raw_items(text)
        if len(raws) > limits.max_claims:
            raise Problem(413, "Too Many Claims", f"at most {limits.max_claims} claims per request")
        files: list[FileProblem] = []
        return validate_items(raws, files=files), files

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "policy_version": policy.digest}

    @app.post("/v1/scrub", responses={200: {"model": ScrubOut}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"oneOf": [
                      {"$ref": "#/components/schemas/Claim"},
                      {"type": "array", "items": {"$ref": "#/components/schemas/Claim"}},
                      {"type": "object", "properties": {"claims": {"type": "array", "items": {
                          "$ref": "#/components/schemas/Claim"}}}}]}},
                  "text/x12": {"schema": {"type": "string"}}}}})
    async def scrub_endpoint(request: Request, token: str = Depends(authorized),
                             known_on: dt.date | None = Query(None),
                             payer: str | None = Query(None), store_run: bool = Query(True, alias="store"),
                             idempotency_key: str | None = Header(
                                 None, max_length=IDEMPOTENCY_KEY_MAX,
                                 description="Send the same key when retrying: a stored run is answered again, "
                                             "never stored twice.")):
        try:
            text = await asyncio.wait_for(body_text(request), timeout=limits.timeout_seconds)
        except asyncio.TimeoutError:
            raise Problem(408, "Request Timeout", f"the body did not arrive within {limits.timeout_seconds} s") from None
        # Off the event loop: validating an 837 takes pyx12 about a second.
        items, files = await run_in_threadpool(claims_from, text, request.headers.get("content-type", ""))
        if payer is not None:
            if payer not in policy.payers:
                raise Problem(422, "Invalid Request", "unknown payer", [{"field": "payer", "reason": "unknown payer"}])
            items = [i.model_copy(update={"payer": payer}) if isinstance(i, Claim) else i for i in items]
        day = known_on or clock.today()
        keep = store if store_run else None
        key = request_digest = None
        if idempotency_key is not None and keep is not None:
            # Keys are per token: two clients choosing the same key never see each other's answers.
            key = hashlib.sha256(f"{token}\0{idempotency_key}".encode()).hexdigest()
            request_digest = hashlib.sha256(f"{day}\0{payer}\0{text}".encode()).hexdigest()
            earlier = await run_in_threadpool(keep.claim_request, key, request_digest, 4 * limits.timeout_seconds)
            if earlier is not None:
                return replayed(earlier, request_digest)
        gate = CommitGate(functools.partial(keep.answer_request, key, request_digest) if key else None)
        work = asyncio.ensure_future(run_in_threadpool(
            scrub_items, items, policy, day, keep, {"via": "http", "payer": payer}, gate.check, resolver, gate,
            files=files))
        try:
            try:
                outcome = await asyncio.wait_for(asyncio.shield(work), timeout=limits.timeout_seconds)
            except asyncio.TimeoutError:
                if not gate.expire():
                    outcome = await work  # its commit had begun: it is stored, so it is answered
                else:
                    work.add_done_callback(lambda done: done.cancelled() or done.exception())  # reaped, never raised
                    raise Problem(504, "Timeout", f"the request took over {limits.timeout_seconds} s; "
                                                  "nothing was stored") from None
        except BaseException:
            if key:  # nothing was stored under the key: a retry runs afresh
                await run_in_threadpool(keep.release_request, key)
            raise
        if gate.answer is not None:
            return Response(gate.answer, media_type="application/json")
        body = outcome.result.as_dict()
        body["run_id"] = outcome.run_id
        return Response(orjson.dumps(body), media_type="application/json")

    def replayed(earlier, request_digest: str) -> Response:
        if earlier.request_digest != request_digest:
            raise Problem(422, "Idempotency Key Reused", "this Idempotency-Key was sent before with another request",
                          [{"field": "Idempotency-Key", "reason": "already used for a different request"}])
        if earlier.response is None:
            raise Problem(409, "Request In Progress", "a request with this Idempotency-Key is still being judged",
                          headers={"Retry-After": "1"})
        return Response(earlier.response, media_type="application/json", headers={"Idempotent-Replayed": "true"})

    @app.post("/v1/suggest", dependencies=[Depends(authorized)])
    async def suggest_endpoint(encounter: dict[str, Any], known_on: dt.date | None = Query(None)):
        from .suggest import suggest

        try:
            answer = await run_in_threadpool(suggest, encounter, policy, known_on or clock.today(), reference)
        except ValueError as exc:
            raise Problem(422, "Invalid Request", str(exc)) from None
        return answer.as_dict()

    @app.post("/v1/whatif", dependencies=[Depends(authorized)])
    async def whatif_endpoint(body: WhatIfIn):
        from .whatif import SetError, claim_variants, knowledge_dates

        items = validate_items(list(body.claims))
        try:
            if len(body.known_on) == 2:
                comparisons = [await run_in_threadpool(knowledge_dates, items, policy, *body.known_on)]
            elif body.set:
                day = body.known_on[0] if body.known_on else clock.today()
                comparisons = await run_in_threadpool(claim_variants, items, policy, day, body.set)
            else:
                raise Problem(422, "Invalid Request", "give set or two known_on dates")
        except SetError as exc:
            raise Problem(422, "Invalid Request", str(exc), [{"field": "set", "reason": str(exc)}]) from None
        return {"comparisons": [c.as_dict() for c in comparisons]}

    @app.get("/v1/policy/versions", dependencies=[Depends(authorized)])
    def versions() -> list[dict[str, Any]]:
        stored = store.policy_versions() if store else []
        return [{"digest": v.digest, "imported_at": v.imported_at.isoformat(), "rule_revisions": v.rule_count,
                 "loaded": v.digest == policy.digest} for v in stored] or [
            {"digest": policy.digest, "imported_at": None, "loaded": True}]

    @app.get("/v1/policy/{payer}", dependencies=[Depends(authorized)])
    def policy_for(payer: str, date: dt.date | None = Query(None), state: str | None = Query(None),
                   known_on: dt.date | None = Query(None)) -> dict[str, Any]:
        if payer not in policy.payers:
            raise Problem(404, "Not Found", "no such payer")
        day, known = date or clock.today(), known_on or clock.today()
        snap = resolve(policy, payer, state.upper() if state else None, known)
        return {"payer": payer, "chain": list(snap.chain), "date_of_service": day.isoformat(),
                "known_on": known.isoformat(), "rules": [
                    {"rule": r.rule_id, "layer": r.revision.layer, "revision": r.revision.revision,
                     "title": r.revision.title, "severity": r.severity,
                     "carc": r.revision.then.carc if r.revision.then else None,
                     "effective": r.revision.effective.as_dict(), "when": describe(r.cond),
                     "source": r.revision.source, "source_title": policy.sources[r.revision.source].title,
                     "confidence": r.revision.confidence}
                    for r in snap.rules if r.revision.effective.covers(day)]}

    @app.get("/v1/runs/{run_id}", dependencies=[Depends(authorized)])
    def run(run_id: str) -> dict[str, Any]:
        if store is None:
            raise Problem(404, "Not Found", "this server keeps no store")
        try:
            receipt, rows = store.get_run(run_id)
        except KeyError:
            raise Problem(404, "Not Found", "no such run") from None
        return {"id": receipt.id, "started_at": receipt.started_at.isoformat(), "policy_digest": receipt.policy_digest,
                "known_on": receipt.known_on.isoformat(), "input_digest": receipt.input_digest,
                "options": json.loads(receipt.options),
                "summary": {"claims": receipt.claims, "clean": receipt.clean, "review": receipt.review,
                            "reject": receipt.reject, "invalid": receipt.invalid},
                "findings": [dict(json.loads(r.body), claim_id=r.claim_id) for r in rows]}

    app.openapi_schema = None
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Claim"] = Claim.model_json_schema(
            ref_template="#/components/schemas/{model}")
        for name, sub in schema["components"]["schemas"]["Claim"].pop("$defs", {}).items():
            schema["components"]["schemas"].setdefault(name, sub)
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        schema["security"] = [{"bearer": []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    add_docs(app, [] if limits.public_docs else [Depends(authorized)])

    from .workbench.pages import add_workbench

    add_workbench(app, policy, tokens, resolver, failures, limits.max_claims, reference, store,
                  limits.max_body_bytes)
    return app


def add_docs(app: FastAPI, dependencies: list[Any]) -> None:
    """/docs and /openapi.json, behind the API's token unless ``--public-docs``; Swagger UI's
    files come from the installed swagger-ui-bundle package, never from a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/openapi.json", include_in_schema=False, dependencies=dependencies)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=dependencies)
    def docs() -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="payerpolicy API",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon-32x32.png")

    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
