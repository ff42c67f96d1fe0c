"""Rules -> findings for one claim: run the compiled rules, then shape what fired."""

from __future__ import annotations

from typing import Any

from .chaining import Hit, compiled_for
from .claims import Claim
from .facts import DERIVED_FROM, claim_facts, line_facts
from .findings import SEVERITY_ORDER, Finding, fill, fill_value, shown
from .history import History
from .policy.fields import FIELDS
from .policy.snapshot import ActiveRule, Snapshot


def _trace(rule: ActiveRule, facts: dict[str, Any], derived: dict[str, str]) -> list[str]:
    lines = [f"line {facts['line.number']} code {facts['line.code']} on {shown(facts['line.service_date'])}"]
    for name in rule.fields:
        if name in ("line.code", "line.number", "line.service_date"):
            continue
        if name.startswith("derived."):
            fact = name[8:]
            lines.append(f"derived {fact} (rule {derived[fact]})" if fact in derived else f"no {fact} derived")
        elif name in facts:
            source = facts.get(DERIVED_FROM, {}).get(name)
            lines.append(f"{name} = {shown(facts[name])}" + (f" (from {source})" if source else ""))
        else:
            lines.append(f"{name} not given")
    lines.append(rule.reading)
    return lines


def _missing_inputs(rule: ActiveRule, facts: dict[str, Any]) -> list[str]:
    missing = []
    for name in rule.fields:
        spec = FIELDS.get(name)
        if spec and spec.input and name not in facts and spec.input not in missing:
            missing.append(spec.input)
    return missing


def _finding(hit: Hit, facts: dict[str, Any], derived: dict[str, str]) -> Finding:
    rule = hit.rule
    rev = rule.revision
    then = rev.then
    common = dict(rule=rule.rule_id, revision=rule.revision_name, layer=rev.layer, line=hit.line,
                  code=facts["line.code"], source=rev.source, confidence=rev.confidence,
                  effective=dict(rule.effective), trace=_trace(rule, facts, derived))
    if hit.missing:
        missing = _missing_inputs(rule, facts)
        return Finding(**common, severity="warning", carc=None, group=None, rarc=[],
                       message=f"Could not check '{rev.title}': the claim does not give {', '.join(missing)}.",
                       fix={"action": "document", "to": None, "add_modifiers": [], "remove_modifiers": [],
                            "text": f"Add {', '.join(missing)} to the claim so this rule can be decided."},
                       missing=missing)
    fix = None
    if rule.fix is not None:
        fix = dict(rule.fix, add_modifiers=list(rule.fix["add_modifiers"]),
                   remove_modifiers=list(rule.fix["remove_modifiers"]))
        fix["text"] = fill(fix["text"], facts)
        if fix["to"]:
            fix["to"] = fill_value(fix["to"], facts)
    return Finding(**common, severity=rule.severity, carc=then.carc, group=then.group, rarc=list(then.rarc),
                   message=fill(then.message, facts), fix=fix)


def judge_claim(claim: Claim, snapshot: Snapshot, history: History | None, position: int = 0) -> list[Finding]:
    compiled = compiled_for(snapshot)
    shared = claim_facts(claim, snapshot)
    facts = [line_facts(claim, n, line, shared, snapshot, history, position)
             for n, line in enumerate(claim.lines, 1)]
    hits, derived = compiled.run(facts)
    by_line = {f["line.number"]: f for f in facts}
    findings: dict[tuple[str, int], Finding] = {}
    for hit in hits:
        k = (hit.rule.rule_id, hit.line)
        if k in findings and not findings[k].missing:
            continue
        findings[k] = _finding(hit, by_line[hit.line], derived.get(hit.line, {}))
    supersedes = snapshot.supersedes
    superseded = {(target, f.line) for f in findings.values() if not f.missing for target in supersedes[f.rule]}
    kept = [f for k, f in findings.items() if k not in superseded]
    kept.sort(key=lambda f: (f.line, SEVERITY_ORDER[f.severity], f.rule))
    return kept
