"""Forward chaining on durable_rules. The only module that imports durable_rules.

A snapshot compiles into two rulesets, cached by the snapshot's signature:
``derive`` rules (which may chain on each other's facts through joins) and
``judge`` rules (which see each line together with every fact derived for it).
Two stages keep negation sound: a judge rule may ask that a fact was *not*
derived, and by then derivation is complete.

The rules run on durable_rules' C engine (its ``durable_rules_engine`` extension),
driven here directly: assert a fact, then take each action the assert made ready,
record it, and complete it, in one tight loop. durable_rules' own ``Host`` does the
same through a JSON round trip, a closure object and a promise per action and an
exception per unmatched fact; it is kept as ``HostRules``, the reference the lean
driver is tested against (same hits on every policy case and on generated claims).

The known edges of durable_rules and how this module meets them:
- events are consumed by the first matching rule: lines are asserted as facts;
- a fact no rule matches is "not handled" (the Host raises MessageNotHandledException):
  a clean line is not an error, and nothing was stored for it;
- a re-asserted fact id is "observed" (MessageObservedException): every fact id carries
  a per-claim session id that is never reused, and each derived fact is asserted once;
- postponed actions run on a background thread: no dispatch thread is ever started,
  every action runs inside the assert that made it ready, and nothing is batched;
- a fact asserted from inside an action (a derived fact) only queues its own actions:
  the state is leased while an action runs, and completing the action hands over the next;
- state kept between claims costs memory: all claims share one session, and every
  fact a claim stored is retracted after it (delete_state after an unmatched assert
  was seen to corrupt the heap, so it is never called);
- `-m.x.anyItem` means "x absent" and allItems fails on []: sets are flattened to
  one flag per member plus a count, and absence is tested with $nex explicitly;
- dynamic rulesets leak: one ruleset per snapshot signature, reused;
- exceptions inside actions are swallowed by the Host: actions only record, and any
  error is re-raised after the assert returns, without claim data.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import durable_rules_engine as _engine
import orjson

from .policy.fields import FIELDS, AllOf, AnyOf, Cond, FieldRef, Test, field_spec, walk
from .policy.snapshot import ActiveRule, Snapshot


class EngineError(Exception):
    """The rules engine failed; the message never carries claim data."""


_lock = threading.RLock()
_names = itertools.count(1)
_sessions = itertools.count(1)
# One durable_rules session for all claims: a session per claim costs memory unless
# deleted, and deleting one is unsafe (see run). Fact ids carry a per-claim prefix.
SESSION = "payerpolicy"

# Result codes of the C engine's assert and retract.
_OK, _NOT_HANDLED, _OBSERVED, _DEFERRED = 0, 1, 2, 3


@lru_cache(maxsize=None)
def key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name.replace(".", "__"))


@lru_cache(maxsize=None)
def _member_key(prefix: str, member: str) -> str:
    return prefix + "__" + key(member)


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
                out[_member_key(k, str(member))] = 1
        elif isinstance(value, dt.date):
            out[k] = value.year * 10000 + value.month * 100 + value.day
        else:
            out[k] = value
    return out

_ALWAYS = frozenset({"id", "sid", "t", "ln", "line__number"})


def keys_in(definitions: dict) -> frozenset[str]:
    """Every message key a ruleset's conditions can read: a fact no condition reads is not sent."""
    found = set(_ALWAYS)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                found.add(k)
                if k == "$m" and isinstance(v, str):
                    found.add(v)
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(definitions)
    return frozenset(found)


@lru_cache(maxsize=None)
def _count_key(k: str) -> str:
    return k + "__n"


_MISSING = object()


class MessageShape:
    """How named facts become one ruleset's messages: only the keys its conditions read.

    The vocabulary (``FIELDS``) is walked once per ruleset to list the fact names it
    reads, with their keys; a line then costs one lookup per name read.
    """

    def __init__(self, keys: frozenset[str]):
        self.keys = keys
        self.scalars: list[tuple[str, str, bool]] = []
        self.sets: list[tuple[str, str, str | None]] = []
        self._members: dict[tuple[str, Any], str | None] = {}
        for name, spec in FIELDS.items():
            k = key(name)
            if spec.kind == "set":
                n = _count_key(k)
                if n in keys or any(x.startswith(k + "__") for x in keys):
                    self.sets.append((name, k, n if n in keys else None))
            elif k in keys:
                self.scalars.append((name, k, spec.kind == "date"))
        self.vocabulary = frozenset(FIELDS)

    def flatten(self, facts: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        get = facts.get
        for name, k, is_date in self.scalars:
            value = get(name, _MISSING)
            if value is not _MISSING:
                out[k] = value.year * 10000 + value.month * 100 + value.day if is_date else value
        members = self._members
        for name, k, n in self.sets:
            value = get(name)
            if value is None:
                continue
            if n is not None:
                out[n] = len(value)
            for member in value:
                m = members.get((k, member), _MISSING)
                if m is _MISSING:
                    m = _member_key(k, str(member))
                    m = members[(k, member)] = m if m in self.keys else None
                if m is not None:
                    out[m] = 1
        extra = facts.keys() - self.vocabulary
        if extra:  # a fact outside the vocabulary: flattened the general way
            general = flatten({name: facts[name] for name in extra})
            out.update((k, v) for k, v in general.items() if k in self.keys)
        return out


def _simple(t: Cond) -> bool:
    return (isinstance(t, Test) and t.op in ("eq", "in", "has", "has_any")
            and all(isinstance(v, str) for v in (t.value if isinstance(t.value, tuple) else (t.value,))))


def _holds(t: Test, facts: dict[str, Any]) -> bool:
    """A simple test on our named facts, exactly as the compiled condition reads it."""
    if t.field not in facts:
        return False
    value = facts[t.field]
    if t.op == "eq":
        return value == t.value
    if t.op == "in":
        return value in t.value
    if not isinstance(value, (set, frozenset)):
        return False
    members = {key(str(m)) for m in value}
    wanted = [key(v) for v in t.value]
    return all(w in members for w in wanted) if t.op == "has" else any(w in members for w in wanted)


def _gate(rule: ActiveRule):
    """A cheap necessary condition for a derive rule that needs no derived fact: False means it cannot fire."""
    eff = rule.revision.effective
    own = rule.cond
    tops = list(own.items) if isinstance(own, AllOf) else [own]
    simple = [t for t in tops if _simple(t)]
    alternatives = [a.items for a in tops if isinstance(a, AnyOf) and all(_simple(i) for i in a.items)]

    def may_fire(facts: dict[str, Any]) -> bool:
        day = facts.get("line.service_date")
        if day is not None and (day < eff.from_ or (eff.to is not None and day > eff.to)):
            return False
        return all(_holds(t, facts) for t in simple) and all(any(_holds(i, facts) for i in alt)
                                                              for alt in alternatives)

    return may_fire


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
    groups = [c for c in rule.cond.items if isinstance(c, AnyOf)] if isinstance(rule.cond, AllOf) else []
    inputs: list[str] = []
    for t in tops:
        inp = _input(t.field)
        if inp and inp not in inputs:
            anchored = FIELDS[t.field].self_anchored if t.field in FIELDS else False
            anchored = anchored or any(o.op in _ANCHORS and _input(o.field) != inp for o in tops)
            # An any: group that does not turn on this input also says what the rule is about.
            anchored = anchored or any(inp not in {_input(x.field) for x in walk(g)} for g in groups)
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
    stored: list[tuple[int, bytes]] = field(default_factory=list)  # (ruleset handle, message) to retract


@dataclass(frozen=True)
class _Derive:
    rule: ActiveRule
    name: str


@dataclass(frozen=True)
class _Judge:
    rule: ActiveRule
    missing: bool


class _Definitions:
    """A snapshot's rules as durable_rules definitions, each rule name tied to what it records."""

    def __init__(self, snapshot: Snapshot):
        derive_rules = [r for r in snapshot.rules if r.revision.derive]
        judge_rules = [r for r in snapshot.rules if r.revision.then]
        self.rule_count = len(snapshot.rules)
        # Only rules that need no derived fact can start a derivation: if none of them can
        # fire on a line, the line need not be asserted into the derive ruleset at all.
        self.derive_gates = [_gate(r) for r in derive_rules
                             if not any(t.field.startswith("derived.") for t in walk(r.cond))]
        self.derive: dict[str, dict] = {}
        self.judge: dict[str, dict] = {}
        self.actions: dict[str, _Derive | _Judge] = {}
        for index, rule in enumerate(derive_rules):
            joins = [t.field[8:] for t in walk(rule.cond) if t.field.startswith("derived.")]
            own = _strip_derived(rule.cond)
            line_parts = [{"t": "line"}] + _window(rule) + ([compile_cond(own)] if own is not None else [])
            patterns = [{"m": _and(line_parts)}]
            for j, name in enumerate(joins):
                patterns.append({f"d{j}": {"$and": [{"t": "derived"}, {"name": name}, {"line": {"m": "ln"}}]}})
            self.derive[f"d{index}"] = {"all": patterns}
            self.actions[f"d{index}"] = _Derive(rule, rule.revision.derive)
        for index, rule in enumerate(judge_rules):
            base = [{"t": "line"}] + _window(rule)
            self.judge[f"j{index}"] = {"all": [{"m": _and(base + [compile_cond(rule.cond)])}]}
            self.actions[f"j{index}"] = _Judge(rule, False)
            for v, (_, relaxed) in enumerate(missing_variants(rule)):
                self.judge[f"j{index}_m{v}"] = {"all": [{"m": _and(base + [compile_cond(relaxed)])}]}
                self.actions[f"j{index}_m{v}"] = _Judge(rule, True)


_LN = re.compile(r'"ln":(\d+)')


def _note(session: _Session, what: _Derive | _Judge, line: int) -> dict[str, Any] | None:
    """Record what an action found; a derivation returns its fact to assert (once per line and name)."""
    if isinstance(what, _Judge):
        session.hits.append(Hit(what.rule, line, what.missing))
        return None
    made = session.derived.setdefault(line, {})
    if what.name in made:
        return None
    made[what.name] = what.rule.rule_id
    return {"id": f"{session.sid}:d:{line}:{what.name}", "sid": SESSION, "t": "derived", "name": what.name,
            "line": line}


def _line_of(message: dict) -> int:
    # A joined match arrives as {"m": line, "d0": derived, ...}; a single one may be the bare fact.
    inner = message.get("m")
    return int((inner if isinstance(inner, dict) else message)["ln"])


def _line_messages(flat: list[dict[str, Any]], sid: str, stage: str,
                   derived: dict[int, dict[str, str]] | None) -> list[dict[str, Any]]:
    out = []
    for message in flat:
        number = message["line__number"]
        extra = {f"derived__{key(n)}": 1 for n in derived.get(number, {})} if derived is not None else {}
        out.append(dict(message, **extra, id=f"{sid}:{stage}:{number}", sid=SESSION, t="line", ln=number))
    return out


class CompiledRules:
    """A snapshot's rules on the C engine, driven directly (see the module docstring)."""

    def __init__(self, snapshot: Snapshot):
        self._defs = _Definitions(snapshot)
        self.rule_count = self._defs.rule_count
        self._actions = self._defs.actions
        self._gates = self._defs.derive_gates
        self._derive_shape = MessageShape(keys_in(self._defs.derive))
        self._judge_shape = MessageShape(keys_in(self._defs.judge))
        self.derive_handle = self._create("derive", self._defs.derive) if self._defs.derive else None
        self.judge_handle = self._create("judge", self._defs.judge) if self._defs.judge else None

    @staticmethod
    def _create(kind: str, definitions: dict) -> int:
        return _engine.create_ruleset(f"pp_{kind}_{next(_names)}", orjson.dumps(definitions).decode())

    def _record(self, session: _Session, handle: int, action: str, message: str) -> None:
        what = self._actions[action]
        try:
            fact = _note(session, what, int(_LN.search(message).group(1)))
            if fact is not None:
                # Inside an action the state is leased: this only queues the joins it completes.
                self._assert(session, handle, orjson.dumps(fact), drain=False)
        except Exception as exc:  # recorded and re-raised by run(), never with claim data
            session.errors.append(f"rule {what.rule.rule_id}: {type(exc).__name__}")

    def _assert(self, session: _Session, handle: int, message: bytes, drain: bool = True) -> None:
        code, state = _engine.assert_fact(handle, message.decode())
        if code == _NOT_HANDLED:
            return  # no rule wants this fact: a clean line, and nothing was stored
        if code == _OBSERVED:
            raise EngineError("a fact id was asserted twice")
        session.stored.append((handle, message))
        if drain:
            self._drain(session, handle, state)

    def _drain(self, session: _Session, handle: int, state: int) -> None:
        ready = _engine.start_action_for_state(handle, state)
        if not ready:
            return
        messages = ready[1]
        while messages:
            try:
                # One action per message, serialised by the engine as {"<action>": {"m": {... "ln": N ...}}}:
                # the action name and the line number are all we need, so the fact is not decoded.
                action = messages[2:messages.index('"', 2)]
                self._record(session, handle, action, messages)
            finally:
                # Always completed: an action left open leases the shared state for minutes.
                messages = _engine.complete_and_start_action(handle, state)

    def run(self, lines: list[dict[str, Any]]) -> tuple[list[Hit], dict[int, dict[str, str]]]:
        """Judge one claim's line facts; returns rule hits and the facts derived per line."""
        with _lock:
            session = _Session(sid=f"c{next(_sessions)}")
            try:
                if self.derive_handle is not None:
                    gates = self._gates
                    flat = [self._derive_shape.flatten(f) for f in lines
                            if any(may_fire(f) for may_fire in gates)]
                    for message in _line_messages(flat, session.sid, "l", None):
                        self._assert(session, self.derive_handle, orjson.dumps(message))
                if self.judge_handle is not None:
                    flat = [self._judge_shape.flatten(f) for f in lines]
                    for message in _line_messages(flat, session.sid, "j", session.derived):
                        self._assert(session, self.judge_handle, orjson.dumps(message))
            finally:
                # Retract what this claim left, so the next claim starts from nothing
                # (delete_state after an unmatched assert corrupts durable_rules' heap).
                for handle, message in reversed(session.stored):
                    _engine.retract_fact(handle, message.decode())
            if session.errors:
                raise EngineError("; ".join(session.errors))
            return session.hits, session.derived

    def stored_facts(self) -> int:
        """Facts still held between claims (for tests of retraction); always 0 after run()."""
        total = 0
        for handle in (self.derive_handle, self.judge_handle):
            if handle is not None:
                try:
                    total += len(orjson.loads(_engine.get_facts(handle, SESSION)))
                except Exception:  # no state yet for this ruleset
                    pass
        return total


class HostRules:
    """The same rules through durable_rules' own Host: the reference the lean driver is tested against.

    Slow (a JSON round trip, a closure and a promise per action, an exception per
    unmatched fact); nothing but the equivalence tests uses it.
    """

    def __init__(self, snapshot: Snapshot):
        from durable.engine import Host, MessageNotHandledException

        class _SyncHost(Host):
            def _run(self) -> None:  # no background dispatch thread: actions run inline
                return None

        self._not_handled = MessageNotHandledException
        self._host = _SyncHost()
        self._current: _Session | None = None
        defs = _Definitions(snapshot)
        self.rule_count = defs.rule_count
        self.derive_name = self._register("derive", defs.derive, defs.actions) if defs.derive else None
        self.judge_name = self._register("judge", defs.judge, defs.actions) if defs.judge else None

    def _register(self, kind: str, definitions: dict, actions: dict) -> str:
        name = f"pp_host_{kind}_{next(_names)}"
        self._host.register_rulesets({name: {rule: dict(d, run=self._action(actions[rule]))
                                             for rule, d in definitions.items()}})
        return name

    def _action(self, what: _Derive | _Judge):
        def action(c: Any) -> None:
            session = self._current
            message = c._m if c._m is not None else {"m": c.m._d}
            try:
                fact = _note(session, what, _line_of(message))
                if fact is not None:
                    try:
                        c.assert_fact(fact)
                        session.stored.append((self.derive_name, fact))
                    except self._not_handled:
                        pass
            except Exception as exc:
                session.errors.append(f"rule {what.rule.rule_id}: {type(exc).__name__}")

        return action

    def _assert(self, ruleset: str, message: dict, stored: list) -> None:
        try:
            self._host.assert_fact(ruleset, message)
        except self._not_handled:
            return
        stored.append((ruleset, message))

    def run(self, lines: list[dict[str, Any]]) -> tuple[list[Hit], dict[int, dict[str, str]]]:
        with _lock:
            session = _Session(sid=f"h{next(_sessions)}")
            self._current = session
            try:
                flat = [flatten(f) for f in lines]
                if self.derive_name:
                    for message in _line_messages(flat, session.sid, "l", None):
                        self._assert(self.derive_name, message, session.stored)
                if self.judge_name:
                    for message in _line_messages(flat, session.sid, "j", session.derived):
                        self._assert(self.judge_name, message, session.stored)
            finally:
                self._current = None
                for ruleset, message in reversed(session.stored):
                    self._host.retract_fact(ruleset, message)
            if session.errors:
                raise EngineError("; ".join(session.errors))
            return session.hits, session.derived


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
    compiled = _compiled.get(signature)
    if compiled is None:
        with _lock:
            if signature not in _compiled:
                _compiled[signature] = CompiledRules(snapshot)
            compiled = _compiled[signature]
    return compiled
