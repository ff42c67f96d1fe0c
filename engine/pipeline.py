"""Use cases over the pipeline: scrub files against the store, and replay a stored run."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .claims import Claim, InputError, InvalidClaim, raw_items, validate_claim
from .policy.model import PolicySet
from .policy.snapshot import Resolver
from .scrub import ScrubResult, scrub
from .store import Store


class UsageError(Exception):
    """A problem with how the command was called (exit code 2)."""


X12_SUFFIXES = {".837", ".x12", ".edi", ".txt"}


def _is_x12(path: Path, text: str) -> bool:
    return path.suffix.lower() in X12_SUFFIXES or text.lstrip("\ufeff \r\n").startswith("ISA")


def x12_items(name: str, text: str, policy: PolicySet | None) -> list[Any]:
    """An 837's claims as raw dicts, with structural problems attached or listed for the file."""
    from .x12.claim837 import read_837
    from .x12.validate import validate

    payers = policy.payers.items() if policy else []
    # A payer key written as the id (our own exports do that) maps to itself.
    payer_ids = {key.upper(): key for key, _ in payers}
    payer_ids.update({pid: key for key, payer in payers for pid in payer.x12_payer_ids})
    parsed = read_837(text, payer_ids, policy.taxonomy if policy else {})
    problems = validate(text) if not parsed.errors else []
    items: list[Any] = []
    placed = set()
    for raw, (first, last) in zip(parsed.claims, parsed.spans):
        mine = [p for p in problems if p.segment is not None and first <= p.segment <= last]
        placed.update(id(p) for p in mine)
        items.append(_Structural(raw, [InputError(f"{name} segment {p.segment}", p.reason) for p in mine])
                     if mine else raw)
    rest = [(seg, reason) for seg, reason in parsed.errors] + \
           [(p.segment, p.reason) for p in problems if id(p) not in placed]
    if rest:
        items.append(_Structural(None, [InputError(name + (f" segment {seg}" if seg else ""), reason)
                                        for seg, reason in rest]))
    if not parsed.claims and not rest:
        items.append(_Structural(None, [InputError(name, "the interchange holds no 837 claims")]))
    return items


@dataclass
class _Structural:
    """Claim data the X12 validator objected to (or a file-level problem when raw is None)."""

    raw: dict[str, Any] | None
    errors: list[InputError]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def read_encounters(path: Path) -> dict[str, dict[str, Any]]:
    """The side file of facts an 837 does not carry: {claim id: {encounter: ..., patient: ...}}."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UsageError(f"{path}: not a JSON object keyed by claim id") from None
    if isinstance(data, list):
        data = {str(item.get("id")): {k: v for k, v in item.items() if k != "id"} for item in data
                if isinstance(item, dict)}
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise UsageError(f"{path}: not a JSON object keyed by claim id")
    return data


def read_claim_files(paths: list[Path], policy: PolicySet | None = None,
                     encounters: dict[str, dict[str, Any]] | None = None) -> list[Claim | InvalidClaim]:
    """JSON, JSON Lines and X12 837P files, in any mix, into one batch."""
    raws: list[Any] = []
    for path in paths:
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raws.append(InvalidClaim(None, 0, [InputError("file", f"{path.name} is not UTF-8 text")]))
            continue
        if _is_x12(path, text):
            raws.extend(x12_items(path.name, text, policy))
        else:
            raws.extend(_json_items(text))
    return validate_items(raws, encounters)


def validate_items(raws: list[Any], encounters: dict[str, dict[str, Any]] | None = None) -> list[Claim | InvalidClaim]:
    """Raw items (dicts, structural results, unreadable entries) into claims, in order."""
    items: list[Claim | InvalidClaim] = []
    for position, raw in enumerate(raws, 1):
        if isinstance(raw, InvalidClaim):
            raw.position = position
            items.append(raw)
            continue
        structural = raw.errors if isinstance(raw, _Structural) else []
        raw = raw.raw if isinstance(raw, _Structural) else raw
        if raw is None:
            items.append(InvalidClaim(None, position, structural))
            continue
        if encounters and isinstance(raw, dict) and str(raw.get("id")) in encounters:
            raw = _merge(raw, json.loads(json.dumps(encounters[str(raw.get("id"))])))
        checked = validate_claim(raw, position)
        if structural:
            errors = structural + (checked.errors if isinstance(checked, InvalidClaim) else [])
            checked = InvalidClaim(raw.get("id") if isinstance(raw.get("id"), str) else None, position, errors)
        items.append(checked)
    return items


def iter_claim_files(paths: list[Path], policy: PolicySet | None = None) -> Iterator[Claim | InvalidClaim]:
    """Claims file by file, and JSON Lines line by line, so a year need not be held at once."""
    for path in paths:
        if path.suffix.lower() == ".jsonl" and path.is_file():
            with path.open(encoding="utf-8", errors="replace") as handle:
                for number, text in enumerate(handle, 1):
                    if text.strip():
                        yield from validate_items(raw_items(text))
        else:
            yield from read_claim_files([path], policy)


def _json_items(text: str) -> list[Any]:
    """Raw JSON items (dicts) in any accepted shape; unreadable ones become InvalidClaims."""
    from .claims import raw_items

    return raw_items(text)


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
