"""The garbage collector is paused while a chunk is judged, and only then: a service or a
notebook that embeds the engine gets its collector back as it was, whatever threads overlap."""

import datetime as dt
import gc
import threading
import weakref

import pytest

from engine import collector
from engine.batch import scrub_partition

KNOWN = dt.date(2026, 11, 27)
CLAIM = {"id": "G-1", "payer": "commercial", "service_date": "2024-03-04", "patient": {"id": "P-1"},
         "lines": [{"code": "99213"}]}


@pytest.fixture
def collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_judging_a_chunk_leaves_the_collector_as_it_found_it(policy, collector_on, monkeypatch):
    seen = []
    real = collector.paused

    def watching():
        seen.append("paused")
        return real()

    monkeypatch.setattr(collector, "paused", watching)
    records = scrub_partition([CLAIM, dict(CLAIM, id="G-2")], policy, KNOWN)
    assert [r["result"]["status"] for r in records] == ["clean", "reject"]
    assert seen == ["paused"] and gc.isenabled()

    gc.disable()
    scrub_partition([CLAIM], policy, KNOWN)
    assert not gc.isenabled()  # a caller that turned it off keeps it off


def test_overlapping_chunks_in_threads_turn_it_back_on_only_when_the_last_is_done(collector_on):
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    states = {}

    def first():
        with collector.paused():
            first_in.set()
            second_in.wait(5)
        states["after first"] = gc.isenabled()
        first_out.set()

    def second():
        first_in.wait(5)
        with collector.paused():
            second_in.set()
            first_out.wait(5)
            states["second, first done"] = gc.isenabled()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert states == {"after first": False, "second, first done": False}
    assert gc.isenabled()


def test_a_cycle_made_while_paused_is_collected_afterwards(collector_on):
    class Node:
        pass

    with collector.paused():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()  # an explicit collection still runs; the pause only stops the automatic ones
        assert gone() is None

        c, d = Node(), Node()
        c.other, d.other = d, c
        kept = weakref.ref(c)
        del c, d
        junk = [[] for _ in range(5000)]  # enough new containers to start a collection if it were on
        assert kept() is not None and junk
    gc.collect()
    assert kept() is None


def test_the_first_chunk_freezes_what_it_built_and_no_later_one_does(policy, collector_on, monkeypatch):
    freezes = []
    monkeypatch.setattr(collector, "_frozen", False)
    monkeypatch.setattr(collector.gc, "freeze", lambda: freezes.append(1))
    scrub_partition([CLAIM], policy, KNOWN)
    scrub_partition([dict(CLAIM, id="G-3")], policy, KNOWN)
    assert freezes == [1]
