"""kill -9 a worker in the middle of a stream, restart it: nothing is lost
(at-least-once), state comes back from the changelog, no alert is created twice."""
import time
from collections import Counter, defaultdict

import orjson
import pytest

from distillguard.streams.bench import bench_events
from distillguard.streams.kafka_io import ensure_topics, produce_events

from ..workers import WorkerProcess
from .conftest import pick, query, read_all, wait_drained

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_kill9_mid_stream_and_restart(tmp_path, isolated_env, isolated_settings, report):
    settings = isolated_settings
    n = pick(20_000, 112_000)
    events = list(bench_events(n))
    ensure_topics(settings)
    produced = produce_events(settings, events, progress=False)
    assert produced == n
    t0 = time.monotonic()
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log").start()
    try:
        st = worker.wait_for(lambda s: s and s["events"] >= 0.4 * n, 300, "40% of the events")
        worker.kill()                                   # SIGKILL: no shutdown, no final commit
        report["killed_after_events"] = st["events"]
        assert st["events"] < n, "the stream ended before the kill: make it longer"
        pre = [orjson.loads(m.value()) for m in read_all(settings, settings.topic_alerts, idle=3)]
        worker = WorkerProcess(isolated_env, tmp_path / "worker2.log").start()
        wait_drained(settings, worker, timeout=pick(300, 900))
        st = worker.status()
        # read again after the restart: from the committed offsets, plus what the end-of-recovery
        # seek delivers twice (dropped by event id in this process: `duplicates`)
        report["reprocessed_after_restart"], report["dropped_as_duplicates"] = st["events"], st["duplicates"]
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    report["seconds"] = round(time.monotonic() - t0, 1)

    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic_alerts)]
    assert alerts[:len(pre)] == pre
    # Per-account alerts (account_extraction) carry the restored state; other detectors
    # (e.g. hydra_cluster, in-memory) are reported, not judged here.
    everything = alerts
    alerts = [a for a in everything if a["detector"] == "account_extraction"]
    pre = [a for a in pre if a["detector"] == "account_extraction"]
    post = alerts[len(pre):]
    creates: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        if a["activity"] == "create":
            creates[a["alert_id"]].append(a)
    other = Counter(a["alert_id"] for a in everything if a["activity"] == "create" and a["detector"] != "account_extraction")
    report.update(produced=n, alerts_before_kill=len(pre), alerts_after_restart=len(post), creates=len(creates),
                  redelivered_creates=sum(len(c) - 1 for c in creates.values()),
                  other_detectors={"alert_events": len(everything) - len(alerts),
                                   "alert_ids_created_more_than_once": sum(1 for k in other.values() if k > 1)})
    assert pre and post, "alerts both before the kill and after the restart are needed to judge"
    # no alert_id gets a second, different create: at-least-once may re-deliver the create of a
    # batch re-processed from the same state, never start a new lifecycle. A re-delivered create
    # is the same but for the reasons after the first: those rank the account's features against
    # its cohort's baselines, which live in the worker's memory and are relearned after a restart
    # (models/detector.py); everything the account's own events decide must be equal.
    own = {aid: [own_event(c) for c in cs] for aid, cs in creates.items()}
    twice = [aid for aid, cs in own.items() if any(c != cs[0] for c in cs)]
    differ = [{k: [c.get(k) for c in own[a]] for k in sorted(set().union(*own[a]))
               if any(c.get(k) != own[a][0].get(k) for c in own[a])} for a in twice[:3]]
    assert not twice, f"alerts created twice, fields that differ: {differ}"

    # A kill after a batch's alerts reached the topic and before its states reached the
    # changelog (the window only Kafka transactions close) restores the states from before that
    # batch: the restarted worker processes it again and sends its alert events again, equal to
    # the ones before the kill (but for the reasons after the first, as above). For each account
    # they come first after the restart and are its last ones before it; across accounts their
    # order may differ, since the batch read again after the restart interleaves the partitions'
    # events otherwise (a 4,000-event batch re-sent X:512, Y:160, Y:320, Y:640, X:1024 where the
    # first run had sent X:512, Y:160, Y:320, X:1024, Y:640).
    pre_of, post_of = by_account(pre), by_account(post)
    redelivered = {acc: redelivered_count(pre_of.get(acc, []), alerts) for acc, alerts in post_of.items()}
    report["redelivered_alert_events"] = sum(redelivered.values())
    # state restored from the changelog: an account's alerts after the restart (beyond those
    # sent again) continue its count of events instead of starting again from scratch
    last_pre = {acc: alerts[-1] for acc, alerts in pre_of.items()}
    first_post = {acc: alerts[redelivered[acc]] for acc, alerts in post_of.items() if len(alerts) > redelivered[acc]}
    both = [acc for acc in first_post if acc in last_pre]
    assert both, "no account alerted both before and after: cannot check state restoration"
    regressed = {acc: (last_pre[acc]["event_count"], first_post[acc]["event_count"]) for acc in both
                 if first_post[acc]["event_count"] < last_pre[acc]["event_count"]}
    assert not regressed, f"states restarted from scratch (event counts before → after): {regressed}"
    continued = [acc for acc in both if first_post[acc]["alert_id"] == last_pre[acc]["alert_id"]
                 and first_post[acc]["activity"] in ("update", "close")]
    report["accounts_checked_for_state"] = len(both)
    report["alerts_continued_as_update"] = len(continued)
    assert continued, "no open alert was continued (update/close of the same alert_id) after the restart"
    by_id = defaultdict(list)
    for a in alerts:
        by_id[a["alert_id"]].append(a["activity"])
    assert all(acts[0] == "create" for acts in by_id.values()), "an alert's first event is not its create"

    # every event is accounted for in ClickHouse (duplicates allowed: at-least-once)
    requests = query(settings, "SELECT sum(requests) FROM {db}.account_minute")
    alert_rows = query(settings, "SELECT count() FROM {db}.alert_events")
    latest = query(settings, "SELECT count() FROM {db}.alerts_latest FINAL")
    report.update(aggregated_requests=requests, duplicate_requests=requests - n,
                  alert_event_rows=alert_rows, alerts_latest=latest)
    assert requests >= n
    assert alert_rows >= len(everything)            # every alert event on the topic reached ClickHouse
    assert latest == len({a["alert_id"] for a in everything})


def own_event(alert: dict) -> dict:
    """An alert event without the reasons after the first (those rank against cohort baselines
    kept in the worker's memory, relearned after a restart)."""
    return {**alert, "reasons": alert["reasons"][:1]}


def by_account(alerts: list[dict]) -> dict[str, list[dict]]:
    """Alert events per account (its first ``account_ids``), in topic order."""
    out: dict[str, list[dict]] = defaultdict(list)
    for a in alerts:
        out[a["account_ids"][0]].append(a)
    return out


def redelivered_count(pre: list[dict], post: list[dict]) -> int:
    """The largest k such that the first k alert events after the restart are the last k before
    the kill (compared as ``own_event``)."""
    pre_own, post_own = [own_event(a) for a in pre], [own_event(a) for a in post]
    for k in range(min(len(pre), len(post)), 0, -1):
        if pre_own[-k:] == post_own[:k]:
            return k
    return 0
