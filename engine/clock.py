"""The one place that reads the clock.

Every other module takes dates as arguments; tests freeze this with freezegun.
"""

from __future__ import annotations

import datetime as _dt


def now() -> _dt.datetime:
    """The current local time, timezone-aware. The only clock read in payerpolicy."""
    return _dt.datetime.now().astimezone()


def today() -> _dt.date:
    return now().date()
