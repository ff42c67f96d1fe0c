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
import datetime as dt
import hmac
import json
import logging
import os

import orjson
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, clock
from .claims import Claim, InvalidClaim, raw_items
from .pipeline import scrub_items, validate_items, x12_items
from .policy.fields import describe
from .policy.model import Fix, PolicySet
from .policy.snapshot import Resolver, resolve
from .store import Store

log = logging.getLogger("payerpolicy.service")


class Limits(BaseModel):
    max_body_bytes: int = 5 * 2**20
    max_claims: int = 2000
    timeout_seconds: float = 30.0


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None):
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []


def problem_response(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://payerpolicy.invalid/problems/{title.lower().replace(' ', '-')}",
                            "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


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


class ScrubOut(BaseModel):
    policy_version: str
    known_on: dt.date
    claims: list[ClaimOut]
    summary: dict[str, int]
    run_id: str | None = None


class WhatIfIn(BaseModel):
    claims: list[dict[str, Any]] = Field(max_length=2000)
    set: list[str] = Field(default_factory=list, description="PATH=VALUE[,VALUE...] as for the command line")
    known_on: list[dt.date] = Field(default_factory=list, max_length=2)


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
    store = None if config["no_store"] else Store(config["db"])
    tokens = load_tokens(Path(config["tokens_file"]) if config["tokens_file"] else None)
    return create_app(policy, store, tokens, Limits(**config["limits"]))


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


def create_app(policy: PolicySet, store: Store | None, tokens: set[str], limits: Limits | None = None) -> FastAPI:
    limits = limits or Limits()
    # One resolver for every request: snapshots (and their compiled rules) are made once per process.
    resolver = Resolver(policy)
    if store is not None:
        store.import_policy(policy)  # at start, not raced by the first concurrent requests
    app = FastAPI(title="payerpolicy", version=__version__,
                  description="Scrub professional claims against dated, cited payer policy.")

    def authorized(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            raise Problem(401, "Unauthorized", "a valid bearer token is required")

    @app.middleware("http")
    async def limit_and_log(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_body_bytes:
            response = problem_response(413, "Body Too Large", f"the body is over {limits.max_body_bytes} bytes")
        else:
            try:
                response = await asyncio.wait_for(call_next(request), timeout=limits.timeout_seconds)
            except asyncio.TimeoutError:
                response = problem_response(504, "Timeout", f"the request took over {limits.timeout_seconds} s")
            except Exception as exc:
                # Handled here, not left to the server: its traceback would print the failing statement's
                # parameters (claim data) to the log. The log gets the exception's type only.
                log.error("internal error %s on %s", type(exc).__name__,
                          getattr(request.scope.get("route"), "path", "?"))
                response = problem_response(500, "Internal Error", "the request failed inside payerpolicy")
        route = request.scope.get("route")
        log.info("%s %s %s %.1fms", request.method, getattr(route, "path", "(unmatched)"), response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.title, exc.detail, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
                   "reason": str(e["msg"])} for e in exc.errors()]
        return problem_response(422, "Invalid Request", "the request does not have the expected shape", errors)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        return problem_response(exc.status_code, "HTTP Error", str(exc.detail))

    async def body_text(request: Request) -> str:
        raw = await request.body()
        if len(raw) > limits.max_body_bytes:
            raise Problem(413, "Body Too Large", f"the body is over {limits.max_body_bytes} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400, "Bad Encoding", "the body is not UTF-8") from None

    def claims_from(text: str, content_type: str) -> list[Claim | InvalidClaim]:
        if "x12" in content_type or text.lstrip().startswith("ISA"):
            raws = x12_items("body", text, policy)
        else:
            try:
                json.loads(text)
            except RecursionError:
                raise Problem(400, "Bad JSON", "the body is nested too deeply to read") from None
            except json.JSONDecodeError:
                if "\n" not in text.strip():
                    raise Problem(400, "Bad JSON", "the body is not JSON, JSON Lines or X12") from None
            raws = raw_items(text)
        if len(raws) > limits.max_claims:
            raise Problem(413, "Too Many Claims", f"at most {limits.max_claims} claims per request")
        return validate_items(raws)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "policy_version": policy.digest}

    @app.post("/v1/scrub", responses={200: {"model": ScrubOut}}, dependencies=[Depends(authorized)],
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"oneOf": [
                      {"$ref": "#/components/schemas/Claim"},
                      {"type": "array", "items": {"$ref": "#/components/schemas/Claim"}},
                      {"type": "object", "properties": {"claims": {"type": "array", "items": {
                          "$ref": "#/components/schemas/Claim"}}}}]}},
                  "text/x12": {"schema": {"type": "string"}}}}})
    async def scrub_endpoint(request: Request, known_on: dt.date | None = Query(None),
                             payer: str | None = Query(None), store_run: bool = Query(True, alias="store")):
        text = await body_text(request)
        items = claims_from(text, request.headers.get("content-type", ""))
        if payer is not None:
            if payer not in policy.payers:
                raise Problem(422, "Invalid Request", "unknown payer", [{"field": "payer", "reason": "unknown payer"}])
            items = [i.model_copy(update={"payer": payer}) if isinstance(i, Claim) else i for i in items]
        day = known_on or clock.today()
        outcome = await run_in_threadpool(scrub_items, items, policy, day, store if store_run else None,
                                          {"via": "http", "payer": payer}, None, resolver)
        body = outcome.result.as_dict()
        body["run_id"] = outcome.run_id
        return Response(orjson.dumps(body), media_type="application/json")

    @app.post("/v1/suggest", dependencies=[Depends(authorized)])
    async def suggest_endpoint(encounter: dict[str, Any], known_on: dt.date | None = Query(None)):
        from .suggest import suggest

        try:
            answer = await run_in_threadpool(suggest, encounter, policy, known_on or clock.today())
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
    return app
