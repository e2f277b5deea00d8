"""End to end on the real broker and the real embedded ClickHouse:
events produced with confluent-kafka → Faust worker → alerts topic, DLQ, ClickHouse;
and `replay` on the same events gives the same alerts."""
import gzip

import orjson
import pytest

from distillguard.models import Pipeline
from distillguard.schemas import validate_alert
from distillguard.streams.clickhouse import Store
from distillguard.streams.kafka_io import consume, ensure_topics, produce_events
from distillguard.streams.replay import open_lines, replay

from .workers import WorkerProcess

pytestmark = pytest.mark.integration

MALFORMED = [
    b"{this is not json",
    b'{"schema_version":"1","event_id":"bad-1","ts_ms":"yesterday","account_id":"x","model":"m",'
    b'"operation":"chat","messages":[],"params":{}}',
    b'{"schema_version":"1","event_id":"bad-2","account_id":"x"}',
    b"\xff\xfe invalid utf-8 \xc3\x28",
]


def test_stream_end_to_end(tmp_path, isolated_env, isolated_settings, small_sim):
    settings = isolated_settings
    events_path, _labels_path, labels = small_sim
    lines = list(open_lines(events_path))
    # malformed messages in the middle: the worker must keep going after them
    half = len(lines) // 2
    stream = lines[:half] + MALFORMED + lines[half:]
    ensure_topics(settings)
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log").start()
    try:
        sent = produce_events(settings, [line.rstrip(b"\n") for line in stream], progress=False)
        assert sent == len(stream)
        status = worker.wait_for(lambda s: s and s["events"] >= sent, 240, f"{sent} events processed")
        assert sum(status["dlq"].values()) == len(MALFORMED)
        n_alerts = sum(worker.wait_settled()["alerts"].values())
        worker.wait_for(lambda s: s["sink"]["inserted"].get("alert_events", 0) >= n_alerts, 60, "alert rows stored")
        alerts = [orjson.loads(v) for _k, v, _h in consume(settings, settings.topic_alerts, timeout=60, idle=5)]
        assert len(alerts) >= n_alerts
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()

    # alerts: contract v1, at least one create for an attacker, creates unique
    assert alerts, "no alert arrived"
    for a in alerts:
        assert validate_alert(a) == [], a
    creates = [a["alert_id"] for a in alerts if a["activity"] == "create"]
    assert len(creates) == len(set(creates))
    assert any(labels[a["account_ids"][0]]["label"] == "attack" for a in alerts if a["activity"] == "create")

    # DLQ: original bytes and a reason for every malformed message
    dlq = list(consume(settings, settings.topic_dlq, timeout=30, idle=5))
    assert sorted(v for _k, v, _h in dlq) == sorted(MALFORMED)
    for _k, _v, headers in dlq:
        h = dict(headers)
        assert h["dg-reason"] in (b"invalid_json", b"wrong_type", b"missing_field")
        assert h["dg-detail"]

    # ClickHouse: every alert event and every good event is there
    store = Store(settings)
    try:
        db = settings.clickhouse_database
        n_rows = store.query(f"SELECT count() FROM {db}.alert_events").result_rows[0][0]
        latest = store.query(f"SELECT count() FROM {db}.alerts_latest FINAL").result_rows[0][0]
        requests = store.query(f"SELECT sum(requests) FROM {db}.account_minute").result_rows[0][0]
        dlq_rows = store.query(f"SELECT sum(count) FROM {db}.dlq_minute").result_rows[0][0]
        hourly = store.query(f"SELECT sum(requests), uniqMerge(skeletons) > 0 FROM {db}.account_hour").result_rows[0]
        snapshots = store.query(f"SELECT count(), countIf(length(features) > 3) FROM {db}.account_features"
                                ).result_rows[0]
    finally:
        store.close()
    assert n_rows == len(alerts)
    assert latest == len({a["alert_id"] for a in alerts})
    assert requests == len(lines)
    assert dlq_rows == len(MALFORMED)
    assert hourly == (len(lines), True)
    assert snapshots[0] > 0 and snapshots[0] == snapshots[1]

    # replay on the same events finds the same alerts
    replayed = []
    replay(open_lines(events_path), Pipeline(key=settings.fingerprint_key.encode()), replayed.append)
    # per-account findings are identical; cluster findings depend on when the linker's
    # evidence reaches the single cluster agent, so they are checked in test_cluster_pipeline
    per_account = "account_extraction"
    assert {a.alert_id for a in replayed if a.activity == "create" and a.detector == per_account} == \
        {a["alert_id"] for a in alerts if a["activity"] == "create" and a["detector"] == per_account}
    assert {a.alert_id for a in replayed if a.detector == per_account} == \
        {a["alert_id"] for a in alerts if a["detector"] == per_account}


def test_small_sim_file_is_gzip(small_sim):
    assert gzip.open(small_sim[0]).readline().startswith(b"{")


def _ev(account, i, ts):
    return {"schema_version": "1", "event_id": f"{account}-{i}", "ts_ms": ts, "account_id": account,
            "model": "m", "operation": "chat", "messages": [{"role": "user", "content": "hello"}],
            "params": {}}


T0 = 1_793_613_600_000
EARLY = [_ev(f"early-{a}", i, T0 + i * 1000) for a in range(20) for i in range(3)]
# later traffic on every partition moves the low watermark 3 hours on
LATE = [_ev(f"late-{a}", i, T0 + 3 * 3_600_000 + i * 1000) for a in range(40) for i in range(3)]


def test_idle_accounts_expire_in_event_time(tmp_path, isolated_env, isolated_settings):
    """Accounts idle for longer than idle_expiry_ms of event time leave the worker's state."""
    config = tmp_path / "detector.toml"
    config.write_text("[detector]\nidle_expiry_ms = 3600000\n")
    settings = isolated_settings
    ensure_topics(settings)
    early, late = EARLY, LATE
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log", DG_DETECTOR_CONFIG=str(config)).start()
    try:
        produce_events(settings, early, progress=False)
        worker.wait_for(lambda s: s and s["events"] >= len(early), 120, "early events")
        produce_events(settings, late, progress=False)
        status = worker.wait_for(lambda s: s and s["events"] >= len(early) + len(late)
                                 and s["accounts_expired"] >= 20, 120, "idle accounts to expire")
    finally:
        worker.stop()
    assert status["accounts_expired"] == 20
    assert status["accounts_cached"] == 40


def test_states_restored_from_the_changelog_expire_too(tmp_path, isolated_env, isolated_settings):
    """A restarted worker rebuilds its table from the changelog; accounts never seen again
    after the restart (only in the table, not loaded) still expire when idle, and their
    tombstones shrink the table (issue #18: they stayed for ever)."""
    config = tmp_path / "detector.toml"
    config.write_text("[detector]\nidle_expiry_ms = 3600000\n")
    settings = isolated_settings
    ensure_topics(settings)
    env = dict(DG_DETECTOR_CONFIG=str(config))
    worker = WorkerProcess(isolated_env, tmp_path / "worker1.log", **env).start()
    try:
        produce_events(settings, EARLY, progress=False)
        first = worker.wait_for(lambda s: s and s["events"] >= len(EARLY), 120, "early events")
    finally:
        assert worker.stop() == 0, worker.log_tail()
    worker = WorkerProcess(isolated_env, tmp_path / "worker2.log", **env).start()
    try:
        produce_events(settings, LATE, progress=False)
        worker.wait_for(lambda s: s and s["events"] >= len(LATE) and s["accounts_expired"] >= 20, 120,
                        "restored accounts to expire")
        # a tombstone is written in a batch with an event of its partition: one more round of the
        # late accounts gives every partition one
        again = [_ev(f"late-{a}", 3, T0 + 3 * 3_600_000 + 60_000) for a in range(40)]
        produce_events(settings, again, progress=False)
        status = worker.wait_for(lambda s: s and s["events"] >= len(LATE) + len(again)
                                 and s["bounds"]["worker.table"][0] <= 40, 120, "tombstones")
    finally:
        worker.stop()
    assert first["bounds"]["worker.table"][0] == 20
    assert first["hot_path"] == "compiled"   # the install built the C extensions (models/native.py)
    # the consumer's offset checks (streams/faust_transport.py): nothing held back at rest
    assert set(status["offsets"]) == {"commits_held", "uncommitted_partitions_moved_back", "seek_retries", "held_for_s"}
    assert status["offsets"]["held_for_s"] == {}
    assert status["accounts_expired"] == 20
    assert status["bounds"]["worker.table"][0] == 40
    assert status["bounds"]["worker.partition_of"][0] == 40
