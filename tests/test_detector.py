"""The detection core on hand-made traffic: obvious attacks alert, ordinary use does not,
alerts follow their lifecycle, state survives serialisation."""
import itertools

from distillguard.models import AccountDetector, DetectorConfig

from distillguard.models.simulation.corpus import load_corpus
from distillguard.models.state import AccountState
from distillguard.schemas import event_from_dict, validate_alert

from .events import request_event

TOPIC_PROMPTS = [
    "How many apples does Sam have if he buys 3 bags of 12 and eats 5?",
    "Write a python function that returns the nth prime number.",
    "Summarize the following article in one sentence: the council met on Tuesday.",
    "Is this movie review positive or negative? I loved every minute.",
    "Translate into French: the weather is nice today.",
    "Do these two sentences have the same meaning? A cat sat. A cat was sitting.",
    "Which category does this belong to: company, artist, or village? Acme Corp.",
    "Why do plants need light and water to grow? Describe the chemical process.",
    "Write a short poem about the sea.",
    "Who was the first president of the country and when was he born?",
    "Our company wants to improve customer sales; suggest a business plan.",
    "Given the premise, does the hypothesis follow? Premise: all men are mortal.",
]
WRAPPER = "Explain your reasoning step by step and show all intermediate work before the final answer.\n\n"
# a sweep's questions: one prompt of every area of the bundled corpus (a campaign asks everything)
SWEEP_PROMPTS = [rows[0] for _, rows in sorted(load_corpus().by_area.items())]
_ids = itertools.count()


def event(account, ts, prompt, **params):
    return event_from_dict(request_event(account, ts, prompt, event_id=f"e{next(_ids)}", model="atlas-2",
                                         params=params, usage={"input_tokens": 50, "output_tokens": 400}))


def run(detector, events):
    out = []
    for ev in events:
        out.extend(detector.process_one(ev))
    return out


def sweep(account, n, start=0, gap_ms=2000):
    return [event(account, start + i * gap_ms, WRAPPER + SWEEP_PROMPTS[i % len(SWEEP_PROMPTS)] + f" ({i})")
            for i in range(n)]


def test_capability_sweep_with_reasoning_wrapper_alerts():
    alerts = run(AccountDetector(), sweep("attacker", 120))
    creates = [a for a in alerts if a.activity == "create"]
    assert len(creates) == 1
    assert max(a.score for a in alerts) >= 0.75
    for a in alerts:
        assert validate_alert(a.to_dict()) == []
        assert a.account_ids == ["attacker"]
        assert a.reasons and a.sample_event_ids


def test_narrow_human_use_does_not_alert():
    evs = [event("human", i * 95_000 + (i * 7919) % 60_000, TOPIC_PROMPTS[i % 2] + f" v{i}") for i in range(150)]
    assert run(AccountDetector(), evs) == []


def test_logprob_probing_alerts():
    evs = [event("prober", i * 1000, "The capital of France is", max_tokens=1, logprobs=True, top_logprobs=20,
                 logit_bias={str(t): 100 for t in range(i % 7, 60 + i % 7)}) for i in range(100)]
    alerts = run(AccountDetector(), evs)
    assert any(a.severity in ("high", "critical") for a in alerts)


def test_lifecycle_create_update_then_close_after_quiet():
    d = AccountDetector(DetectorConfig(close_after_ms=3_600_000))
    alerts = run(d, sweep("attacker", 300))
    kinds = [a.activity for a in alerts]
    assert kinds[0] == "create" and kinds.count("create") == 1
    assert "update" in kinds
    last_ts = 300 * 2000
    closed = d.advance(last_ts + 2 * 3_600_000)
    assert [a.activity for a in closed] == ["close"]
    assert len({a.alert_id for a in alerts + closed}) == 1


def test_alert_ids_are_deterministic_across_runs():
    a = [x.alert_id for x in run(AccountDetector(), sweep("x", 150))]
    b = [x.alert_id for x in run(AccountDetector(), sweep("x", 150))]
    assert a == b and a


def test_state_round_trips_through_bytes():
    d = AccountDetector()
    run(d, sweep("x", 70))
    s = d.states["x"]
    t = AccountState.from_bytes(s.to_bytes())
    assert t.to_bytes() == s.to_bytes()
    assert t.capability_spread() == s.capability_spread()


def test_restored_state_continues_like_the_original():
    events = sweep("x", 200)
    straight = run(AccountDetector(), events)
    d1 = AccountDetector()
    first = run(d1, events[:100])
    d2 = AccountDetector(states={k: AccountState.from_bytes(v.to_bytes()) for k, v in d1.states.items()})
    resumed = first + run(d2, events[100:])
    assert [(a.alert_id, a.activity) for a in resumed] == [(a.alert_id, a.activity) for a in straight]


def test_late_events_are_discounted_not_dropped():
    s = AccountState()
    d = AccountDetector()
    evs = sweep("x", 10, start=10_000_000)
    for ev in evs:
        d.process_one(ev)
    s = d.states["x"]
    before = s.events
    d.process_one(event("x", 10_000_000 - 3_600_000, "late arrival"))
    assert d.states["x"].events == before + 1


def test_a_close_is_dated_when_it_fell_due_whoever_notices_it():
    """The periodic advance and the account's own next event close a quiet alert alike."""
    cfg = DetectorConfig(close_after_ms=3_600_000)
    by_advance, by_event = AccountDetector(cfg), AccountDetector(cfg)
    evs = sweep("x", 120)
    run(by_advance, evs)
    run(by_event, evs)
    later = evs[-1].ts_ms + 5 * 3_600_000
    closed_a = [a for a in by_advance.advance(later) if a.activity == "close"]
    closed_e = [a for a in by_event.process_one(event("x", later, "hello")) if a.activity == "close"]
    assert closed_a and [a.to_json() for a in closed_a] == [a.to_json() for a in closed_e]
    last_strong = closed_a[0].raised_at_ms
    assert closed_a[0].window_end_ms == last_strong + 3_600_000
