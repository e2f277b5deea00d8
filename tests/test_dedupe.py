"""Duplicate deliveries do not count twice; arrival order with seconds of lateness gives the alerts
sorted input gives."""
import random

from distillguard.models import AccountDetector
from distillguard.models.dedupe import DedupeWindow
from distillguard.models.state import AccountState

from .test_detector import run, sweep, event, TOPIC_PROMPTS


def test_window_is_bounded_by_time_and_by_count():
    w = DedupeWindow(window_ms=10_000, max_ids=100)
    for i in range(1_000):
        assert not w.seen(f"e{i}", i * 100)
    assert len(w) <= 100
    assert w.evicted_early > 0              # the count bound cut ids before their time was up
    w = DedupeWindow(window_ms=1_000, max_ids=10_000)
    for i in range(1_000):
        w.seen(f"e{i}", i * 100)
    assert len(w) <= 12 and w.evicted_early == 0
    assert w.seen("e999", 99_900) and w.duplicates == 1


def _outcome(alerts):
    return sorted((a.alert_id, a.activity, a.severity) for a in alerts)


def test_duplicate_deliveries_do_not_count_twice():
    evs = sweep("dup", 200)
    once = AccountDetector()
    twice = AccountDetector()
    expected = run(once, evs)
    doubled = [e for ev in evs for e in (ev, ev)]      # every request delivered twice
    assert _outcome(run(twice, doubled)) == _outcome(expected)
    assert twice.states["dup"].events == once.states["dup"].events == 200
    assert twice.dedupe.duplicates == 200


def test_seconds_of_lateness_give_the_same_alerts_as_sorted_input():
    rng = random.Random(3)
    evs = sorted(sweep("a", 300, gap_ms=1500) + sweep("b", 300, start=5_000, gap_ms=2500)
                 + [event("h", i * 40_000, TOPIC_PROMPTS[i % 3] + f" {i}") for i in range(100)],
                 key=lambda e: e.ts_ms)
    # arrival order: every event up to 5 s late
    arrival = sorted(evs, key=lambda e: e.ts_ms + rng.uniform(0, 5_000))
    assert arrival != evs
    assert _outcome(run(AccountDetector(), arrival)) == _outcome(run(AccountDetector(), evs))


def test_a_worker_taking_over_a_partition_skips_the_events_its_restored_states_hold():
    """The changelog may hold states that include events past the committed offset: the worker
    that takes the partition over reads those again and must not fold them in twice (its
    dedupe window is empty: another process saw the ids)."""
    evs = sweep("moved", 300)
    first, whole = AccountDetector(), AccountDetector()
    for offset, ev in enumerate(evs):
        whole.process(ev, position=(5, offset))
        if offset < 200:
            first.process(ev, position=(5, offset))
    restored = {a: AccountState.from_bytes(s.to_bytes()) for a, s in first.states.items()}
    second = AccountDetector(states=restored)
    results = [second.process(ev, position=(5, offset)) for offset, ev in enumerate(evs) if offset >= 150]
    assert results[:50] == [None] * 50 and None not in results[50:]
    assert second.redelivered == 50 and second.dedupe.duplicates == 0
    moved, once = second.states["moved"], whole.states["moved"]
    assert (moved.events, moved.source, moved.offset) == (once.events, 5, 299) == (300, 5, 299)
    assert moved.num == once.num and moved.sketch == once.sketch
    # another source's offsets are not comparable: its events are learned
    assert second.process(event("moved", 700_000, "what is 2+2"), position=(6, 0)) is not None


def test_a_topic_made_anew_under_kept_states_has_its_events_learned_not_skipped():
    """Offsets start from 0 again, below the positions the states keep; the events are newer
    than the states, so they are not taken for ones already held."""
    d = AccountDetector()
    for offset, ev in enumerate(sweep("kept", 50)):
        d.process(ev, position=(0, 10_000 + offset))
    again = sweep("kept", 20, start=d.states["kept"].last_ms + 60_000)
    assert all(d.process(ev, position=(0, offset)) is not None for offset, ev in enumerate(again))
    assert d.redelivered == 0 and d.states["kept"].events == 70 and d.states["kept"].offset == 19


def test_without_positions_nothing_is_skipped_by_offset():
    d = AccountDetector()
    run(d, sweep("p", 50))
    assert d.redelivered == 0 and (d.states["p"].source, d.states["p"].offset) == (-1, -1)
