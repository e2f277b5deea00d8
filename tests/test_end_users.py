"""End users inside an account are kept bounded, an extracting sub-population is named in the alert
(contract v1.1 end_user_ids, protections), and context tempers the action."""
import itertools

from distillguard.models import AccountDetector
from distillguard.models.end_users import MAX_USERS, EndUsers
from distillguard.models.state import AccountState
from distillguard.schemas import event_from_dict, validate_alert

from .test_detector import SWEEP_PROMPTS, TOPIC_PROMPTS, WRAPPER, run

_ids = itertools.count()


def _ev(account, ts, prompt, user, out_tokens=300, tier="startup", created=0, system=None):
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return event_from_dict({
        "schema_version": "1", "event_id": f"u{next(_ids)}", "ts_ms": ts, "account_id": account,
        "model": "atlas-2", "operation": "chat", "messages": msgs, "user_id": user, "access_tier": tier,
        "account_created_ms": created, "params": {"max_tokens": 4096},
        "usage": {"input_tokens": 50, "output_tokens": out_tokens}})


def _product_with_extractors(account="app", tier="startup", created=0):
    """A product: 200 honest end users asking narrow things, 12 rotating ids sweeping every area."""
    evs = []
    t = 10 * 86_400_000
    extractors = [f"x{i}" for i in range(12)]
    for i in range(2_400):
        t += 20_000
        if i % 5 == 0:      # 20% of the traffic extracts, 20 requests per id in turn
            k = i // 5
            evs.append(_ev(account, t, WRAPPER + SWEEP_PROMPTS[k % len(SWEEP_PROMPTS)], extractors[(k // 20) % 12],
                           out_tokens=900, tier=tier, created=created))
        else:
            evs.append(_ev(account, t, TOPIC_PROMPTS[i % 2] + f" {i}", f"h{i % 200}", tier=tier, created=created))
    return evs, set(extractors)


def test_end_user_rows_are_bounded_and_keep_the_flagged():
    eu = EndUsers()
    for i in range(30):
        eu.learn("mallory", i, i % 60, True, True)
    for i in range(5 * MAX_USERS):
        eu.learn(f"user{i}", 1_000 + i, 1, False, False)
    assert len(eu.ids) == MAX_USERS and "mallory" in eu.ids
    assert EndUsers.from_list(eu.to_list()).to_list() == eu.to_list()
    s = AccountState()
    assert AccountState.from_bytes(s.to_bytes()).to_bytes() == s.to_bytes()


def test_eviction_takes_the_least_recent_unflagged_user_as_the_full_rule_does():
    """``_victim``'s shortcut (the least recent user, if unflagged) picks what the rule over all
    rows picks, ties and flagged users included."""
    import random
    rnd = random.Random(3)
    for _ in range(200):
        eu = EndUsers()
        for u in range(MAX_USERS):
            for k in range(rnd.choice((1, 8))):   # 8 requests over 8 areas with long answers: flagged
                eu.learn(f"u{u}", rnd.choice((5, 7, rnd.randrange(1_000))), k, True, True)
        r = eu.rows
        rule = min(range(MAX_USERS), key=lambda j: (eu._suspicious(j), r[j * 5 + 3]))
        assert eu._victim() == rule


def test_extracting_end_users_are_named_and_protections_fit():
    evs, extractors = _product_with_extractors()
    alerts = [a for a in run(AccountDetector(), evs) if a.activity != "close"]
    assert alerts, "the extracting sub-population raised no alert"
    last = alerts[-1]
    assert validate_alert(last.to_dict()) == []
    assert last.end_user_ids and set(last.end_user_ids) <= extractors
    assert "per_end_user" in last.protections
    assert last.recommended_action != "block"


def test_established_enterprise_never_blocked_on_one_signal():
    evs = [_ev("corp", 400 * 86_400_000 + i * 2_000, WRAPPER + SWEEP_PROMPTS[i % len(SWEEP_PROMPTS)], None,
               tier="enterprise", created=0) for i in range(400)]
    alerts = [a for a in run(AccountDetector(), evs) if a.activity != "close"]
    assert alerts and all(a.recommended_action in ("monitor", "step_up_verification") for a in alerts)
    assert "summarize_reasoning" in alerts[-1].protections
