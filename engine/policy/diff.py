"""Semantic differences between two policy sets, between two dated views of one payer, and the
dated history of one code."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from .fields import describe, walk
from .loader import EARLIEST
from .model import PolicySet, RuleRevision
from .snapshot import parse_when, resolve


@dataclass
class Change:
    layer: str
    kind: str  # rule, code, disable, payer
    id: str
    change: str  # added, removed, re-dated, re-worded, severity, carc, condition, source, confidence, values, chain
    detail: str

    def as_dict(self) -> dict[str, str]:
        return self.__dict__.copy()


def _rule_aspects(r: RuleRevision) -> dict[str, Any]:
    then = r.then
    return {
        "re-dated": f"{r.effective.from_}..{r.effective.to or ''}",
        "re-worded": (r.title, then.message if then else None, then.fix.text if then and then.fix else None),
        "severity": then.severity if then else f"derive {r.derive}",
        "carc": (then.carc, then.group, tuple(then.rarc)) if then else None,
        "condition": describe(parse_when(r.when, ())),
        "source": r.source,
        "confidence": r.confidence,
    }


def diff_policies(old: PolicySet, new: PolicySet) -> list[Change]:
    changes: list[Change] = []
    for key in sorted(set(old.payers) | set(new.payers)):
        a, b = old.payers.get(key), new.payers.get(key)
        if a is None or b is None:
            changes.append(Change("payers.yaml", "payer", key, "added" if a is None else "removed", ""))
        elif (a.layers, a.states) != (b.layers, b.states):
            changes.append(Change("payers.yaml", "payer", key, "chain",
                                  f"{' -> '.join(a.layers)} {a.states} => {' -> '.join(b.layers)} {b.states}"))
    for name in sorted(set(old.layers) | set(new.layers)):
        la, lb = old.layers.get(name), new.layers.get(name)
        ra = {(r.rule_id, r.published): r for r in (la.rules if la else [])}
        rb = {(r.rule_id, r.published): r for r in (lb.rules if lb else [])}
        for k in sorted(set(ra) | set(rb), key=lambda k: (k[0], k[1])):
            label = f"{k[0]} revision {k[1]}"
            if k not in ra:
                changes.append(Change(name, "rule", label, "added", rb[k].title))
            elif k not in rb:
                changes.append(Change(name, "rule", label, "removed", ra[k].title))
            else:
                aa, bb = _rule_aspects(ra[k]), _rule_aspects(rb[k])
                for aspect in aa:
                    if aa[aspect] != bb[aspect]:
                        changes.append(Change(name, "rule", label, aspect, f"{_show(aa[aspect])} => {_show(bb[aspect])}"))
        da = {(d.rule_id, d.published) for d in (la.disables if la else [])}
        db = {(d.rule_id, d.published) for d in (lb.disables if lb else [])}
        for rid, pub in sorted(da ^ db):
            changes.append(Change(name, "disable", f"{rid} from {pub}", "added" if (rid, pub) in db else "removed", ""))
        ca = la.codes if la else {}
        cb = lb.codes if lb else {}
        for code in sorted(set(ca) | set(cb)):
            va = {r.published: r for r in ca.get(code, [])}
            vb = {r.published: r for r in cb.get(code, [])}
            for pub in sorted(set(va) | set(vb)):
                label = code if pub == EARLIEST else f"{code} revision {pub}"
                if pub not in va:
                    changes.append(Change(name, "code", label, "added", _values(vb[pub].values)))
                elif pub not in vb:
                    changes.append(Change(name, "code", label, "removed", _values(va[pub].values)))
                elif _values(va[pub].values) != _values(vb[pub].values):
                    changes.append(Change(name, "code", label, "values",
                                          f"{_values(va[pub].values)} => {_values(vb[pub].values)}"))
    return changes


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " / ".join(str(v) for v in value if v)
    return str(value)


def _values(values) -> str:
    return "; ".join(f"{v.effective.from_}..{v.effective.to or ''} "
                     + ", ".join(f"{k}={v.attrs[k]}" for k in sorted(v.attrs)) for v in values)


@dataclass
class Event:
    published: str
    layer: str
    what: str
    detail: str
    source: str


def code_history(policy: PolicySet, payer: str, code: str | None, state: str | None = None) -> list[Event]:
    """Every dated change to a code and to the rules that name it or its kinds, in one payer's chain;
    with no code, every rule revision and disable of the chain."""
    chain = policy.payers[payer].chain(state)
    code = code.upper() if code else None
    events: list[Event] = []
    kinds: set[str] = set()
    for name in chain if code else ():
        seen: set[str] = set()  # a later revision repeats what still holds; show only what it changes
        for rev in sorted(policy.layers[name].codes.get(code, []), key=lambda r: r.published):
            for value in rev.values:
                if "kind" in value.attrs:
                    kinds.add(value.attrs["kind"])
                fingerprint = f"{value.effective.from_}|{value.effective.to}|{sorted(value.attrs.items())}"
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                events.append(Event("(always known)" if rev.published == EARLIEST else str(rev.published), name,
                                    f"code {code} {value.effective.from_}..{value.effective.to or ''}",
                                    ", ".join(f"{k}={value.attrs[k]}" for k in sorted(value.attrs)) or "(no change)",
                                    value.source))
    for name in chain:
        for rule in policy.layers[name].rules:
            if _names(rule, code, kinds):
                then = rule.then
                what = f"derive {rule.derive}" if rule.derive else f"{then.severity} {then.carc or ''}".strip()
                events.append(Event(str(rule.published), name,
                                    f"rule {rule.rule_id} for dates {rule.effective.from_}..{rule.effective.to or ''}",
                                    f"{what}: {rule.title}", rule.source))
        for item in policy.layers[name].disables:
            if any(item.rule_id == r.rule_id and _names(r, code, kinds)
                   for layer in policy.layers.values() for r in layer.rules):
                events.append(Event(str(item.published), name, f"disables {item.rule_id}", item.reason, item.source))
    return sorted(events, key=lambda e: (e.published if e.published[0].isdigit() else "0000", e.layer, e.what))


def _names(rule: RuleRevision, code: str | None, kinds: set[str]) -> bool:
    if code is None:
        return True
    for test in walk(parse_when(rule.when, ())):
        values = test.value if isinstance(test.value, tuple) else (test.value,)
        if test.field in ("line.code", "claim.other_codes") and code in values and test.op in ("eq", "in", "has", "has_any"):
            return True
        if test.field == "code.kind" and test.op in ("eq", "in") and kinds & set(values):
            return True
    return False


def derived_only(rule: RuleRevision) -> bool:
    """A rule that turns on a derived fact (a telehealth line...): it can apply to any code billed so."""
    return any(test.field.startswith("derived") for test in walk(parse_when(rule.when, ())))


@dataclass(frozen=True)
class View:
    """One way of looking at a payer's policy: claims with this date of service, as known on this date."""
    date_of_service: dt.date
    known_on: dt.date

    def __str__(self) -> str:
        return f"dates of service {self.date_of_service}, as known on {self.known_on}"


def diff_views(policy: PolicySet, payer: str, state: str | None, first: View, second: View,
               code: str | None = None) -> list[Change]:
    """What a claim meets under ``second`` that it did not under ``first``: rules that came into or
    went out of force, rules whose revision changed, and code values. Two dates of service show
    what changed over time; two knowledge dates show what a later (perhaps retroactive)
    publication changed about the same dates. With a code, only what touches it: its values, the
    rules that name it or its kinds, and the rules any code meets when billed a certain way."""
    code = code.upper() if code else None
    a, b = (resolve(policy, payer, state, view.known_on) for view in (first, second))
    changes: list[Change] = []

    def values(snap, day: dt.date) -> dict[str, dict[str, Any]]:
        if code is None:
            return snap.codes_on(day)
        attrs = snap.code_attrs(code, day)
        return {code: attrs} if attrs else {}

    va, vb = values(a, first.date_of_service), values(b, second.date_of_service)
    for name in sorted(set(va) | set(vb)):
        if name not in vb:
            changes.append(Change("code table", "code", name, "removed", _attrs(va[name])))
        elif name not in va:
            changes.append(Change("code table", "code", name, "added", _attrs(vb[name])))
        elif _attrs(va[name]) != _attrs(vb[name]):
            changes.append(Change("code table", "code", name, "values", f"{_attrs(va[name])} => {_attrs(vb[name])}"))
    kinds = {attrs["kind"] for attrs in (*va.values(), *vb.values()) if "kind" in attrs}

    def in_force(snap, day: dt.date) -> dict[str, RuleRevision]:
        return {r.rule_id: r.revision for r in snap.rules if r.revision.effective.covers(day)
                and (code is None or _names(r.revision, code, kinds) or derived_only(r.revision))}

    ra, rb = in_force(a, first.date_of_service), in_force(b, second.date_of_service)
    for rule_id in sorted(set(ra) | set(rb)):
        old, new = ra.get(rule_id), rb.get(rule_id)
        if new is None:
            changes.append(Change(old.layer, "rule", rule_id, "removed", f"no longer in force: {old.title}"))
        elif old is None:
            changes.append(Change(new.layer, "rule", rule_id, "added", f"in force: {new.title}"))
        elif (old.layer, old.published) != (new.layer, new.published):
            aa, bb = _rule_aspects(old), _rule_aspects(new)
            changed = [Change(new.layer, "rule", rule_id, aspect, f"{_show(aa[aspect])} => {_show(bb[aspect])}")
                       for aspect in aa if aa[aspect] != bb[aspect]]
            changes.extend(changed or [Change(new.layer, "rule", rule_id, "revision",
                                              f"{old.layer} {old.published} => {new.layer} {new.published}")])
    return changes


def _attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) or "(no values)"
