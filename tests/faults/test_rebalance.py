"""A second worker joins while the first has a backlog in its stream buffer: the rebalance
suspends the flow with messages waiting on a full buffer (the case Faust's per-message race
exists for, kept by streams/faust_transport.py). Nothing is lost, and no alert is created
twice with different content."""
import time
from collections import defaultdict

import orjson
import pytest

from distillguard.streams.bench import bench_events, free_port
from distillguard.streams.kafka_io import ensure_topics, produce_events

from ..workers import WorkerProcess
from .conftest import pick, query, read_all, wait_drained

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_second_worker_joins_mid_backlog(tmp_path, isolated_env, isolated_settings, report):
    settings = isolated_settings
    n = pick(20_000, 100_000)
    ensure_topics(settings)
    assert produce_events(settings, list(bench_events(n)), progress=False) == n
    first = WorkerProcess(isolated_env, tmp_path / "first.log").start()
    second = None
    try:
        st = first.wait_for(lambda s: s and s["events"] >= 0.2 * n, 300, "20% of the events")
        assert st["events"] < n, "the backlog was gone before the second worker joined: make it longer"
        report["first_before_join"] = st["events"]
        second_env = {**isolated_env, "DG_WORKER_WEB_PORT": str(free_port()),
                      "DG_DATA_DIR": str(tmp_path / "var2"), "DG_SINK": "0"}
        second = WorkerProcess(second_env, tmp_path / "second.log").start()
        second.wait_for(lambda s: s and s["partitions"], 300, "partitions for the second worker")
        wait_drained(settings, first, timeout=pick(300, 900))
        counts = [first.status()["events"], second.status()["events"]]
        report.update(first_events=counts[0], second_events=counts[1], reprocessed=sum(counts) - n)
    finally:
        codes = [w.stop() for w in (second, first) if w is not None]
    assert codes == [0] * len(codes), first.log_tail()
    assert counts[1] > 0, "the second worker processed nothing: no rebalance happened under load"

    requests = query(settings, "SELECT sum(requests) FROM {db}.account_minute")
    report["aggregated_requests"] = requests
    assert requests >= n, f"{n - requests} events lost across the rebalance"
    creates: dict[str, list[dict]] = defaultdict(list)
    for m in read_all(settings, settings.topic_alerts):
        a = orjson.loads(m.value())
        if a["activity"] == "create" and a["detector"] == "account_extraction":
            creates[a["alert_id"]].append(a)
    twice = [aid for aid, cs in creates.items() if any(c != cs[0] for c in cs)]
    assert not twice, f"alerts created twice with different content: {twice[:3]}"
