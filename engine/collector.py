"""Python's cyclic garbage collector, kept out of the way while a chunk is judged.

Judging allocates many small dicts, lists and tuples that reference counting frees; almost
none of them form cycles. Left to its thresholds, the collector ran about 2,000 times over
20,000 claims, and each full pass walked everything alive, the policy snapshots and compiled
rules included: 2.3-3.0 s of a 16-19 s run (2026-12-01, ``scrub --no-store``, one core).
Paused for the length of a chunk, and with what the first chunk built frozen out of its walks
(the snapshots and compiled rules live as long as the process), it cost 0.6-0.9 s.

Cycles made while paused are still collected: the collector runs as usual once the chunk is
done, and a chunk is bounded (``batch.CHUNK`` claims), so memory stays flat.
"""

from __future__ import annotations

import functools
import gc
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable)

_lock = threading.Lock()
_inside = 0  # chunks being judged now, in any thread of this process
_resume = False  # whether the collector was on when the first of them began
_frozen = False


@contextmanager
def paused() -> Iterator[None]:
    """No collection while the body runs; threads of a service may overlap, so the collector
    comes back on only when the last of them is done, and only if it was on before."""
    global _inside, _resume
    with _lock:
        if _inside == 0:
            _resume = gc.isenabled()
            gc.disable()
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _resume:
                gc.enable()


def freeze_once() -> None:
    """Move everything alive now out of the collector's walks, once per process.

    Called after the first chunk, when the snapshots and compiled rules exist; objects frozen
    are still freed by reference counting, and a cycle among them (there is none by design)
    would only be kept, never misfreed."""
    global _frozen
    with _lock:
        if _frozen:
            return
        _frozen = True
    gc.freeze()


def per_chunk(fn: F) -> F:
    """For a function that judges one chunk (in this process or a worker): the collector paused
    while it runs, and what the first call built frozen out of later walks."""
    @functools.wraps(fn)
    def chunk(*args, **kwargs):
        with paused():
            result = fn(*args, **kwargs)
        freeze_once()
        return result

    return chunk  # type: ignore[return-value]
