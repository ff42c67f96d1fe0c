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
from urllib.parse import quote
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape

from .. import clock
from ..claims import Claim, raw_items
from ..findings import charges_at_risk
from ..money import ZERO, json_default, show_money
from ..pipeline import scrub_items, validate_items
from ..policy.model import PolicySet
from ..policy.snapshot import Resolver
from ..sources import FileProblem, looks_like_x12, x12_items
from . import session as sessions
from .fixes import apply_fix, can_apply
from ..reports import cells
from ..reports.denials import TEMPLATES as REPORT_TEMPLATES
from ..reports.denials import report_context
from ..reports.reasons import carc_text, rarc_text
from ..reports.text import STATUS_WORDS, fix_text

if TYPE_CHECKING:
    from ..store import Store

HERE = Path(__file__).parent
MAX_FILES = 20
SEVERITY_TEXT = {"error": "Denial:", "warning": "Check:", "info": "Note:"}


def same(given: str, expected: str) -> bool:
    """A constant-time comparison of what a form sent with what the session holds (any text)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Form(dict):
    """The fields of a submitted form, text only; an uploaded file's text under its field name,
    and every uploaded file, with its name, in ``uploads``."""

    def __init__(self) -> None:
        super().__init__()
        self.uploads: list[tuple[str, str, bytes]] = []  # field, file name, content


def add_workbench(app: FastAPI, policy: PolicySet, tokens: set[str], resolver: Resolver,
                  failures: Any, max_claims: int, reference: str | None = None,
                  store: "Store | None" = None, max_body: int = 1 << 20) -> None:
    """``failures`` counts wrong tokens per address (the API's ``FailedTokens``: sign-in shares its limit);
    ``reference`` is the SQLite file of imported CMS releases, if any; ``store`` the service's
    store: the runs page lists its runs, scrubs are judged against its history and kept there
    as runs, and denial analyses may keep their files there; ``max_body`` bounds a form field (a
    page's claims or worklist travel in its forms)."""
    from fastapi.staticfiles import StaticFiles

    key = sessions.secret_key(tokens)
    # The workbench's pages and the reports they share with the command line's HTML files.
    templates = Environment(loader=ChoiceLoader([FileSystemLoader(HERE / "templates"),
                                                 FileSystemLoader(REPORT_TEMPLATES)]),
                            autoescape=select_autoescape(["html"]))
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
        async with request.form(max_files=MAX_FILES, max_fields=40, max_part_size=max_body) as data:
            for name, value in data.multi_items():
                if hasattr(value, "read"):
                    raw = await value.read()
                    if raw:
                        form[name] = raw.decode("utf-8", errors="replace")
                        form.uploads.append((name, value.filename or "upload", raw))
                else:
                    form[name] = str(value)
        return form

    def to_sign_in() -> RedirectResponse:
        return RedirectResponse("/login", status_code=303)

    def page_of(template: str, name: str, blank: Callable[[], dict[str, Any]], route: bool = True):
        """A signed-in page: its template filled with the fields' blank values, then the context;
        and (``route``) its empty form served at ``/name``."""
        def show(signed: sessions.Session, status: int = 200, **context: Any) -> HTMLResponse:
            return render(template, status=status, signed_in=True, csrf=signed.csrf, page=name,
                          **{"error": None, **blank(), **context})

        def form(request: Request) -> Response:
            signed = current(request)
            return show(signed) if signed else to_sign_in()

        if route:
            app.get(f"/{name}", include_in_schema=False)(form)
        return show

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
        if failures.blocked(address):
            return render("login.html", status=429, error="Too many wrong tokens from here; wait a minute.")
        if not token or not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
            failures.failed(address)
            return render("login.html", status=401, error="That token is not one this service accepts.")
        response = RedirectResponse("/scrub", status_code=303)
        response.set_cookie(sessions.COOKIE, sessions.encode(sessions.new_session(token), key),
                            max_age=sessions.LIFETIME_SECONDS, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        signed = current(request)
        form = await read_form(request)
        if signed is None or not same(form.get("csrf", ""), signed.csrf):
            return to_sign_in()
        response = to_sign_in()
        response.delete_cookie(sessions.COOKIE, path="/")
        return response

    page = page_of("scrub.html", "scrub", lambda: {"payers": payer_choices, "claims_text": "", "known_on": "",
                                                    "payer": "", "results": None, "store": store is not None,
                                                    "keep": store is not None, "run_id": None})

    async def checked(request: Request) -> tuple[sessions.Session | None, Form | Response]:
        """The session and the form, or the answer to give instead: sign in again, or (a form
        from another session, or forged) refused without acting on it."""
        signed = current(request)
        if signed is None:
            return None, to_sign_in()
        form = await read_form(request)
        if not same(form.get("csrf", ""), signed.csrf):
            return signed, page(signed, status=403, error="That form came from another session and was not acted "
                                                         "on; send it again from this page.")
        return signed, form

    def judge(text: str, known_on: str, payer: str, keep: bool = False) -> tuple[dict[str, Any] | None, str | None, list]:
        """The results to show, or why there are none; also the claims as read, for the next form.
        With a store, claims are judged against its history, as the API judges them, and kept as a
        run when ``keep`` (the run's id is in the results)."""
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
        outcome = scrub_items(items, policy, day, store, {"via": "workbench", "payer": payer or None},
                              resolver=resolver, files=files, keep=keep)
        return dict(_results(policy, items, outcome.result, text), run_id=outcome.run_id), None, items

    async def scrub_response(signed, text: str, known_on: str, payer: str, keep: bool) -> Response:
        if not text.strip():
            return page(signed, error="Paste a claim or choose a file.", known_on=known_on, payer=payer, keep=keep)
        # off the event loop, as the API judges: a batch of 2,000 claims takes a second or two
        results, error, _ = await run_in_threadpool(judge, text, known_on, payer, keep)
        return page(signed, claims_text=text, known_on=known_on, payer=payer, results=results, error=error,
                    keep=keep)

    def keeps(form: Form) -> bool:
        return store is not None and form.get("keep") == "on"

    @app.post("/scrub", include_in_schema=False)
    async def scrub(request: Request) -> Response:
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text = form.get("file") or form.get("claims", "")
        return await scrub_response(signed, text, form.get("known_on", ""), form.get("payer", ""), keeps(form))

    @app.post("/scrub/fix", include_in_schema=False)
    async def fix(request: Request) -> Response:
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text, known_on, payer = form.get("claims", ""), form.get("known_on", ""), form.get("payer", "")
        # off the event loop, as the API judges: a batch of 2,000 claims takes a second or two
        results, error, _ = await run_in_threadpool(judge, text, known_on, payer)
        try:
            claims = json.loads(text)
            claim_index, finding_index = int(form.get("claim", "")), int(form.get("finding", ""))
            shown = results["claims"][claim_index] if results else None
            finding = shown["findings"][finding_index] if shown else None
            if finding is None or not finding["can_apply"]:
                raise ValueError("that fix cannot be applied")
            claims[claim_index] = apply_fix(claims[claim_index], finding["line"], finding["fix"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return page(signed, claims_text=text, known_on=known_on, payer=payer, results=results, keep=keeps(form),
                        error=f"The fix was not applied: {exc}" if isinstance(exc, ValueError) else
                        "The fix was not applied: the claims changed since they were judged.")
        return await scrub_response(signed, json.dumps(claims, indent=2, default=json_default), known_on, payer,
                                    keeps(form))

    @app.post("/scrub/download", include_in_schema=False)
    async def download(request: Request) -> Response:
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text, known_on, fmt = form.get("claims", ""), form.get("known_on", ""), form.get("format", "json")
        results, error, _ = await run_in_threadpool(judge, text, known_on, "")
        if results is None:
            return page(signed, claims_text=text, known_on=known_on, error=error)
        day = known_on or clock.today().isoformat()
        if fmt == "csv":
            return _attachment(_csv(results), "text/csv", f"scrub-{day}.csv")
        if fmt == "html":
            html = render("scrub.html", signed_in=False, csrf="", payers=[], claims_text="", known_on=known_on,
                          payer="", results=results, error=None, page="report").body
            return _attachment(html, "text/html", f"scrub-{day}.html")
        return _attachment(json.dumps(results["document"], indent=2, default=json_default), "application/json",
                           f"scrub-{day}.json")

    def kept_claims() -> int:
        return store.denial_claim_count() if store is not None else 0

    denials_page = page_of("denials.html", "denials", lambda: {
        "report": None, "not_analysed": [], "store": store is not None, "kept": kept_claims(), "worklist_csv": "",
        "earlier": 0})

    @app.post("/denials", include_in_schema=False)
    async def denials(request: Request) -> Response:
        from ..denials import analyse_store

        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        uploads = [(name, data) for field, name, data in form.uploads if field == "files"]
        encounters = next((data for field, _, data in form.uploads if field == "encounters"), None)
        keep = store if form.get("keep") == "on" else None
        try:
            if form.get("action") == "stored" and store is not None:
                shown = await run_in_threadpool(
                    lambda: _denials_shown(analyse_store(store, policy, clock.today(), reference, False)))
            elif not uploads:
                return denials_page(signed, error="Choose the claim and remittance files.")
            else:
                shown = await run_in_threadpool(
                    lambda: _denials_shown(_analyse(policy, uploads, encounters, reference, keep)))
        except ValueError as exc:
            return denials_page(signed, error=str(exc))
        return denials_page(signed, **shown)

    @app.post("/denials/worklist", include_in_schema=False)
    async def denials_worklist(request: Request) -> Response:
        """The worklist of the analysis on the page, as the CSV ``denials --worklist`` writes."""
        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        return _attachment(form.get("worklist", ""), "text/csv", f"worklist-{clock.today().isoformat()}.csv")

    def stored_versions() -> list[dict[str, Any]]:
        listed = [{"digest": v.digest, "label": f"{v.imported_at:%Y-%m-%d %H:%M} · {v.rule_count} rule revisions · "
                   f"{v.digest[7:19]}" + (" (this server's)" if v.digest == policy.digest else "")}
                  for v in (store.policy_versions() if store is not None else [])]
        return listed[::-1]  # newest first

    policy_page = page_of("policy.html", "policy", lambda: {
        "payers": payer_choices, "code": "", "payer": "medicare", "state": "", "q": "", "rows": None, "answer": None,
        "between": {"payer": "medicare", "state": "", "code": "", "first": "", "first_known": "", "second": "",
                    "second_known": ""},
        "versions": stored_versions(), "old": "", "new": "", "changes": None},
        route=False)  # /policy answers its own query string

    @app.get("/policy", include_in_schema=False)
    def policy_explorer(request: Request, code: str = "", payer: str = "medicare", state: str = "",
                        q: str = "") -> Response:
        from ..policy.timeline import code_timeline, timeline_svg

        signed = current(request)
        if signed is None:
            return to_sign_in()
        code, state = code.strip().upper(), state.strip().upper()
        context: dict[str, Any] = {"code": code, "payer": payer, "state": state, "q": q}
        if q.strip():
            try:
                context["answer"] = _who_pays(policy, q)
            except ValueError as exc:
                return policy_page(signed, status=422, error=str(exc), **context)
        if code:
            if payer not in policy.payers:
                return policy_page(signed, status=422, error="choose a payer", **context)
            rows = code_timeline(policy, payer, code, state or None)
            if not rows:
                return policy_page(signed, status=404, error=f"{code} is in no code table or rule of this payer",
                                   **context)
            for row in rows:
                source = policy.sources.get(row.source)
                row.source_title, row.source_url = (source.title, source.url) if source else (row.source, None)
            context.update(rows=rows, svg=timeline_svg(rows, clock.today()), payer_name=policy.payers[payer].name)
        return policy_page(signed, **context)

    @app.get("/policy/between", include_in_schema=False)
    def policy_between(request: Request, payer: str = "medicare", state: str = "", code: str = "", first: str = "",
                       first_known: str = "", second: str = "", second_known: str = "") -> Response:
        from ..policy.diff import View, diff_views

        signed = current(request)
        if signed is None:
            return to_sign_in()
        asked = {"payer": payer, "state": state.strip().upper(), "code": code.strip().upper(), "first": first,
                 "first_known": first_known, "second": second, "second_known": second_known}
        try:
            today = clock.today()
            start = dt.date.fromisoformat(first)
            views = (View(start, dt.date.fromisoformat(first_known) if first_known else today),
                     View(dt.date.fromisoformat(second) if second else start,
                          dt.date.fromisoformat(second_known) if second_known else
                          dt.date.fromisoformat(first_known) if first_known else today))
        except ValueError:
            return policy_page(signed, status=422, between=asked, error="give the dates as YYYY-MM-DD (the first "
                                                                        "date of service is needed)")
        if payer not in policy.payers:
            return policy_page(signed, status=422, between=asked, error="choose a payer")
        changes = diff_views(policy, payer, asked["state"] or None, *views, asked["code"] or None)
        title = (f"{policy.payers[payer].name}{' ' + asked['code'] if asked['code'] else ''}: from {views[0]} "
                 f"to {views[1]}")
        return policy_page(signed, between=asked, changes=changes, changes_title=title)

    @app.get("/policy/versions", include_in_schema=False)
    def policy_versions(request: Request, old: str = "", new: str = "") -> Response:
        from ..policy.diff import diff_policies

        signed = current(request)
        if signed is None:
            return to_sign_in()
        if store is None:
            return policy_page(signed, status=404, error="this server keeps no store, so no stored policy versions")
        known = {v["digest"] for v in stored_versions()}
        if old not in known or new not in known:
            return policy_page(signed, status=422, old=old, new=new, error="choose two stored policy versions")
        trees = [policy if digest == policy.digest else store.load_policy(digest) for digest in (old, new)]
        return policy_page(signed, old=old, new=new, changes=diff_policies(*trees),
                           changes_title=f"From policy version {old[7:19]} to {new[7:19]}")

    @app.get("/policy/code/{code}", include_in_schema=False)
    def policy_code(request: Request, code: str, payer: str = "medicare", state: str = "") -> Response:
        return RedirectResponse(f"/policy?code={quote(code)}&payer={quote(payer)}&state={quote(state)}",
                                status_code=303)

    @app.get("/policy/rule/{rule_id}", include_in_schema=False)
    def policy_rule(request: Request, rule_id: str) -> Response:
        signed = current(request)
        if signed is None:
            return to_sign_in()
        revisions = [r for layer in policy.layers.values() for r in layer.rules if r.rule_id == rule_id]
        if not revisions:
            return policy_page(signed, status=404, error=f"no rule {rule_id} in this policy tree")
        shown = []
        for r in sorted(revisions, key=lambda r: (r.layer, r.published)):
            source = policy.sources.get(r.source)
            shown.append({"layer": r.layer, "published": r.published, "title": r.title, "start": r.effective.from_,
                          "end": r.effective.to, "severity": r.then.severity if r.then else f"derives {r.derive}",
                          "carc": r.then.carc if r.then else None,
                          "carc_text": carc_text(r.then.carc) if r.then else "", "confidence": r.confidence,
                          "source_title": source.title if source else r.source,
                          "source_url": source.url if source else None, "where": str(r.where),
                          "yaml": _yaml_of(policy, r.where, rule_id)})
        cases = [{"name": c.name, "where": str(c.where),
                  "kind": "must fire" if any((e if isinstance(e, str) else e.get("rule")) == rule_id
                                             for e in c.expect) else "must not fire"}
                 for c in policy.cases
                 if rule_id in c.expect_not or any((e if isinstance(e, str) else e.get("rule")) == rule_id
                                                    for e in c.expect)]
        written = list(dict.fromkeys((r["where"].rsplit(":", 1)[0], r["yaml"]) for r in shown if r["yaml"]))
        return render("rule.html", signed_in=True, csrf=signed.csrf, page="policy", rule_id=rule_id,
                      revisions=shown, cases=cases, written=written)

    runs_page = page_of("runs.html", "runs", lambda: {
        "store": store is not None, "runs": store.runs(50) if store is not None else [], "message": None,
        "message_class": "ok"})

    @app.post("/runs/{run_id}/replay", include_in_schema=False)
    async def runs_replay(request: Request, run_id: str) -> Response:
        from ..pipeline import ReplayError, replay

        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        if store is None:
            return runs_page(signed, status=404)
        try:
            _, stored, fresh = await run_in_threadpool(replay, store, run_id)
        except (KeyError, ReplayError) as exc:
            return runs_page(signed, status=404, message=str(exc.args[0] if exc.args else exc), message_class="error")
        if stored == fresh:
            return runs_page(signed, message=f"Run {run_id[:12]}: the replay gives the same {len(fresh)} findings.")
        return runs_page(signed, message=f"Run {run_id[:12]}: the replay differs ({len(stored)} findings stored, "
                                         f"{len(fresh)} now).", message_class="error")

    whatif_page = page_of("whatif.html", "whatif", lambda: {
        "claims_text": "", "sets_text": "", "known_a": "", "known_b": "", "grid": None})

    @app.post("/whatif", include_in_schema=False)
    async def whatif(request: Request) -> Response:
        from ..whatif import SetError, claim_variants, knowledge_dates

        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        text, sets_text = form.get("claims", ""), form.get("sets", "")
        known_a, known_b = form.get("known_a", ""), form.get("known_b", "")
        context = {"claims_text": text, "sets_text": sets_text, "known_a": known_a, "known_b": known_b}
        sets = [line.strip() for line in sets_text.splitlines() if line.strip()]
        items = validate_items(raw_items(text), policy=policy) if text.strip() else []
        if not items:
            return whatif_page(signed, error="Paste a claim to vary.", **context)
        if len(items) > 50:
            return whatif_page(signed, error="At most 50 claims here; use payerpolicy whatif for more.", **context)
        try:
            if known_a and known_b:
                first, second = dt.date.fromisoformat(known_a), dt.date.fromisoformat(known_b)
                comparisons = [await run_in_threadpool(knowledge_dates, items, policy, first, second, 1, reference)]
            elif sets:
                comparisons = await run_in_threadpool(claim_variants, items, policy, clock.today(), sets, 1, reference)
            else:
                return whatif_page(signed, error="Say what to vary, or give two knowledge dates.", **context)
        except (SetError, ValueError) as exc:
            return whatif_page(signed, error=str(exc), **context)
        return whatif_page(signed, grid=_grid(comparisons), **context)

    suggest_page = page_of("suggest.html", "suggest", lambda: {
        "payers": payer_choices, "providers": PROVIDERS, "modalities": MODALITIES, "locations": LOCATIONS,
        "answer": None, "form": {"payer": "medicare", "state": "", "service_date": clock.today().isoformat(),
                                 "provider": "MD", "modality": "in-person", "location": "office", "mdm": "",
                                 "patient_status": "established", **{name: "" for name in NUMBERS}}})

    @app.post("/suggest", include_in_schema=False)
    async def suggest(request: Request) -> Response:
        from ..suggest import suggest as suggest_coding

        signed, form = await checked(request)
        if not isinstance(form, Form):
            return form
        try:
            raw = encounter_of(form)
            if raw["payer"] not in policy.payers:
                raise ValueError("choose a payer")
            answer = await run_in_threadpool(suggest_coding, raw, policy, clock.today(), reference)
        except ValueError as exc:
            return suggest_page(signed, form=form, error=str(exc))
        return suggest_page(signed, form=form, answer=_answer(policy, answer))


PROVIDERS = ["MD", "DO", "NP", "PA", "CNS", "psychologist", "LCSW", "LMFT", "LPC", "RN", "pharmacist", "PT", "OT",
             "SLP", "RD"]
MODALITIES = [("in-person", "in person"), ("video", "video"), ("audio-only", "audio only (telephone)"),
              ("portal", "patient portal (online)"), ("remote-monitoring", "remote monitoring")]
LOCATIONS = [("office", "the office"), ("home", "at home"), ("clinic", "a clinic"), ("hospital", "a hospital"),
             ("snf", "a nursing facility"), ("other", "elsewhere")]
NUMBERS = ("total_minutes", "psychotherapy_minutes", "rpm_days", "rpm_minutes")


def encounter_of(form: dict[str, str]) -> dict[str, Any]:
    """The suggest form as the encounter the engine takes (the same shape as ``suggest FILE``)."""
    encounter: dict[str, Any] = {"modality": form.get("modality") or "in-person"}
    for name in NUMBERS:
        value = form.get(name, "").strip()
        if value:
            if not value.isdigit():
                raise ValueError(f"{name.replace('_', ' ')} must be a whole number")
            encounter[name] = int(value)
    if form.get("mdm"):
        encounter["mdm"] = form["mdm"]
    if encounter["modality"] == "remote-monitoring":
        encounter["interactive_communication"] = True
    raw: dict[str, Any] = {"payer": form.get("payer", ""), "service_date": form.get("service_date") or "",
                           "rendering_provider": {"type": form.get("provider") or "MD"}, "encounter": encounter,
                           "patient": {"location": form.get("location") or "office",
                                       "new_patient": form.get("patient_status") == "new"}}
    if form.get("state", "").strip():
        raw["state"] = form["state"].strip().upper()
    return raw


def _answer(policy: PolicySet, suggestion) -> dict[str, Any]:
    data = suggestion.as_dict()
    rec = suggestion.recommended
    for line in data["recommended"]:
        source = policy.sources.get(line["source"])
        line["source_title"] = source.title if source else line["source"]
    return dict(data, label=rec.label() if rec else "", basis=rec.basis if rec else "",
                value=rec.value if rec else None)


def _grid(comparisons) -> dict[str, Any]:
    """Comparisons as one grid: a row per variant, a column per claim, the status in each cell
    with the rules it gained and lost against the claims as given."""
    first = comparisons[0]
    claims = [c.id or f"claim {c.position}" for c in first.changes]
    rows = []
    for comparison in comparisons:
        cells = [{"status": c.status_b, "added": sorted({f.rule for f in c.added}),
                  "removed": sorted({f.rule for f in c.removed})} for c in comparison.changes]
        rows.append({"label": comparison.b if comparison.b.startswith("known on") else comparison.label.split(" vs ")[0],
                     "cells": cells, "risk": show_money(sum((c.at_risk_b for c in comparison.changes), ZERO))})
    return {"claims": claims, "baseline_label": first.a, "baseline": [c.status_a for c in first.changes],
            "baseline_risk": show_money(sum((c.at_risk_a for c in first.changes), ZERO)), "rows": rows}


def _who_pays(policy: PolicySet, text: str) -> dict[str, Any]:
    """A "who pays" question in words, answered as ``policy query`` answers it, grouped per payer."""
    from ..policy.query import ask_all, code_kinds, settle
    from ..policy.question_text import QuestionError, read_question

    try:
        asked = settle(policy, read_question(text, policy.payer_names(), code_kinds(policy)), clock.today())
    except QuestionError as exc:
        raise ValueError(str(exc)) from None
    rows: dict[tuple, dict[str, Any]] = {}
    for a in ask_all(policy, asked):
        decided = [f for f in a.findings if f.severity != "info"]
        key = (a.payer, a.state, a.verdict, tuple(f.rule for f in decided))
        row = rows.setdefault(key, {"payer": policy.payers[a.payer].name + (f" ({a.state})" if a.state else ""),
                                    "verdict": a.verdict, "codes": [], "findings": decided})
        row["codes"].append(a.code)
    for row in rows.values():
        row["codes"] = ", ".join(row["codes"])
    return {"asked": asked.sentence(), "rows": list(rows.values()),
            "not_in_force": ", ".join(asked.not_in_force)}


def _yaml_of(policy: PolicySet, where, rule_id: str) -> str:
    """The rule's entry as written in its policy file: from its ``- id:`` line to the next entry."""
    path = Path(policy.root) / where.file
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    start = min(max(where.line - 1, 0), len(lines) - 1)
    while start > 0 and f"id: {rule_id}" not in lines[start]:
        start -= 1
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    return "\n".join(lines[start:end]).rstrip()


def _analyse(policy: PolicySet, uploads: list[tuple[str, bytes]], encounters: bytes | None,
             reference: str | None, store: "Store | None" = None):
    """The uploaded files analysed as ``denials`` would (sorted by content): with ``store``, kept
    there and analysed with what earlier runs kept; without, nothing kept (``--no-store``).
    The files live in a private temporary folder meanwhile."""
    import tempfile

    from ..denials import RemitFileError, analyse_files
    from ..pipeline import UsageError, read_encounters

    with tempfile.TemporaryDirectory(prefix="payerpolicy-denials-") as folder:
        paths = []
        for number, (name, data) in enumerate(uploads, 1):
            safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in Path(name).name)[:80] or "upload"
            path = Path(folder) / f"{number:02d}-{safe}"
            path.write_bytes(data)
            paths.append(path)
        side = None
        if encounters is not None:
            side_path = Path(folder) / "encounters.json"
            side_path.write_bytes(encounters)
            try:
                side = read_encounters(side_path)
            except UsageError:
                raise ValueError("the encounters file is not a JSON object keyed by claim id") from None
        try:
            report = analyse_files(paths, policy, clock.today(), side, reference, keep_lines=False, store=store)
        except (RemitFileError, UsageError) as exc:
            raise ValueError(str(exc).replace(folder + "/", "")) from None
        report.files = [dict(p, name=p["name"].split("-", 1)[-1]) for p in report.files]
        return report


def _attachment(body: str | bytes, media_type: str, filename: str) -> Response:
    """A download: the browser saves it under ``filename`` rather than showing it."""
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _denials_shown(report) -> dict[str, Any]:
    """What the denials page shows of a report; read on the thread that made it, since the report's
    worklist lives in a SQLite file of that thread."""
    from ..denials import worklist_csv

    return {"report": report_context(report), "not_analysed": report.not_analysed,
            "worklist_csv": worklist_csv(report), "earlier": report.claims_from_earlier_runs}


def _results(policy: PolicySet, items: list, result, text: str) -> dict[str, Any]:
    """What the page shows per claim: payer, date, codes, charges, status, and per finding a
    sentence, the CARC/RARC in words, the fix as a sentence, the citation and confidence."""
    claims, at_risk, charges = [], ZERO, ZERO
    as_read = []
    for index, (item, outcome) in enumerate(zip(items, result.claims)):
        shown: dict[str, Any] = {"index": index, "id": outcome.id, "status": outcome.status,
                                 "status_text": STATUS_WORDS[outcome.status], "findings": []}
        if isinstance(item, Claim):
            as_read.append(item.model_dump(mode="json", exclude_none=True))
            billed, risky = charges_at_risk(item.lines, outcome.findings)
            charges, at_risk = charges + billed, at_risk + risky
            payer = policy.payers.get(item.payer)
            shown.update(payer=payer.name if payer else item.payer, service_date=item.service_date.isoformat(),
                         codes=", ".join(line.code + ("-" + "-".join(line.modifiers) if line.modifiers else "")
                                         for line in item.lines),
                         charges=show_money(billed) if any(line.charge for line in item.lines) else "not given")
            for number, f in enumerate(outcome.findings):
                source = policy.sources.get(f.source)
                shown["findings"].append({
                    "index": number, "line": f.line, "code": f.code, "severity": f.severity,
                    "severity_text": SEVERITY_TEXT.get(f.severity, ""), "message": f.message, "carc": f.carc,
                    "group": f.group or "CO", "carc_text": carc_text(f.carc),
                    "rarcs": [{"code": r, "text": rarc_text(r)} for r in f.rarc], "fix": f.fix,
                    "fix_text": fix_text(f.fix), "can_apply": can_apply(f.fix), "rule": f.rule,
                    "source_title": source.title if source else f.source, "source_url": source.url if source else None,
                    "confidence": f.confidence})
        else:
            as_read.append(None)
            shown["errors"] = item.errors
        claims.append(shown)
    s = result.summary
    summary = f"{s['claims']:,} claim{'' if s['claims'] == 1 else 's'}: " + ", ".join(
        f"{s[k]} {STATUS_WORDS[k]}" for k in ("reject", "review", "clean", "invalid") if s[k])
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
            writer.writerow(cells.row([claim["id"], claim["status"]] + [""] * 12))
        for f in claim["findings"]:
            writer.writerow(cells.row([claim["id"], claim["status"], f["line"], f["code"], f["severity"], f["rule"],
                                       f["group"] if f["carc"] else "", f["carc"] or "", f["carc_text"],
                                       " ".join(r["code"] for r in f["rarcs"]), f["message"], f["fix_text"],
                                       f["source_title"], f["confidence"]]))
    return out.getvalue()

