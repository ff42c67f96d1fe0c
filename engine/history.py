"""A patient's earlier services, for duplicate and frequency rules.

History is keyed by the patient id the claim gives and holds only what the rules
need: date (and the days a date range spans), code, code family, units, and whether the
service was furnished in person. Services on earlier dates always count; on the same date
only those that came first (stored history, then batch order, then line order) do, so of two
identical lines the second is the duplicate. A line with a date range shares a day with an
earlier service that covers its first day, and with a service billed before it on a later
day inside its range.
"""

from __future__ import annotations

import datetime as dt
from bisect import insort
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, NamedTuple


NEVER = 99_999


class Service(NamedTuple):
    """One earlier service; ordered by date, then by when it was seen (seq). ``days`` is how many
    days it spans from ``day`` (a line with a date range, X12 RD8), 1 for a single date."""

    day: dt.date
    seq: tuple[int, int]
    code: str
    family: str | None
    in_person: bool = True
    units: int = 1
    days: int = 1

    def covers(self, day: dt.date) -> bool:
        return self.day == day or (self.days > 1 and self.day <= day < self.day + dt.timedelta(days=self.days))

    def units_a_day(self) -> int:
        # A range's units are spread over its days (rounded up): a 30-day supply is not 30 units on each day.
        return self.units if self.days == 1 else -(-self.units // self.days)


# What marks a line as furnished remotely, on any claim: the telehealth places of service
# (POS 02, 10) and modifiers (95, GT, GQ, 93, FQ) the code sets define, or the encounter's own
# modality. The policy's derive rules say the same; history needs it before any rule runs.
REMOTE_POS = frozenset({"02", "10"})
REMOTE_MODIFIERS = frozenset({"95", "GT", "GQ", "93", "FQ"})
REMOTE_MODALITIES = frozenset({"video", "audio-only", "portal", "remote-monitoring"})


def in_person(claim, line) -> bool:
    """Whether a claim line was furnished face to face, as far as the claim shows."""
    if claim.line_pos(line) in REMOTE_POS or REMOTE_MODIFIERS.intersection(line.modifiers):
        return False
    return not (claim.encounter and claim.encounter.modality in REMOTE_MODALITIES)


@lru_cache(maxsize=8192)
def _day_of(ordinal: int) -> dt.date:
    return dt.date.fromordinal(ordinal)


@dataclass
class History:
    _by_patient: dict[str, list[Service]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple]) -> "History":
        """A History from (patient, day ordinal, seq1, seq2, code, family, in person, units, days) rows,
        in any order."""
        by_patient: dict[str, list[Service]] = {}
        for patient, day, first, second, code, family, face_to_face, units, days in rows:
            services = by_patient.get(patient)
            if services is None:
                services = by_patient[patient] = []
            services.append(Service(_day_of(day), (first, second), code, family, bool(face_to_face), units or 1,
                                    days or 1))
        for services in by_patient.values():
            services.sort()
        return cls(by_patient)

    def add(self, patient: str, service: Service) -> None:
        insort(self._by_patient.setdefault(patient, []), service)

    def counts(self, patient: str, seq: tuple[int, int], day: dt.date, code: str,
               family: str | None, days: int = 1) -> dict[str, int]:
        """What the rules count for a line on ``day`` (spanning ``days`` days): "same day" is any
        day the line and an earlier service both cover; months, years and "days since" go by
        the first day of each."""
        same_day = same_day_units = month = year = family_day = family_month = family_year = 0
        last: dt.date | None = None
        last_any = last_in_person = last_remote = None
        end = day + dt.timedelta(days=days - 1)
        for s in self._by_patient.get(patient, ()):
            if s.day > day:
                if s.day > end:
                    break
                if s.seq >= seq:
                    continue  # billed after this line: when it is judged, this range is its earlier service
                # billed before, on a later day inside this line's range: it shares a day, and nothing else
                same_day += s.code == code
                same_day_units += s.units_a_day() if s.code == code else 0
                family_day += bool(family) and s.family == family
                continue
            if s.day < day:
                last_any = s.day
            if s.day == day and s.seq >= seq:
                continue
            if s.in_person:
                last_in_person = s.day
            else:
                last_remote = s.day
            shares_day = s.covers(day)  # it starts on or before this line's first day
            if s.code == code:
                same_day += shares_day
                same_day_units += s.units_a_day() if shares_day else 0
                month += (s.day.year, s.day.month) == (day.year, day.month)
                year += s.day.year == day.year
                last = s.day
            if family and s.family == family and s.day.year == day.year:
                family_year += 1
                family_month += s.day.month == day.month
                family_day += shares_day
        result = {
            "history.same_code_same_day": same_day,
            "history.same_code_units_same_day": same_day_units,
            "history.same_code_this_month": month,
            "history.same_code_this_year": year,
            "history.same_family_same_day": family_day,
            "history.same_family_this_month": family_month,
            "history.same_family_this_year": family_year,
        }
        # "Never" is a very long time, not a missing fact: the patient's history is known.
        result["history.days_since_same_code"] = (day - last).days if last is not None else NEVER
        result["history.days_since_any_service"] = (day - last_any).days if last_any is not None else NEVER
        result["history.days_since_in_person"] = (day - last_in_person).days if last_in_person else NEVER
        result["history.days_since_remote"] = (day - last_remote).days if last_remote else NEVER
        return result
