"""Enforcement decisions (models/enforcement.py): alert events -> policies -> per-request decisions."""
from distillguard.models.enforcement import Caller, EnforcementConfig, PolicyBook, degrade


def alert(alert_id="a1", activity="create", action="block", accounts=("acme",), **extra) -> dict:
    return {"schema_version": "1", "alert_id": alert_id, "activity": activity, "account_ids": list(accounts),
            "recommended_action": action, "severity": "high", **extra}


def test_block_and_step_up_refuse_with_clear_messages():
    book = PolicyBook()
    book.apply(alert("a1", action="step_up_verification"))
    d = book.decide(Caller("acme"), 0)
    assert d.status == 403 and "identity verification" in d.message and "a1" in d.message
    book.apply(alert("a2", action="block"))           # strictest open alert wins
    d = book.decide(Caller("acme"), 0)
    assert d.status == 403 and "blocked" in d.message and d.alert_ids == ("a1", "a2")
    assert book.decide(Caller("other"), 0).allowed


def test_close_lifts_and_update_replaces():
    book = PolicyBook()
    book.apply(alert("a1", action="monitor"))
    assert book.decide(Caller("acme"), 0).allowed
    book.apply(alert("a1", activity="update", action="block"))
    assert book.decide(Caller("acme"), 0).status == 403
    book.apply({"alert_id": "a1", "activity": "close", "account_ids": ["acme"]})
    assert book.decide(Caller("acme"), 0).allowed and not book.policies


def test_throttle_is_a_token_bucket_with_retry_after():
    book = PolicyBook(EnforcementConfig(throttle_per_minute=2))
    book.apply(alert(action="throttle"))
    assert [book.decide(Caller("acme"), 0).status for _ in range(3)] == [None, None, 429]
    d = book.decide(Caller("acme"), 1000)
    assert d.status == 429 and d.retry_after_s == 29 and "retry after 29s" in d.message
    assert book.decide(Caller("acme"), 30_000).allowed       # one request's worth refilled


def test_cluster_alert_covers_every_member():
    book = PolicyBook()
    book.apply(alert("c1", accounts=("h1", "h2", "h3"), cluster_id="k1"))
    assert all(book.decide(Caller(a), 0).status == 403 for a in ("h1", "h2", "h3"))


def test_protections_degrade_instead_of_refusing():
    book = PolicyBook(EnforcementConfig(output_token_cap=100))
    book.apply(alert(action="monitor", protections=["disable_logprobs", "cap_output_tokens", "summarize_reasoning"]))
    d = book.decide(Caller("acme"), 0)
    assert d.allowed and d.degraded and d.output_token_cap == 100
    body, changes = degrade({"model": "m", "logprobs": True, "top_logprobs": 5, "logit_bias": {"1": 2},
                             "max_tokens": 4000, "max_completion_tokens": 50}, d)
    assert body == {"model": "m", "max_tokens": 100, "max_completion_tokens": 50}
    assert "removed logprobs" in changes and "max_tokens 4000 -> 100" in changes
    assert degrade({"model": "m"}, d)[0]["max_tokens"] == 100     # no limit asked: the cap is set
    assert "summarize_reasoning" in d.protections


def test_per_end_user_scopes_to_the_named_end_users():
    book = PolicyBook()
    book.apply(alert(action="block", protections=["per_end_user"], end_user_ids=["u-bad"]))
    d = book.decide(Caller("acme", "u-bad"), 0)
    assert d.status == 403 and "end user u-bad of account acme" in d.message
    assert book.decide(Caller("acme", "u-good"), 0).allowed
    assert book.decide(Caller("acme"), 0).allowed
    # per_end_user without end users cannot be scoped: the whole account
    book.apply(alert("a2", action="block", protections=["per_end_user"]))
    assert book.decide(Caller("acme", "u-good"), 0).status == 403


def test_unusable_alert_events_are_counted_not_raised():
    book = PolicyBook()
    assert not book.apply({"activity": "create"})
    assert not book.apply(alert(action="delete-everything"))
    assert not book.apply("not a dict")
    assert book.ignored == 3 and not book.policies


def test_the_litellm_hook_maps_callers_and_applies_decisions():
    """The hook itself, without a proxy or Kafka (follow=False: the test feeds the book)."""
    import asyncio

    import pytest
    pytest.importorskip("litellm")
    from fastapi import HTTPException
    from litellm.proxy._types import UserAPIKeyAuth

    from distillguard.streams.enforcement import SUMMARIZE_HEADER, DistillguardEnforcement, caller_of
    from distillguard.streams.settings import load_settings

    assert caller_of(UserAPIKeyAuth(api_key="h", org_id="org", team_id="team"), {"user": "eu"}).account_id == "org"
    assert caller_of(UserAPIKeyAuth(api_key="h", team_id="team"), {}).account_id == "team"
    assert caller_of(UserAPIKeyAuth(api_key="hash-1"), {"user": "eu"}).end_user_id == "eu"
    hook = DistillguardEnforcement(load_settings({"DG_ENFORCE_THROTTLE_PER_MINUTE": "1"}), follow=False)
    hook.book.apply(alert("t", action="throttle", accounts=("thr",)))
    hook.book.apply(alert("p", action="monitor", accounts=("prb",), protections=["summarize_reasoning",
                                                                               "disable_logprobs"]))
    call = lambda org, data: asyncio.run(hook.async_pre_call_hook(UserAPIKeyAuth(api_key="k", org_id=org), None,  # noqa: E731
                                                                  data, "completion"))
    assert call("thr", {"model": "m"}) == {"model": "m"}
    with pytest.raises(HTTPException) as err:
        call("thr", {"model": "m"})
    assert err.value.status_code == 429 and int(err.value.headers["Retry-After"]) > 0
    out = call("prb", {"model": "m", "logprobs": True, "extra_headers": {"x-a": "1"}})
    assert out == {"model": "m", "extra_headers": {"x-a": "1", SUMMARIZE_HEADER: "1"}}
    assert hook.refused == 1 and hook.degraded == 1
