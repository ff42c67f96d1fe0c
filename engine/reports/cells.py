"""Values written to CSV files that people open in spreadsheets.

A cell that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by
Excel, LibreOffice and Google Sheets as a formula. Claim ids, patient-supplied text and
messages filled from claim facts come from files we did not write, so such a cell is
written with a leading apostrophe, which spreadsheets show as text (OWASP: CSV injection).
Plain numbers ("-5.00") are left as they are.
"""

from __future__ import annotations

import re
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def row(values: dict[str, Any] | list[Any]) -> Any:
    if isinstance(values, dict):
        return {k: cell(v) for k, v in values.items()}
    return [cell(v) for v in values]
