"""Per-account state: bounded size, exact round trip, late events, idle expiry."""
import orjson

from distillguard.models import AccountDetector
from distillguard.models.features import extract
from distillguard.models.state import C_REQUESTS, H_HOUR, AccountState, state_bytes

from .test_detector import event, run, sweep


def test_busy_account_state_fits_in_2kb():
    d = AccountDetector()
    run(d, sweep("busy", 1500, gap_ms=700))          # alerting: an open alert record and samples too
    s = d.states["busy"]
    assert s.alert is not None and s.samples
    assert state_bytes(s) <= 2048, state_bytes(s)


def test_round_trip_is_exact_and_restored_state_keeps_learning_identically():
    d = AccountDetector()
    run(d, sweep("x", 90))
    s = d.states["x"]
    t = AccountState.from_bytes(s.to_bytes())
    assert t.to_bytes() == s.to_bytes()
    more = sweep("x", 5, start=10_000_000)
    for ev in more:
        for st in (s, t):
            st.learn_one(extract(ev, b"k"))
    assert t.to_bytes() == s.to_bytes()


def test_state_of_an_older_layout_is_relearned_not_a_crash():
    assert AccountState.from_bytes(b"[1, 0, 0]").events == 0


def test_the_input_position_round_trips_and_a_state_written_without_one_loads_with_none():
    d = AccountDetector()
    for offset, ev in enumerate(sweep("x", 20)):
        d.process(ev, position=(2, 40 + offset))
    s = AccountState.from_bytes(d.states["x"].to_bytes())
    assert (s.source, s.offset) == (2, 59) and s.holds(2, 59, s.last_ms) and not s.holds(2, 60, s.last_ms)
    older = orjson.dumps(orjson.loads(d.states["x"].to_bytes())[:12])   # the layout before positions
    t = AccountState.from_bytes(older)
    assert t.events == 20 and (t.source, t.offset) == (-1, -1) and not t.holds(2, 0, t.last_ms)


def test_late_event_counts_but_is_discounted():
    d = AccountDetector()
    run(d, sweep("x", 10, start=10_000_000))
    s = d.states["x"]
    before = s.count(C_REQUESTS, H_HOUR)
    d.process_one(event("x", 10_000_000 - 3_600_000, "late arrival"))
    after = d.states["x"].count(C_REQUESTS, H_HOUR)
    assert d.states["x"].events == 11
    assert 0.2 < after - before < 0.5          # an hour late: weight about e^-1 on the 1 h horizon
    assert d.states["x"].last_ms == s.last_ms  # event time does not go backwards


def test_idle_accounts_expire_but_alerting_ones_stay():
    d = AccountDetector()
    run(d, sweep("attacker", 120))
    run(d, [event("quiet", 1000 + i * 60_000, "hello") for i in range(5)])
    day2 = 60 * 3_600_000
    assert d.expire_idle(day2) == ["quiet"]
    assert "quiet" not in d.states and "attacker" in d.states
    d.advance(day2)                            # closes the attacker's alert after its quiet spell
    assert d.expire_idle(day2) == ["attacker"]
    assert not d.states


def test_an_account_back_after_the_idle_expiry_starts_over_whether_or_not_it_was_freed():
    """Idle expiry is decided by the account's own event times, so it does not matter when (or
    whether) ``expire_idle`` ran: a stream that freed the state and a replay that did not agree."""
    day = 24 * 3_600_000
    first = [event("back", 1000 + i * 60_000, "hello") for i in range(5)]
    again = [event("back", 3 * day + i * 60_000, "hello") for i in range(3)]
    freed, kept = AccountDetector(), AccountDetector()
    run(freed, first)
    run(kept, first)
    assert freed.expire_idle(3 * day - 1) == ["back"]
    run(freed, again)
    run(kept, again)
    assert freed.states["back"].to_bytes() == kept.states["back"].to_bytes()
    assert kept.states["back"].events == 3 and kept.states["back"].first_ms == 3 * day
