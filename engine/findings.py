"""Findings: what a rule says about a claim line, and a claim's status from them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class Finding:
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
    fix: dict[str, Any] | None
    source: str
    confidence: str
    effective: dict[str, str | None]
    trace: list[str] = field(default_factory=list)
    missing: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: this runs once per finding of every batch.
        data = {"rule": self.rule, "revision": self.revision, "layer": self.layer, "severity": self.severity,
                "line": self.line, "code": self.code, "carc": self.carc, "group": self.group,
                "rarc": list(self.rarc), "message": self.message,
                "fix": dict(self.fix) if self.fix is not None else None, "source": self.source,
                "confidence": self.confidence, "effective": dict(self.effective), "trace": list(self.trace)}
        if self.missing is not None:
            data["missing"] = list(self.missing)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Finding":
        return cls(**data)


def claim_status(findings: list[Finding], notes: list | None = None) -> str:
    """reject on any error; review on warnings, or on notes about the claim's file (an X12
    validator finding outside what the claim is read from); clean otherwise."""
    severities = {f.severity for f in findings}
    if "error" in severities:
        return "reject"
    if "warning" in severities or notes:
        return "review"
    return "clean"


_TEMPLATE = re.compile(r"\{([a-z_]+(?:\.[a-z0-9_]+)+)\}")


def shown(value: Any) -> str:
    if isinstance(value, (set, frozenset, list, tuple)):
        return ", ".join(sorted(str(v) for v in value)) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def fill(text: str, facts: dict[str, Any]) -> str:
    """Put fact values into a policy message: ``{code.replaced_by}`` and the like."""
    if "{" not in text:
        return text
    return _TEMPLATE.sub(lambda m: shown(facts[m.group(1)]) if m.group(1) in facts else "(not given)", text)


def fill_value(text: str, facts: dict[str, Any]) -> str | None:
    """Like fill, for a value such as a replacement code: None when a named fact is absent."""
    if any(name not in facts for name in _TEMPLATE.findall(text)):
        return None
    return fill(text, facts)


def charges_at_risk(lines, findings) -> tuple[Any, Any]:
    """A claim's billed charges and the part on lines with a denial (an error finding), as Decimals."""
    from .money import ZERO

    denied = {f.line for f in findings if f.severity == "error"}
    charges = [line.charge or ZERO for line in lines]
    return sum(charges, ZERO), sum((c for n, c in enumerate(charges, 1) if n in denied), ZERO)
