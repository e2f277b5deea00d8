"""ClickHouse unavailable for a while (60 s full, 10 s short): detection goes on,
the sink holds its rows and retries, and after recovery no row is missing.

The outage is injected with ``DG_FAULT_CLICKHOUSE_DOWN_S`` (streams/sink.py):
every insert fails for that long from the sink's first attempt."""
import time

import orjson
import pytest

from distillguard.models.simulation import load_scenario, simulate
from distillguard.streams.kafka_io import ensure_topics, produce_events

from ..workers import WorkerProcess
from .conftest import pick, query, read_all, wait_drained

pytestmark = [pytest.mark.faults, pytest.mark.integration]


def test_clickhouse_outage_loses_no_row(tmp_path, isolated_env, isolated_settings, report):
    settings = isolated_settings
    down_s = pick(10, 60)
    events = list(simulate(load_scenario("small"), seed=5).events())
    bad = [b"{not json", b'{"schema_version":"1"}']
    ensure_topics(settings)
    t0 = time.monotonic()
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log", DG_FAULT_CLICKHOUSE_DOWN_S=str(down_s)).start()
    try:
        produced = produce_events(settings, events + bad, progress=False)
        st = worker.wait_for(lambda s: s and s["events"] >= produced, 240, "all events processed")
        during = st["sink"]
        report["processed_during_outage_s"] = round(time.monotonic() - t0, 1)
        # detection went on although nothing could be inserted yet
        if time.monotonic() - t0 < down_s:
            assert not during["inserted"], during
        worker.wait_for(lambda s: s["sink"]["retries"] > 0, down_s + 30, "the sink to see the outage")
        wait_drained(settings, worker, timeout=down_s + 180)
        st = worker.status()
        report["sink"] = st["sink"]
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    report["seconds"] = round(time.monotonic() - t0, 1)

    alerts = [orjson.loads(m.value()) for m in read_all(settings, settings.topic_alerts)]
    requests = query(settings, "SELECT sum(requests) FROM {db}.account_minute")
    alert_rows = query(settings, "SELECT count() FROM {db}.alert_events")
    dlq_rows = query(settings, "SELECT sum(count) FROM {db}.dlq_minute")
    report.update(outage_s=down_s, produced_good=len(events), aggregated_requests=requests,
                  alerts_on_topic=len(alerts), alert_event_rows=alert_rows, dlq_rows=dlq_rows)
    assert report["sink"]["retries"] >= 1
    assert requests == len(events)          # no kill: nothing re-processed, nothing lost
    assert alert_rows == len(alerts) and alerts
    assert dlq_rows == len(bad)
