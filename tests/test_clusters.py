"""Cross-account (hydra) detection, functional core: linking, clustering, scoring, bounds."""
import random
import re

import orjson

from distillguard.models.clusters import synchrony
from distillguard.models.config import ClusterConfig
from distillguard.models.pipeline import CrossAccountPipeline
from distillguard.models.features import extract
from distillguard.models.linking import (ANCHORS, LINK_MEMO_CHARS, RECENT, Linker, LinkObserver, link_record,
                                        link_value, network_of)
from distillguard.models.records import LinkObservation
from distillguard.schemas import event_from_dict, validate_alert

KEY = b"test-key"
CC = ClusterConfig()
SYNC_MS, LINK_THRESHOLD = CC.sync_ms, CC.link_threshold
T0 = 1_793_577_600_000
DAY = 86_400_000
QUESTIONS = [  # several areas, as an extraction sweep would cover
    "How many apples does she have if each costs 3 dollars and the total is 12?",
    "Write a python function that returns the sum of a list of integers.",
    "Translate the following sentence into French: the weather is nice today.",
    "Summarize the article about the new energy policy in one brief headline.",
    "Who was the president of the country when the war ended, and in which year?",
    "Classify the sentiment of this movie review: I liked it, four stars.",
    "Which species of plants need the most water at high temperature?",
    "Paraphrase the sentence so it keeps the same meaning: the cat sat on the mat.",
]
WRAPPER = "\n\nRespond with (1) detailed step-by-step reasoning and (2) the final answer."


def _event(i, account, ts, *, prompt, ip, pf, created, tier, system=None, ua="python-requests/2.32.3"):
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return event_from_dict({
        "schema_version": "1", "event_id": f"ev{i}", "ts_ms": ts, "account_id": account,
        "api_key_id": f"key_{account[-6:]}", "client_ip": ip, "user_agent": ua, "payment_fingerprint": pf,
        "account_created_ms": created, "access_tier": tier, "model": "atlas-2", "operation": "chat",
        "messages": messages, "params": {"temperature": 0, "max_tokens": 2048}})


def hydra_events(n_accounts=14, bursts=6, seed=1):
    rng = random.Random(seed)
    accounts = [f"acct_h{a:04d}" for a in range(n_accounts)]
    pfs = {a: f"pf_hydra_{i % 2}" for i, a in enumerate(accounts)}
    nets = ["45.35.188", "193.147.159", "89.14.2"]
    out, i = [], 0
    for b in range(bursts):
        t = T0 + b * 8 * 60_000
        for a in rng.sample(accounts, n_accounts // 2 + 1):
            i += 1
            out.append(_event(i, a, t + rng.randint(0, 5000), prompt=f"[job] item {i}\n{rng.choice(QUESTIONS)}{WRAPPER}",
                              ip=f"{rng.choice(nets)}.{rng.randint(2, 250)}", pf=pfs[a], created=T0 - DAY, tier="free"))
    return sorted(out, key=lambda e: e.ts_ms), accounts


def enterprise_events(n_accounts=14, seed=2):
    rng = random.Random(seed)
    accounts = [f"acct_e{a:04d}" for a in range(n_accounts)]
    out, i = [], 0
    for a in accounts:
        topic = rng.choice(QUESTIONS[:2])          # each team member keeps to one narrow area
        t = T0 + rng.randint(0, 3_600_000)
        for _ in range(rng.randint(8, 25)):
            i += 1
            t += rng.randint(30_000, 900_000)
            out.append(_event(i, a, t, prompt=f"{topic} (case {rng.randint(1, 99)})", ip=f"12.40.7.{rng.randint(2, 9)}",
                              pf="pf_enterprise", created=T0 - 900 * DAY, tier="enterprise",
                              system="You are the internal knowledge assistant of the company. Be factual.",
                              ua="Mozilla/5.0 (Windows NT 10.0; Win64; x64)"))
    return sorted(out, key=lambda e: e.ts_ms), accounts


def record(ev):
    return link_record(ev, extract(ev, KEY))


def run(events):
    h = CrossAccountPipeline(key=KEY)
    alerts, rows = [], []
    for ev in events:
        out = h.process(record(ev))
        alerts.extend(out.alerts)
        rows.extend(out.members)
    out = h.finish()
    alerts.extend(out.alerts)
    rows.extend(out.members)
    alerts.extend(h.clusters.engine.close_quiet(events[-1].ts_ms + 10 * 3_600_000))
    h.rows = rows
    return h, alerts


def test_hydra_is_one_cluster_alert_with_every_member():
    events, accounts = hydra_events()
    counts = {a: sum(e.account_id == a for e in events) for a in accounts}
    assert max(counts.values()) < 20                      # each account alone is below min_events
    _, alerts = run(events)
    strong = [a for a in alerts if a.activity != "close" and a.severity in ("medium", "high", "critical")]
    assert strong, alerts
    members = set().union(*(a.account_ids for a in strong))
    assert members == set(accounts)
    assert len({a.cluster_id for a in strong}) == 1 and strong[0].cluster_id
    assert len({a.alert_id for a in strong}) == 1          # membership changes are updates of one alert
    creates = [a for a in alerts if a.activity == "create"]
    assert [a.alert_id for a in creates] == [strong[0].alert_id]   # one create (maybe low), then updates
    assert any(a.activity == "update" for a in strong)
    for a in alerts:
        assert validate_alert(orjson.loads(a.to_json())) == [], a
    features = [r["feature"] for r in strong[-1].reasons]
    assert "linked_by_pay" in features and "linked_by_wrap" in features and "linked_by_net" in features
    assert strong[0].raised_at_ms - events[0].ts_ms <= 30 * 60_000


def test_enterprise_sharing_payment_and_network_is_not_a_hydra():
    events, accounts = enterprise_events()
    h, alerts = run(events)
    assert not [a for a in alerts if a.severity in ("medium", "high", "critical")], alerts
    # it is linked (that is true), just not scored as extraction
    rows = h.rows
    assert rows and max(r.evidence["members"] for r in rows) >= 5
    assert all(r.evidence["coordination"] < 0.2 for r in rows)


def test_mixed_traffic_keeps_the_enterprise_out_of_the_hydra():
    hy, hydra_accounts = hydra_events()
    en, enterprise_accounts = enterprise_events()
    _, alerts = run(sorted(hy + en, key=lambda e: e.ts_ms))
    alerted = {x for a in alerts if a.severity in ("medium", "high", "critical") for x in a.account_ids}
    assert alerted == set(hydra_accounts)


def test_deterministic_and_text_free():
    events, _ = hydra_events(seed=5)
    _, a1 = run(events)
    _, a2 = run(events)
    assert [a.to_json() for a in a1] == [a.to_json() for a in a2]
    blob = b"".join(a.to_json() for a in a1)
    assert b"step-by-step" not in blob and b"apples" not in blob
    obs = LinkObserver(KEY)
    dumped = orjson.dumps([o.to_wire() for e in events for o in obs.observe(record(e))])
    assert b"apples" not in dumped and b"45.35.188" not in dumped and b"pf_hydra" not in dumped


def test_observer_dedupes_per_account_and_key():
    obs = LinkObserver(KEY)
    ev = [_event(i, "acct_x", T0 + i * 1000, prompt="[job] item 1\n" + QUESTIONS[0] + WRAPPER, ip="1.2.3.4",
                 pf="pf", created=T0, tier="free") for i in range(100)]
    sent = [o for e in ev for o in obs.observe(record(e))]
    assert len(sent) == len({o.key for o in sent}) <= 5   # 100 s of traffic: each key once


def test_linker_state_is_bounded():
    linker = Linker()
    for i in range(5000):
        linker.process(LinkObservation(f"acct_{i}", "net", "net:shared", T0 + i * 10, f"e{i}", None, {}))
    st = linker.keys["net:shared"]
    assert len(st.anchors) == ANCHORS and len(st.recent) == RECENT
    assert 2500 < st.cardinality() < 10000                 # KMV estimate of 5000 accounts
    for i in range(200):                                   # idle keys are evicted
        linker.process(LinkObservation("a", "net", f"net:{i}", T0 + 10 * DAY + i, f"e{i}", None, {}))
    assert "net:shared" not in linker.keys


def test_network_of():
    assert network_of("10.1.2.3") == "10.1.2"
    assert network_of("2a02:1:2:3::4") == "2a02:1:2::/48"
    assert network_of(None) is None and network_of("nonsense") is None


def test_wrapper_key_ignores_payload_and_case():
    a = link_value("wrap", "Q: how many apples are there? Respond with (1) detailed step-by-step reasoning, 2 answers")
    b = link_value("wrap", "Q: name three rivers in Spain. RESPOND WITH (7) detailed step-by-step reasoning, 9 answers")
    assert a == b == "step by step reasoning 0 answers"
    assert link_value("wrap", "x" * 80) is None                     # one token: no wrapper


def test_wrapper_key_matches_its_regex_definition_for_any_text():
    # the byte-table tokenizer (ASCII) and the regex (anything else) cut the same tokens
    rng = random.Random(3)
    alphabet = "aZ09 .-_\n\tİKΣé"
    for _ in range(3000):
        tail = "".join(rng.choice(alphabet) for _ in range(rng.randint(60, 160)))
        tokens = re.findall(r"[a-z0-9]+", tail.lower())[1:]
        expected = " ".join("0" if t[0] <= "9" else t for t in tokens[-6:]) if len(tokens) >= 6 else None
        assert link_value("wrap", tail) == expected, tail


def test_synchrony_counts_observations_with_two_other_members_nearby():
    rng = random.Random(4)
    for _ in range(300):
        times = {f"a{i}": sorted(rng.randint(0, 60_000) for _ in range(rng.randint(0, 4))) for i in range(5)}
        events = [(t, a) for a, ts in times.items() for t in ts]
        hits = sum(len({b for u, b in events if abs(u - t) <= SYNC_MS and b != a}) >= 2 for t, a in events)
        assert synchrony(times) == (hits / len(events) if events else 0.0)


def test_cluster_engine_indexes_follow_its_pairs():
    h, _ = run(hydra_events()[0] + enterprise_events()[0][:40])
    engine = h.clusters.engine
    assert engine.pairs
    index = {(a, b) for a, others in engine.partners.items() for b in others if a < b}
    assert index == set(engine.pairs)
    last = max(p.last_ts for p in engine.pairs.values())
    for now in (last + 7 * 3_600_000, last + 9 * 3_600_000):    # fading: the sweep re-checks the strong
        engine._sweep(now)
        assert engine._strong == {k for k, p in engine.pairs.items() if p.strength(now, CC) >= LINK_THRESHOLD}
    engine._sweep(last + 13 * 3_600_000)                         # all idle: evicted
    assert not engine.pairs and not engine.partners


def test_observer_summary_counts_the_network_of_the_request_that_sends_it():
    obs = LinkObserver(KEY)
    sent = []
    for i, ip in enumerate(["1.2.3.4", "5.6.7.8", "9.9.9.9"]):
        sent += obs.observe(record(_event(i, "acct_r", T0 + i * 200_000, prompt="hi", ip=ip, pf="pf", created=T0,
                                          tier="free")))
    assert [o.summary["nets"] for o in sent if o.kind == "net"] == [1, 2, 3]


def test_observer_memo_keeps_only_short_raw_inputs():
    """Link keys are memoised per raw input, but a long one (a hostile 100 KB user agent, a
    long system prompt) is never kept whole in memory."""
    obs = LinkObserver(KEY)
    huge_ua = "x" * 100_000
    for i in range(50):
        obs.observe(record(_event(i, f"acct_{i}", T0 + i, prompt="hi", ip="1.2.3.4", pf="pf", created=T0,
                                  tier="free", system=str(i) + "s" * 5000, ua=huge_ua + str(i))))
    kept = [raw for memo in obs._links.values() for raw in memo]
    longest = max(len(r) if isinstance(r, str) else len(r[0]) + len(r[1] or "") for r in kept)
    assert longest <= LINK_MEMO_CHARS
    assert len(obs._links["ua"]) == 0 and len(obs._links["sys"]) == 50   # system prompts: first 400 chars
