"""Cross-account detection end to end on the real broker with TWO workers: hydra members are
spread over the request partitions of both, link observations are repartitioned by link key,
the single-partition cluster agent raises one cluster alert, and cluster_members reach ClickHouse."""
import orjson
import pytest

from distillguard.schemas import validate_alert
from distillguard.streams.clickhouse import Store
from distillguard.streams.kafka_io import consume, ensure_topics, produce_events
from distillguard.streams.replay import open_lines

from .conftest import free_port
from .workers import WorkerProcess, wait_all

pytestmark = pytest.mark.integration


def test_two_workers_raise_one_cluster_alert(tmp_path, isolated_env, isolated_settings, small_sim):
    settings, env = isolated_settings, isolated_env
    assert settings.topic_links.startswith(env["DG_APP_ID"])   # internal topics are per app id
    events_path, _labels_path, labels = small_sim
    hydra = {a for a, lab in labels.items() if lab["cohort"] == "hydra"}
    enterprise = {a for a, lab in labels.items() if lab["cohort"] == "enterprise_team"}
    # 20-30 hydra accounts keyed by account id over 4 partitions: members are spread over both workers
    assert len(hydra) >= 20
    lines = [line.rstrip(b"\n") for line in open_lines(events_path)]
    ensure_topics(settings)
    w1 = WorkerProcess(env, tmp_path / "worker1.log", DG_SINK="1").start()
    w2 = WorkerProcess(env, tmp_path / "worker2.log", DG_SINK="0",
                       DG_WORKER_WEB_PORT=str(free_port())).start()
    try:
        # both in the group before any event: a fast first worker could otherwise take them all
        wait_all([w1, w2], lambda ss: all(s and s["partitions"] for s in ss)
                 and sum(len(s["partitions"]) for s in ss) == settings.partitions,
                 120, "both workers to hold request partitions")
        sent = produce_events(settings, lines, progress=False)
        # both pages must answer: a page that does not would count as 0 events and read as a stall
        both = wait_all([w1, w2], lambda ss: all(ss) and sum(s["events"] for s in ss) >= sent, 300,
                        f"{sent} events over two workers")
        assert all(s["events"] > 0 for s in both), both          # both workers took partitions
        alerts = [orjson.loads(v) for _k, v, _h in consume(settings, settings.topic_alerts, timeout=90, idle=15)]
        n_alerts = len(alerts)
        w1.wait_for(lambda s: s["sink"]["inserted"].get("alert_events", 0) >= n_alerts
                    and s["sink"]["pending_rows"] == 0, 90, "the sink to catch up")
    finally:
        codes = [w1.stop(), w2.stop()]
    assert codes == [0, 0], w1.log_tail() + w2.log_tail()

    for a in alerts:
        assert validate_alert(a) == [], a
    cluster = [a for a in alerts if a["cluster_id"] and a["activity"] != "close"
               and a["severity"] in ("medium", "high", "critical")]
    assert cluster, "no cluster alert arrived"
    members = set().union(*(a["account_ids"] for a in cluster))
    assert len(members & hydra) >= 0.8 * len(hydra)
    assert not members & enterprise
    assert any(r["feature"].startswith("linked_by_") for r in cluster[0]["reasons"])
    creates = [a["alert_id"] for a in alerts if a["cluster_id"] and a["activity"] == "create"]
    assert len(creates) == len(set(creates))

    store = Store(settings)
    try:
        db = settings.clickhouse_database
        rows = store.query(f"SELECT cluster_id, account_id, score, evidence FROM {db}.cluster_members FINAL"
                           ).result_rows
    finally:
        store.close()
    alerted_ids = {a["cluster_id"] for a in cluster}
    persisted = {acct for cid, acct, _s, _e in rows if cid in alerted_ids}
    assert persisted & hydra and len(persisted & hydra) >= 0.8 * len(hydra)
    assert all(orjson.loads(e)["members"] >= 3 for *_x, e in rows)
