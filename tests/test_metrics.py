"""GET /metrics: Prometheus text format, written by hand (streams/metrics.py)."""
import re
import time
import urllib.request
from collections import Counter
from types import SimpleNamespace

import pytest

from distillguard.streams.metrics import render

from .workers import WorkerProcess

# One sample line of the text exposition format 0.0.4: name{label="value",...} number
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                    r'(-?[0-9.eE+-]+|NaN|[+-]Inf)$')


def parse(text: str) -> dict[str, dict[str, float]]:
    """{family: {label-string: value}}; asserts the format on the way."""
    assert text.endswith("\n")
    out: dict[str, dict[str, float]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge")
            assert name not in types, f"family {name} declared twice"
            types[name] = kind
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name = m.group(1)
        assert name in types, f"{name} has no TYPE line before it"
        labels = line[len(name):line.rindex(" ")]
        out.setdefault(name, {})[labels] = float(line.rsplit(" ", 1)[1])
    for name, kind in types.items():
        if kind == "counter":
            assert name.endswith("_total"), name
    return out


def counters(**kw):
    base = dict(events=1234, batches=7, dlq=Counter({"invalid_json": 2, "missing_field": 1}),
                alerts=Counter({"high": 3, "low": 1}), started=time.time() - 10)
    base.update(kw)
    return SimpleNamespace(**base)


def test_render_counters_sink_and_lag():
    text = render(counters(), {"inserted": {"alert_events": 4, "account_minute": 90}, "pending_rows": 12,
                               "retries": 2, "skipped_messages": 0, "consumer_restarts": 1,
                               "last_error": "boom \"quoted\""},
                  {("llm.requests", 0): 5, ("llm.requests", 1): 0})
    m = parse(text)
    assert m["distillguard_events_total"][""] == 1234
    assert m["distillguard_dlq_events_total"] == {'{reason="invalid_json"}': 2, '{reason="missing_field"}': 1}
    assert m["distillguard_alerts_total"]['{severity="high"}'] == 3
    assert m["distillguard_alerts_total"]['{severity="critical"}'] == 0   # every severity, even at zero
    assert m["distillguard_sink_inserted_rows_total"]['{table="account_minute"}'] == 90
    assert m["distillguard_sink_pending_rows"][""] == 12 and m["distillguard_sink_retries_total"][""] == 2
    assert m["distillguard_sink_consumer_restarts_total"][""] == 1
    assert m["distillguard_consumer_lag"]['{topic="llm.requests",partition="0"}'] == 5
    assert m["distillguard_consumer_lag_sum"][""] == 5
    assert 9 <= m["distillguard_uptime_seconds"][""] < 60
    assert "boom" not in text   # the sink's last error is free text: not a metric


def test_render_without_sink_or_lag_and_label_escaping():
    text = render(counters(dlq=Counter({'odd "reason"\\\n': 1})), None, None)
    m = parse(text)
    assert not any(k.startswith("distillguard_sink") for k in m)
    assert "distillguard_consumer_lag" not in m
    assert list(m["distillguard_dlq_events_total"]) == ['{reason="odd \\"reason\\"\\\\\\n"}']


def test_render_adapters():
    m = parse(render(counters(), None, None, {"litellm": {"forwarded": 20, "dlq_adapter_unmapped": 1}}))
    assert m["distillguard_adapter_records_total"]['{source="litellm",outcome="forwarded"}'] == 20


@pytest.mark.integration
def test_worker_serves_metrics(tmp_path, isolated_env, isolated_settings, small_sim):
    from distillguard.streams.kafka_io import ensure_topics, produce_events
    from distillguard.streams.replay import open_lines

    settings = isolated_settings
    lines = [line.rstrip(b"\n") for line in list(open_lines(small_sim[0]))[:300]]
    ensure_topics(settings)
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log").start()
    try:
        sent = produce_events(settings, lines + [b"{broken", b"[]"], progress=False)
        worker.wait_for(lambda s: s and s["events"] >= sent and s["sink"]["pending_rows"] == 0
                        and s["sink"]["inserted"].get("account_minute_in", 0) > 0, 120, "events processed")
        deadline = time.monotonic() + 30
        while True:   # offsets are committed a moment after processing
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=5) as r:
                content_type = r.headers["Content-Type"]
                m = parse(r.read().decode())
            lag = m.get("distillguard_consumer_lag", {})
            if (lag and sum(lag.values()) == 0) or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert content_type.startswith("text/plain")
    assert m["distillguard_events_total"][""] == sent
    assert m["distillguard_dlq_events_total"] == {'{reason="invalid_json"}': 1, '{reason="not_object"}': 1}
    assert m["distillguard_sink_inserted_rows_total"]['{table="account_minute_in"}'] > 0
    assert m["distillguard_sink_pending_rows"][""] == 0
    topics = {re.search(r'topic="([^"]+)"', k).group(1) for k in lag}
    assert topics == {settings.topic_requests}
    assert len(lag) == settings.partitions and sum(lag.values()) == 0, lag
