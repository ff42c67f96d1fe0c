"""Use cases over the pipeline: scrub files against the store, and replay a stored run."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .claims import Claim, InputError, InvalidClaim, parse_claims_text
from .policy.model import PolicySet
from .policy.snapshot import Resolver
from .scrub import ScrubResult, scrub
from .store import Store


class UsageError(Exception):
    """A problem with how the command was called (exit code 2)."""


def read_claim_files(paths: list[Path]) -> list[Claim | InvalidClaim]:
    items: list[Claim | InvalidClaim] = []
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            items.append(InvalidClaim(None, 0, [InputError("file", f"{path.name} is not UTF-8 text")]))
            continue
        items.extend(parse_claims_text(text))
    for position, item in enumerate(items, 1):
        if isinstance(item, InvalidClaim):
            item.position = position
    return items


def _encode(items: list[Claim | InvalidClaim]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        if isinstance(item, Claim):
            out.append({"claim": item.model_dump(mode="json")})
        else:
            out.append({"invalid": {"id": item.id, "errors": [e.as_dict() for e in item.errors]}})
    return out


def _decode(encoded: list[dict[str, Any]]) -> list[Claim | InvalidClaim]:
    items: list[Claim | InvalidClaim] = []
    for position, entry in enumerate(encoded, 1):
        if "claim" in entry:
            items.append(Claim.model_validate(entry["claim"]))
        else:
            bad = entry["invalid"]
            items.append(InvalidClaim(bad["id"], position, [InputError(**e) for e in bad["errors"]]))
    return items


def family_lookup(policy: PolicySet, known_on: dt.date) -> Callable[[Claim, dt.date, str], str | None]:
    resolver = Resolver(policy)

    def family(claim: Claim, day: dt.date, code: str) -> str | None:
        if claim.payer not in policy.payers:
            return None
        attrs = resolver.get(claim.payer, claim.state, known_on).code_attrs(code, day)
        return (attrs or {}).get("family")

    return family


@dataclass
class RunOutcome:
    result: ScrubResult
    run_id: str | None


def scrub_items(items: list[Claim | InvalidClaim], policy: PolicySet, known_on: dt.date,
                store: Store | None, options: dict[str, Any] | None = None,
                progress: Callable[[int], None] | None = None) -> RunOutcome:
    """Scrub a batch; with a store, use its history and keep the run, its findings and claims."""
    if store is None:
        return RunOutcome(scrub(items, policy, known_on, progress=progress), None)
    store.import_policy(policy)
    upto = store.max_claim_record()
    history = store.history_for(items, family_lookup(policy, known_on), upto)
    result = scrub(items, policy, known_on, history=history, progress=progress)
    run_id = store.record_run(result, items, _encode(items), options or {}, upto)
    return RunOutcome(result, run_id)


def replay(store: Store, run_id: str) -> tuple[ScrubResult, list[tuple[int, dict]], list[tuple[int, dict]]]:
    """Re-run a stored run from its receipt alone; returns the result, stored and new findings."""
    run, rows = store.get_run(run_id)
    policy = store.load_policy(run.policy_digest)
    items = _decode(json.loads(run.input))
    history = store.history_for(items, family_lookup(policy, run.known_on), run.history_upto)
    result = scrub(items, policy, run.known_on, history=history)
    stored = [(r.claim_position, json.loads(r.body)) for r in rows]
    fresh = [(c.position, f.as_dict()) for c in result.claims for f in c.findings]
    return result, stored, fresh
