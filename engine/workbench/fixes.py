"""A finding's structured fix applied to the claim it was found on, so the claim can be judged again.

Only fixes that say exactly what to change are applied: a code to bill instead, modifiers to
add or remove, a line to remove. Fixes that ask for judgement (document, review, add a line
whose code the rule cannot know) are shown as sentences and left to the person.
"""

from __future__ import annotations

import copy
from typing import Any

APPLICABLE = {"replace_code", "add_modifier", "remove_modifier", "remove_line"}


def can_apply(fix: dict[str, Any] | None) -> bool:
    if not fix or fix.get("action") not in APPLICABLE:
        return False
    if fix["action"] == "replace_code":
        return bool(fix.get("to"))
    if fix["action"] in ("add_modifier", "remove_modifier"):
        return bool(fix.get("add_modifiers") or fix.get("remove_modifiers"))
    return True


def apply_fix(claim: dict[str, Any], line: int, fix: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``claim`` with ``fix`` applied to its line ``line`` (1-based)."""
    if not can_apply(fix):
        raise ValueError("this fix is a sentence to act on, not a change that can be applied")
    changed = copy.deepcopy(claim)
    lines = changed.get("lines")
    if not isinstance(lines, list) or not 1 <= line <= len(lines) or not isinstance(lines[line - 1], dict):
        raise ValueError(f"the claim has no line {line}")
    if fix["action"] == "remove_line":
        del lines[line - 1]
        return changed
    target = lines[line - 1]
    if fix.get("to"):
        target["code"] = fix["to"]
    modifiers = [m for m in target.get("modifiers") or [] if m not in set(fix.get("remove_modifiers") or [])]
    for modifier in fix.get("add_modifiers") or []:
        if modifier not in modifiers:
            modifiers.append(modifier)
    target["modifiers"] = modifiers[:4]
    return changed
