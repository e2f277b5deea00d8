"""Per-event features and the account features built on them."""
from distillguard.models import AccountDetector
from distillguard.models.features import extract
from distillguard.models.scoring import account_features
from distillguard.schemas import event_from_dict

from .events import request_event

KEY = b"k"


def ev(prompt, system=None, history=(), **params):
    return event_from_dict(request_event("a", 1, prompt, system=system, history=history, event_id="e",
                                         params=params, access_tier="pro", account_created_ms=0))


def test_reasoning_elicitation_survives_paraphrase():
    for wrapper in ("Explain your reasoning step by step.", "Lay out each step of your thinking first.",
                    "Walk me through your complete thought process before you answer.",
                    "Show all the intermediate work, then answer."):
        assert extract(ev(f"{wrapper} What is 17 * 3?"), KEY).reasoning, wrapper
    assert not extract(ev("What is the capital of France?"), KEY).reasoning


def test_reasoning_needs_room_for_a_trace():
    assert not extract(ev("Explain your reasoning step by step: 2+2?", max_tokens=15), KEY).reasoning
    assert extract(ev("Explain your reasoning step by step: 2+2?", max_tokens=1024), KEY).reasoning


def test_standalone_means_no_conversation_and_no_system_prompt():
    assert extract(ev("hi"), KEY).fresh
    assert not extract(ev("hi", system="You are a bot."), KEY).fresh
    assert not extract(ev("and then?", history=[{"role": "user", "content": "hi"},
                                                {"role": "assistant", "content": "hello"}]), KEY).fresh


def test_probing_and_harvest_flags():
    f = extract(ev("The capital of France is", max_tokens=1, logprobs=True, top_logprobs=5,
                   logit_bias={"1": 100, "2": -100}), KEY)
    assert f.logprob_probe and f.logit_bias_size == 2 and not f.long_output
    assert extract(ev("Write an essay", max_tokens=8192), KEY).long_output


def test_features_carry_no_text():
    f = extract(ev("My secret project codename is BLUEFALCON"), KEY)
    assert "BLUEFALCON" not in repr(f) and "bluefalcon" not in repr(f)


def test_account_features_are_finite_and_in_a_fixed_order():
    d = AccountDetector()
    for i in range(40):
        d.process_one(event_from_dict({"schema_version": "1", "event_id": f"e{i}", "ts_ms": i * 1000,
                                       "account_id": "a", "model": "m", "operation": "chat",
                                       "messages": [{"role": "user", "content": f"question {i}"}],
                                       "params": {}}))
    x = account_features(d.states["a"])
    assert list(x) == list(account_features(d.states["a"]))
    assert all(v == v and abs(v) < 1e9 for v in x.values())
    assert 0.0 <= x["standalone_share"] <= 1.0 and x["requests_day"] > 30
