"""Structural validation of an interchange with pyx12, in plain words and without values.

pyx12 knows 005010X222A1 and 005010X221A1; interchanges carrying the A2 errata header
(005010X222A2) are checked against A1, which differs only in errata.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from dataclasses import dataclass

from .segments import Segment

ELEMENT_REASONS = {
    "1": "a required element is missing", "2": "a conditionally required element is missing",
    "3": "too many elements", "4": "an element is too short", "5": "an element is too long",
    "6": "an element has an invalid character", "7": "an element has a code value that is not allowed",
    "8": "an element has an invalid date", "9": "an element has an invalid time",
    "10": "an element is present where it is not allowed", "12": "an element repeats too often",
    "13": "a composite has too many components",
}
SEGMENT_REASONS = {
    "1": "the segment is not recognized", "2": "the segment is not expected here",
    "3": "a required segment is missing", "4": "a loop occurs too often", "5": "the segment occurs too often",
    "6": "the segment is not defined for this transaction", "7": "the segment is out of order",
    "8": "the segment has element errors",
}


# Envelope errors have their own code tables: the transaction set's (999 IK5-03), the
# functional group's (999 AK9-05) and the interchange's (TA1-05).
TRANSACTION_REASONS = {
    "1": "the transaction set is not supported", "2": "the transaction set trailer (SE) is missing",
    "3": "the control numbers in ST and SE do not match",
    "4": "the segment count in SE does not match the segments in the transaction set",
    "5": "one or more segments are in error", "6": "the transaction set identifier is missing or not valid",
    "7": "the transaction set control number is missing or not valid",
    "23": "the transaction set control number is not unique in its functional group",
}
GROUP_REASONS = {
    "1": "the functional group is not supported", "2": "the functional group version is not supported",
    "3": "the functional group trailer (GE) is missing", "4": "the control numbers in GS and GE do not match",
    "5": "the transaction set count in GE does not match the transaction sets in the group",
    "6": "the group control number is not valid",
    "19": "the group control number is not unique in the interchange",
}
INTERCHANGE_REASONS = {
    "001": "the control numbers in ISA and IEA do not match",
    "021": "the group count in IEA does not match the groups in the interchange",
    "022": "the interchange control structure is not valid", "023": "the file ends before the interchange does",
    "024": "the interchange content is not valid",
}


def _envelope_reason(node: dict, err: dict) -> str | None:
    """An envelope error in its own words, with the counts and control numbers the validator gives
    (they describe the file's structure, never a claim's contents)."""
    code = str(err.get("err_cde", ""))
    for marker, what, table in (("trn_set_id", "transaction set", TRANSACTION_REASONS),
                                ("gs_control_num", "functional group", GROUP_REASONS),
                                ("isa_trn_set_id", "interchange", INTERCHANGE_REASONS)):
        if marker in node:
            detail = str(err.get("err_str") or "")
            return f"{what}: {table.get(code, 'the envelope is not valid')}" + (f" ({detail})" if detail else "")
    return None


@dataclass(frozen=True)
class Problem:
    segment: int | None
    reason: str
    segment_id: str | None = None  # NM1, N4, SV1...: which segment it is in

    def __str__(self) -> str:
        return f"segment {self.segment}: {self.reason}" if self.segment else self.reason


def _normalise(text: str) -> str:
    return text.replace("005010X222A2", "005010X222A1")


_pristine_maps: dict[tuple, bytes] = {}
_map_lock = threading.Lock()


def _install_map_cache() -> None:
    """pyx12 parses its XML maps again for every interchange (0.4 s for the 837's). Keep each
    map as pickled bytes once parsed, and hand every validation a fresh copy from them (0.08 s):
    a map carries state while a file is walked, so copies are never shared."""
    import pickle

    import pyx12.map_if

    if getattr(pyx12.map_if.load_map_file, "_payerpolicy_cached", False):
        return
    load = pyx12.map_if.load_map_file

    def load_map_file(map_file, param, map_path=None):
        key = (map_file, map_path)
        with _map_lock:
            data = _pristine_maps.get(key)
            if data is None:
                data = _pristine_maps[key] = pickle.dumps(load(map_file, param, map_path), pickle.HIGHEST_PROTOCOL)
        return pickle.loads(data)

    load_map_file._payerpolicy_cached = True
    pyx12.map_if.load_map_file = load_map_file


def validate(text: str) -> list[Problem]:
    """Every structural problem pyx12 finds; an empty list means the interchange is valid."""
    return _validate(text, None)


def validate_and_read(text: str) -> tuple[list[Problem], list[Segment] | None]:
    """Validate an interchange and keep its segments as pyx12 read them, in one pass over the
    file, so a reader need not split it again. The segments are None when pyx12 could not read
    the whole interchange (a reader then splits the text itself, and says why it stops)."""
    segments: list[Segment] = []
    failed: list[bool] = []

    def keep(seg, src, node, valid) -> None:
        try:
            component, repetition = seg.subele_term, seg.repetition_term or "^"
            segments.append(Segment(src.get_cur_line(), (seg.get_seg_id() or "").upper(),
                                    tuple(element.format(component) for element in seg.elements),
                                    component, repetition))
        except Exception:  # pyx12 would only log it: the reader splits the text instead
            failed.append(True)

    problems = _validate(text, keep)
    unread = failed or not segments or any(p.segment is None and "could not read" in p.reason for p in problems)
    return problems, None if unread else segments


def _validate(text: str, callback) -> list[Problem]:
    import pyx12.params
    import pyx12.x12n_document

    _install_map_cache()

    logging.getLogger("pyx12").setLevel(logging.CRITICAL)
    report = io.StringIO()
    try:
        ok = pyx12.x12n_document.x12n_document(
            param=pyx12.params.params(), src_file=io.StringIO(_normalise(text)), fd_997=None, fd_html=None,
            fd_xmldoc=None, fd_json=report, callback=callback)
    except Exception as exc:  # pyx12 raises on some malformed input; the file is reported, not fatal
        return [Problem(None, f"the X12 validator could not read the interchange ({type(exc).__name__})")]
    problems = _collect(report.getvalue())
    if not ok and not problems:
        problems.append(Problem(None, "the interchange is not valid X12 (no detail from the validator)"))
    return problems


def _collect(text: str) -> list[Problem]:
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        return [Problem(None, "the X12 validator's report could not be read")]
    found: list[Problem] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            seg = node.get("cur_line")
            for err in node.get("errors", []) or []:
                code = str(err.get("err_cde", ""))
                if "ele_pos" in node:
                    reason = ELEMENT_REASONS.get(code, "an element is not valid")
                    segment_id = node.get("_seg_id") or None
                    where = f"{node.get('_seg_id', '')}{int(node.get('ele_pos') or 0):02d}"
                    reason = f"{where} {node.get('name') or 'element'}: {reason}"
                else:
                    segment_id = node.get("seg_id") or None
                    name = node.get("name") or node.get("seg_id") or "envelope"
                    reason = _envelope_reason(node, err) or f"{name}: {SEGMENT_REASONS.get(code, _masked(err))}"
                found.append(Problem(node.get("_seg", seg), reason, segment_id))
            for key, value in node.items():
                if key == "elements" and isinstance(value, list):
                    for element in value:
                        if isinstance(element, dict):
                            element["_seg"] = seg
                            element["_seg_id"] = node.get("seg_id", "")
                            walk(element)
                elif isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(data)
    return found


def _masked(err: dict) -> str:
    text = str(err.get("err_str", "not valid"))
    value = err.get("err_val")
    return text.replace(str(value), "…") if value else text
