"""Forward chaining on durable_rules. The only module that imports durable_rules.

A snapshot compiles into two rulesets, cached by the snapshot's signature:
``derive`` rules (which may chain on each other's facts through joins) and
``judge`` rules (which see each line together with every fact derived for it).
Two stages keep negation sound: a judge rule may ask that a fact was *not*
derived, and by then derivation is complete.

The known edges of durable_rules and how this module meets them:
- events are consumed by the first matching rule: lines are asserted as facts;
- a fact no rule matches raises MessageNotHandledException: caught, a clean line
  is not an error;
- a re-asserted fact id raises MessageObservedException: every fact id carries a
  per-claim session id that is never reused, and each derived fact is asserted once;
- postponed actions run on a background thread: the host here has no dispatch
  thread, every action runs synchronously inside the assert that triggered it, and
  nothing is batched;
- state kept between claims costs memory: all claims share one session, and every
  fact a claim stored is retracted after it (delete_state after an unmatched assert
  was seen to corrupt the heap, so it is never called);
- `-m.x.anyItem` means "x absent" and allItems fails on []: sets are flattened to
  one flag per member plus a count, and absence is tested with $nex explicitly;
- dynamic rulesets leak: one ruleset per snapshot signature, reused;
- exceptions inside actions are swallowed: actions only record, and any error they
  hit is re-raised after the assert returns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from durable.engine import Host, MessageNotHandledException

from .policy.fields import FIELDS, AllOf, AnyOf, Cond, FieldRef, Test, field_spec, walk
from .policy.snapshot import ActiveRule, Snapshot


class EngineError(Exception):
    """The rules engine failed; the message never carries claim data."""


class _SyncHost(Host):
    def _run(self) -> None:  # no background dispatch thread: actions run inline
        return None


_host = _SyncHost()
_lock = threading.RLock()
_names = itertools.count(1)
_sessions = itertools.count(1)
# One durable_rules session for all claims: a session per claim costs memory unless
# deleted, and deleting one is unsafe (see run). Fact ids carry a per-claim prefix.
SESSION = "payerpolicy"


def key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name.replace(".", "__"))


def _fact_value(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.year * 10000 + value.month * 100 + value.day
    return value


def flatten(facts: dict[str, Any]) -> dict[str, Any]:
    """Our named facts -> one flat durable_rules message."""
    out: dict[str, Any] = {}
    for name, value in facts.items():
        k = key(name)
        if isinstance(value, (set, frozenset)):
            out[k + "__n"] = len(value)
            for member in value:
                out[k + "__" + key(str(member))] = 1
        else:
            out[k] = _fact_value(value)
    return out


def _absent(name: str) -> dict:
    spec = field_spec(name)
    k = key(name) + ("__n" if spec is not None and spec.kind == "set" else "")
    return {"$nex": {k: 1}}


def _present(name: str) -> dict:
    spec = field_spec(name)
    k = key(name) + ("__n" if spec is not None and spec.kind == "set" else "")
    return {"$ex": {k: 1}}


def _and(parts: list[dict]) -> dict:
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _or(parts: list[dict]) -> dict:
    return parts[0] if len(parts) == 1 else {"$or": parts}


def compile_cond(cond: Cond) -> dict:
    if isinstance(cond, AllOf):
        return _and([compile_cond(c) for c in cond.items])
    if isinstance(cond, AnyOf):
        return _or([compile_cond(c) for c in cond.items])
    return _compile_test(cond)


def _compile_test(t: Test) -> dict:
    k = key(t.field)
    v = t.value
    op = t.op
    if op == "present":
        return _present(t.field)
    if op == "absent":
        return _absent(t.field)
    spec = field_spec(t.field)
    if spec is not None and spec.kind == "set":
        members = [f"{k}__{key(str(m))}" for m in (v or ())]
        if op == "has":
            return _and([{"$ex": {m: 1}} for m in members])
        if op == "has_any":
            return _or([{"$ex": {m: 1}} for m in members])
        if op == "lacks":
            return _and([_present(t.field)] + [{"$nex": {m: 1}} for m in members])
        if op == "empty":
            return {k + "__n": 0}
        if op == "nonempty":
            return {"$gt": {k + "__n": 0}}
        raise EngineError(f"cannot compile set test {op}")
    if op == "eq":
        return {k: _fact_value(v)}
    if op == "in":
        return _or([{k: _fact_value(x)} for x in v])
    if op == "ne":
        return _and([_present(t.field), {"$neq": {k: _fact_value(v)}}])
    if op == "not_in":
        return _and([_present(t.field)] + [{"$neq": {k: _fact_value(x)}} for x in v])
    durable_op = {"lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}[op]
    if isinstance(v, FieldRef):
        return _and([_present(t.field), _present(v.name), {durable_op: {k: {"$m": key(v.name)}}}])
    return {durable_op: {k: _fact_value(v)}}


def _window(rule: ActiveRule) -> list[dict]:
    eff = rule.revision.effective
    parts = [{"$gte": {key("line.service_date"): _fact_value(eff.from_)}}]
    if eff.to is not None:
        parts.append({"$lte": {key("line.service_date"): _fact_value(eff.to)}})
    return parts


def _input(name: str) -> str | None:
    spec = FIELDS.get(name)
    return spec.input if spec else None


def _top_tests(cond: Cond) -> list[Test]:
    if isinstance(cond, Test):
        return [cond]
    if isinstance(cond, AllOf):
        return [c for c in cond.items if isinstance(c, Test)]
    return []


def _relax(cond: Cond, missing: str) -> Cond:
    """The rule's condition with every test on one input turned into "that input is absent".

    Every other test stays as written, so the variant fires only when the one missing
    input is what stands between the claim and the finding.
    """
    def visit(c: Cond) -> Cond:
        if isinstance(c, AllOf):
            return AllOf(tuple(visit(i) for i in c.items))
        if isinstance(c, AnyOf):
            return AnyOf(tuple(visit(i) for i in c.items))
        if _input(c.field) == missing:
            if isinstance(c.value, FieldRef):  # the code table must still say the test applies
                return AllOf((Test(c.field, "absent"), Test(c.value.name, "present")))
            return Test(c.field, "absent")
        return c

    return visit(cond)


_ANCHORS = {"eq", "in", "has", "has_any", "present", "lt", "lte", "gt", "gte"}


def missing_variants(rule: ActiveRule) -> list[tuple[str, Cond]]:
    """One relaxed condition per claim input the rule turns on.

    An input is reported missing only when some other positive test (a code, a derived
    fact, another field's value) already says the rule is about this line; a rule whose
    only positive test is on the missing input simply does not apply.
    """
    if rule.revision.then is None or rule.revision.missing == "ignore" or rule.severity == "info":
        return []
    tops = _top_tests(rule.cond)
    inputs: list[str] = []
    for t in tops:
        inp = _input(t.field)
        if inp and inp not in inputs:
            anchored = FIELDS[t.field].self_anchored if t.field in FIELDS else False
            anchored = anchored or any(o.op in _ANCHORS and _input(o.field) != inp for o in tops)
            if anchored:
                inputs.append(inp)
    return [(inp, _relax(rule.cond, inp)) for inp in inputs]


@dataclass(frozen=True)
class Hit:
    rule: ActiveRule
    line: int
    missing: bool = False


@dataclass
class _Session:
    sid: str
    hits: list[Hit] = field(default_factory=list)
    derived: dict[int, dict[str, str]] = field(default_factory=dict)  # line -> name -> deriving rule
    errors: list[str] = field(default_factory=list)
    stored: list[tuple[str, dict]] = field(default_factory=list)


class CompiledRules:
    """A snapshot's rules as two durable_rules rulesets."""

    def __init__(self, snapshot: Snapshot):
        self._current: _Session | None = None
        derive_rules = [r for r in snapshot.rules if r.revision.derive]
        judge_rules = [r for r in snapshot.rules if r.revision.then]
        self.rule_count = len(snapshot.rules)
        self.derive_name = self._register("derive", self._derive_definitions(derive_rules)) if derive_rules else None
        self.judge_name = self._register("judge", self._judge_definitions(judge_rules)) if judge_rules else None

    def _register(self, kind: str, definitions: dict) -> str:
        name = f"pp_{kind}_{next(_names)}"
        _host.register_rulesets({name: definitions})
        return name

    def _derive_definitions(self, rules: list[ActiveRule]) -> dict:
        definitions = {}
        for index, rule in enumerate(rules):
            joins = [t.field[8:] for t in walk(rule.cond) if t.field.startswith("derived.")]
            own = _strip_derived(rule.cond)
            line_parts = [{"t": "line"}] + _window(rule) + ([compile_cond(own)] if own is not None else [])
            patterns = [{"m": _and(line_parts)}]
            for j, name in enumerate(joins):
                patterns.append({f"d{j}": {"$and": [{"t": "derived"}, {"name": name}, {"line": {"m": "ln"}}]}})
            definitions[f"d{index}"] = {"all": patterns, "run": self._derive_action(rule)}
        return definitions

    def _judge_definitions(self, rules: list[ActiveRule]) -> dict:
        definitions = {}
        for index, rule in enumerate(rules):
            base = [{"t": "line"}] + _window(rule)
            definitions[f"j{index}"] = {"all": [{"m": _and(base + [compile_cond(rule.cond)])}],
                                        "run": self._judge_action(rule, False)}
            for v, (_, relaxed) in enumerate(missing_variants(rule)):
                definitions[f"j{index}_m{v}"] = {"all": [{"m": _and(base + [compile_cond(relaxed)])}],
                                                 "run": self._judge_action(rule, True)}
        return definitions

    @staticmethod
    def _line_of(c: Any) -> int:
        # A joined match arrives as {"m": line, "d0": derived, ...}; a single one may be the bare fact.
        message = c.m
        return int(message["ln"] if message is not None else c._m["ln"])

    def _derive_action(self, rule: ActiveRule):
        name = rule.revision.derive

        def action(c: Any) -> None:
            session = self._current
            try:
                line = self._line_of(c)
                made = session.derived.setdefault(line, {})
                if name not in made:
                    made[name] = rule.rule_id
                    fact = {"id": f"{session.sid}:d:{line}:{name}", "sid": SESSION,
                            "t": "derived", "name": name, "line": line}
                    c.assert_fact(fact)
                    session.stored.append((self.derive_name, fact))
            except MessageNotHandledException:
                pass
            except Exception as exc:  # recorded, re-raised by the caller: durable would swallow it
                session.errors.append(f"derive rule {rule.rule_id}: {type(exc).__name__}")

        return action

    def _judge_action(self, rule: ActiveRule, missing: bool):
        def action(c: Any) -> None:
            session = self._current
            try:
                session.hits.append(Hit(rule, self._line_of(c), missing))
            except Exception as exc:
                session.errors.append(f"rule {rule.rule_id}: {type(exc).__name__}")

        return action

    @staticmethod
    def _assert(ruleset: str, message: dict, stored: list[tuple[str, dict]]) -> None:
        try:
            _host.assert_fact(ruleset, message)
        except MessageNotHandledException:
            return  # no rule wants this fact: a clean line, and nothing was stored
        stored.append((ruleset, message))

    def run(self, lines: list[dict[str, Any]]) -> tuple[list[Hit], dict[int, dict[str, str]]]:
        """Judge one claim's line facts; returns rule hits and the facts derived per line."""
        with _lock:
            session = _Session(sid=f"c{next(_sessions)}")
            self._current = session
            stored = session.stored
            try:
                flat = [flatten(f) for f in lines]
                if self.derive_name:
                    for message in flat:
                        number = message["line__number"]
                        self._assert(self.derive_name, dict(message, id=f"{session.sid}:l:{number}",
                                                            sid=SESSION, t="line", ln=number), stored)
                if self.judge_name:
                    for message in flat:
                        number = message["line__number"]
                        extra = {f"derived__{key(n)}": 1 for n in session.derived.get(number, {})}
                        self._assert(self.judge_name, dict(message, **extra, id=f"{session.sid}:j:{number}",
                                                           sid=SESSION, t="line", ln=number), stored)
            finally:
                self._current = None
                # Retract what this claim left, so the next claim starts from nothing
                # (delete_state after an unmatched assert corrupts durable_rules' heap).
                for ruleset, message in reversed(stored):
                    _host.retract_fact(ruleset, message)
            if session.errors:
                raise EngineError("; ".join(session.errors))
            return session.hits, session.derived

    def stored_facts(self) -> int:
        """Facts still held between claims (for tests of retraction); always 0 after run()."""
        total = 0
        for name in (self.derive_name, self.judge_name):
            if name:
                try:
                    total += len(_host.get_facts(name, SESSION))
                except Exception:  # no state yet for this ruleset
                    pass
        return total


def _strip_derived(cond: Cond) -> Cond | None:
    """A derive rule's condition without its derived-fact tests (those become joins)."""
    if isinstance(cond, Test):
        return None if cond.field.startswith("derived.") else cond
    if isinstance(cond, AnyOf):
        if any(t.field.startswith("derived.") for t in walk(cond)):
            raise EngineError("derived facts may not be tested inside any: in a derive rule")
        return cond
    kept = [c for c in (_strip_derived(i) for i in cond.items) if c is not None]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else AllOf(tuple(kept))


_compiled: dict[tuple, CompiledRules] = {}


def compiled_for(snapshot: Snapshot) -> CompiledRules:
    """One compiled ruleset per snapshot signature, for the life of the process."""
    signature = snapshot.signature
    with _lock:
        if signature not in _compiled:
            _compiled[signature] = CompiledRules(snapshot)
        return _compiled[signature]
