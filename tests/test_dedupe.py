"""Duplicate deliveries do not count twice; arrival order with seconds of lateness gives the alerts
sorted input gives."""
import random

from distillguard.models import AccountDetector
from distillguard.models.dedupe import DedupeWindow

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
