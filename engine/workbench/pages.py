"""The workbench's pages, served by the same app and engine as the JSON API.

Server-rendered (Jinja2), no script and no asset from elsewhere: it must work offline in a
hospital network. Every page but sign-in needs the session cookie; every form that changes
something carries the session's CSRF token. Claims are judged in memory and never stored
from here, and nothing a claim holds is logged.
"""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
import json
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from .. import clock
from ..claims import Claim, raw_items
from ..money import ZERO, json_default, show_money
from ..pipeline import scrub_items, validate_items, x12_items
from ..policy.model import PolicySet
from ..policy.snapshot import Resolver
from ..sources import FileProblem, looks_like_x12
from . import session as sessions
from .fixes import apply_fix, can_apply, fix_sentence
from .reasons import carc_text, rarc_text

HERE = Path(__file__).parent
STATUS_TEXT = {"clean": "expected to be paid", "review": "review before sending", "reject": "will be denied",
               "invalid": "cannot be judged"}
SEVERITY_TEXT = {"error": "Denial:", "warning": "Check:", "info": "Note:"}


class Form(dict):
    """The fields of a submitted form, text only; an uploaded file's text under its field name."""


def add_workbench(app: FastAPI, policy: PolicySet, tokens: set[str], resolver: Resolver,
                  failed: Callable[[str], bool], max_claims: int) -> None:
    """``failed(address)`` records a wrong token and says whether the address is now blocked."""
    from fastapi.staticfiles import StaticFiles

    key = sessions.secret_key(tokens)
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    payer_choices = sorted((k, p.name) for k, p in policy.payers.items())
    app.mount("/workbench/static", StaticFiles(directory=HERE / "static"), name="workbench-static")

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("signed_in", False)
        html = templates.get_template(name).render(policy_version=policy.digest, **context)
        return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})

    def current(request: Request) -> sessions.Session | None:
        return sessions.decode(request.cookies.get(sessions.COOKIE), key)

    async def read_form(request: Request) -> Form:
        form = Form()
        async with request.form(max_files=1, max_fields=20) as data:
            for name, value in data.multi_items():
                if hasattr(value, "read"):
                    raw = await value.read()
                    if raw:
                        form[name] = raw.decode("utf-8", errors="replace")
                else:
                    form[name] = str(value)
        return form

    def to_sign_in() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        return RedirectResponse("/scrub" if current(request) else "/login", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page(request: Request) -> Response:
        return render("login.html")

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        token = form.get("token", "")
        address = request.client.host if request.client else "?"
        if not token or not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            blocked = failed(address)
            return render("login.html", status=429 if blocked else 401,
                          error="Too many wrong tokens from here; wait a minute." if blocked
                          else "That token is not one this service accepts.")
        response = RedirectResponse("/scrub", status_code=303)
        response.set_cookie(sessions.COOKIE, sessions.encode(sessions.new_session(token), key),
                            max_age=sessions.LIFETIME_SECONDS, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        signed = current(request)
        form = await read_form(request)
        if signed is None or not hmac.compare_digest(form.get("csrf", ""), signed.csrf):
            return to_sign_in()
        response = to_sign_in()
        response.delete_cookie(sessions.COOKIE, path="/")
        return response

    def page(signed: sessions.Session, status: int = 200, **context: Any) -> HTMLResponse:
        return render("scrub.html", status=status, signed_in=True, csrf=signed.csrf, page="scrub", payers=payer_choices,
                      **{"claims_text": "", "known_on": "", "payer": "", "results": None, "error": None, **context})

    @app.get("/scrub", include_in_schema=False)
    def scrub_page(request: Request) -> Response:
        signed = current(request)
        return page(signed) if signed else to_sign_in()

    async def checked(request: Request) -> tuple[sessions.Session | None, Form | Response]:
        """The session and the form, or the answer to give instead: sign in again, or (a form
        from another session, or forged) refused without acting on it."""
        signed = current(request)
        if signed is None:
            return None, to_sign_in()
        form = await read_form(request)
        if not hmac.compare_digest(form.get("csrf", ""), signed.csrf):
            return signed, page(signed, status=403, error="That form came from another session and was not acted "
                                                         "on; send it again from this page.")
        return signed, form

    def judge(text: str, known_on: str, payer: str) -> tuple[dict[str, Any] | None, str | None, list]:
        """The results to show, or why there are none; also the claims as read, for the next form."""
        try:
            day = dt.date.fromisoformat(known_on) if known_on else clock.today()
        except ValueError:
            return None, f"'{known_on}' is not a date", []
        if payer and payer not in policy.payers:
            return None, "unknown payer", []
        if looks_like_x12(text, False):
            raws = x12_items("pasted", text, policy)
        else:
            raws = raw_items(text)
        files: list[FileProblem] = []
        items = validate_items(raws, files=files, policy=policy)
        if len(items) > max_claims:
            return None, f"at most {max_claims} claims at a time here; use the command line for more", []
        if payer:
            items = [i.model_copy(update={"payer": payer}) if isinstance(i, Claim) else i for i in items]
        result = scrub_items(items, policy, day, None, resolver=resolver, files=files).result
        return _results(policy, items, result, text), None, items

    def scrub_response(signed, text: str, known_on: str, payer: str) -> Response:
        if not text.strip():
            return page(signed, error="Paste a claim or choose a file.", known_on=known_on, payer=payer)
        results, error, _ = judge(text, known_on, payer)
        return page(signed, claims_text=text, known_on=known_on, payer=payer, results=results, error=error)

    @app.post("/scrub", include_in_schema=False)
    async def scrub(request: Request) -> Response:
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text = form.get("file") or form.get("claims", "")
        return scrub_response(signed, text, form.get("known_on", ""), form.get("payer", ""))

    @app.post("/scrub/fix", include_in_schema=False)
    async def fix(request: Request) -> Response:
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text, known_on, payer = form.get("claims", ""), form.get("known_on", ""), form.get("payer", "")
        results, error, _ = judge(text, known_on, payer)
        try:
            claims = json.loads(text)
            claim_index, finding_index = int(form.get("claim", "")), int(form.get("finding", ""))
            shown = results["claims"][claim_index] if results else None
            finding = shown["findings"][finding_index] if shown else None
            if finding is None or not finding["can_apply"]:
                raise ValueError("that fix cannot be applied")
            claims[claim_index] = apply_fix(claims[claim_index], finding["line"], finding["fix"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return page(signed, claims_text=text, known_on=known_on, payer=payer, results=results,
                        error=f"The fix was not applied: {exc}" if isinstance(exc, ValueError) else
                        "The fix was not applied: the claims changed since they were judged.")
        return scrub_response(signed, json.dumps(claims, indent=2, default=json_default), known_on, payer)

    @app.post("/scrub/download", include_in_schema=False)
    async def download(request: Request) -> Response:
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text, known_on, fmt = form.get("claims", ""), form.get("known_on", ""), form.get("format", "json")
        results, error, _ = judge(text, known_on, "")
        if results is None:
            return page(signed, claims_text=text, known_on=known_on, error=error)
        day = known_on or clock.today().isoformat()
        if fmt == "csv":
            return Response(_csv(results), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="scrub-{day}.csv"'})
        if fmt == "html":
            html = render("scrub.html", signed_in=False, csrf="", payers=[], claims_text="", known_on=known_on,
                          payer="", results=results, error=None, page="report").body
            return Response(html, media_type="text/html",
                            headers={"Content-Disposition": f'attachment; filename="scrub-{day}.html"'})
        return Response(json.dumps(results["document"], indent=2, default=json_default), media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="scrub-{day}.json"'})


def _results(policy: PolicySet, items: list, result, text: str) -> dict[str, Any]:
    """What the page shows per claim: payer, date, codes, charges, status, and per finding a
    sentence, the CARC/RARC in words, the fix as a sentence, the citation and confidence."""
    claims, at_risk, charges = [], ZERO, ZERO
    as_read = []
    for index, (item, outcome) in enumerate(zip(items, result.claims)):
        shown: dict[str, Any] = {"index": index, "id": outcome.id, "status": outcome.status,
                                 "status_text": STATUS_TEXT[outcome.status], "findings": []}
        if isinstance(item, Claim):
            as_read.append(item.model_dump(mode="json", exclude_none=True))
            line_charges = [line.charge or ZERO for line in item.lines]
            error_lines = {f.line for f in outcome.findings if f.severity == "error"}
            charges += sum(line_charges, ZERO)
            at_risk += sum((c for n, c in enumerate(line_charges, 1) if n in error_lines), ZERO)
            payer = policy.payers.get(item.payer)
            shown.update(payer=payer.name if payer else item.payer, service_date=item.service_date.isoformat(),
                         codes=", ".join(line.code + ("-" + "-".join(line.modifiers) if line.modifiers else "")
                                         for line in item.lines),
                         charges=show_money(sum(line_charges, ZERO)) if any(line.charge for line in item.lines)
                         else "not given")
            for number, f in enumerate(outcome.findings):
                source = policy.sources.get(f.source)
                shown["findings"].append({
                    "index": number, "line": f.line, "code": f.code, "severity": f.severity,
                    "severity_text": SEVERITY_TEXT.get(f.severity, ""), "message": f.message, "carc": f.carc,
                    "group": f.group or "CO", "carc_text": carc_text(f.carc),
                    "rarcs": [{"code": r, "text": rarc_text(r)} for r in f.rarc], "fix": f.fix,
                    "fix_text": fix_sentence(f.fix), "can_apply": can_apply(f.fix), "rule": f.rule,
                    "source_title": source.title if source else f.source, "source_url": source.url if source else None,
                    "confidence": f.confidence})
        else:
            as_read.append(None)
            shown["errors"] = item.errors
        claims.append(shown)
    s = result.summary
    summary = f"{s['claims']:,} claim{'' if s['claims'] == 1 else 's'}: " + ", ".join(
        f"{s[k]} {STATUS_TEXT[k]}" for k in ("reject", "review", "clean", "invalid") if s[k])
    # The claims as read travel in the page's forms (fix, download): as JSON when every claim
    # could be read (a fix needs to find its claim by position), else as they were given.
    every = all(c is not None for c in as_read)
    if not every:
        for shown in claims:
            for f in shown["findings"]:
                f["can_apply"] = False
    return {"claims": claims, "summary_text": summary, "at_risk": show_money(at_risk), "charges": show_money(charges),
            "at_risk_amount": at_risk, "files": result.files, "document": result.as_dict(),
            "claims_json": json.dumps(as_read, default=json_default) if every else text}


def _csv(results: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["claim_id", "status", "line", "code", "severity", "rule", "group", "carc", "carc_meaning",
                     "rarc", "message", "fix", "source", "confidence"])
    for claim in results["claims"]:
        if not claim["findings"]:
            writer.writerow([claim["id"], claim["status"]] + [""] * 12)
        for f in claim["findings"]:
            writer.writerow([claim["id"], claim["status"], f["line"], f["code"], f["severity"], f["rule"],
                             f["group"] if f["carc"] else "", f["carc"] or "", f["carc_text"],
                             " ".join(r["code"] for r in f["rarcs"]), f["message"], f["fix_text"],
                             f["source_title"], f["confidence"]])
    return out.getvalue()

