"""Split an X12 interchange into segments, using the delimiters its ISA declares.

Never raises on content: a document that cannot be split says why, with the segment
number, and nothing in it is echoed (X12 carries patient data).
"""

from __future__ import annotations

from dataclasses import dataclass


class X12Error(Exception):
    def __init__(self, segment: int, reason: str):
        super().__init__(f"segment {segment}: {reason}")
        self.segment = segment
        self.reason = reason


@dataclass(frozen=True)
class Segment:
    number: int  # 1-based position in the interchange, ISA included
    id: str
    elements: tuple[str, ...]  # elements[0] is the first element after the segment id
    component: str
    repetition: str

    def get(self, position: int, default: str = "") -> str:
        """Element by its X12 position (CLM01 is get(1))."""
        return self.elements[position - 1] if 0 < position <= len(self.elements) else default

    def components(self, position: int) -> list[str]:
        value = self.get(position)
        return value.split(self.component) if value else []


MAX_SEGMENTS = 2_000_000


def split(text: str) -> list[Segment]:
    text = text.lstrip("\ufeff \r\n\t")
    if not text.startswith("ISA") or len(text) < 106:
        raise X12Error(1, "the file does not start with an ISA interchange header")
    element = text[3]
    terminator = text[105]
    component = text[104]
    repetition = text[82] if text[82] not in (element, component, terminator) and not text[82].isalnum() else "^"
    if element.isalnum() or terminator.isalnum() or len({element, terminator, component}) < 3:
        raise X12Error(1, "the ISA header does not declare usable delimiters")
    segments: list[Segment] = []
    for number, raw in enumerate(text.split(terminator), 1):
        raw = raw.strip("\r\n\t ")
        if not raw:
            continue
        if number > MAX_SEGMENTS:
            raise X12Error(number, "too many segments")
        parts = raw.split(element)
        seg_id = parts[0].strip()
        if not (2 <= len(seg_id) <= 3 and seg_id.isalnum()):
            raise X12Error(len(segments) + 1, "a segment does not start with a segment id")
        segments.append(Segment(len(segments) + 1, seg_id.upper(), tuple(parts[1:]), component, repetition))
    return segments
