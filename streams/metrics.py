"""Prometheus text exposition (format 0.0.4) of the worker's counters, written by hand.

``render(counters, sink_stats, lag)`` is pure: it takes the worker's
``Counters`` (events, DLQ by reason, alerts by severity, batches, start
time), the sink's ``stats()`` dict (or None when this worker runs no sink)
and consumer lag per (topic, partition) (or None when unknown), and returns
the text ``GET /metrics`` serves. Rates (events/s) are for PromQL:
``rate(distillguard_events_total[1m])``.

Consumer lag comes from Faust's consumer: ``highwater(tp) - committed(tp)``
per assigned partition of the topics the agents read (committed = the next
offset Faust will commit; before the first commit, the next offset to read).

No label ever carries prompt text: labels are reasons, severities, table
names, topics and partitions.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SEVERITIES = ("low", "medium", "high", "critical")


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, Any], Any]]) -> None:
        self.lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
                self.lines.append(f"{name}{{{body}}} {_number(value)}")
            else:
                self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(counters: Any, sink_stats: Mapping[str, Any] | None,
           lag: Mapping[tuple[str, int], int] | None, adapters: Mapping[str, Mapping[str, int]] | None = None,
           now: float | None = None, content_less: int | None = None) -> str:
    """The metrics page as Prometheus text."""
    w = _Writer()
    w.family("distillguard_events_total", "counter", "Request events consumed by the detection agent.",
             [({}, getattr(counters, "events", 0))])
    w.family("distillguard_batches_total", "counter", "Processing batches of the detection agent.",
             [({}, getattr(counters, "batches", 0))])
    dlq = dict(getattr(counters, "dlq", {}) or {})
    w.family("distillguard_dlq_events_total", "counter", "Bad request events sent to the DLQ, by reason.",
             [({"reason": r}, n) for r, n in sorted(dlq.items())])
    alerts = dict(getattr(counters, "alerts", {}) or {})
    sev = list(SEVERITIES) + sorted(s for s in alerts if s not in SEVERITIES)
    w.family("distillguard_alerts_total", "counter", "Alert events published (create, update, close), by severity.",
             [({"severity": s}, alerts.get(s, 0)) for s in sev])
    if content_less is not None:
        w.family("distillguard_content_less_events_total", "counter",
                 "Events read without prompt text (redacted or not captured): only metadata signals apply.",
                 [({}, content_less)])
    started = getattr(counters, "started", None)
    if started is not None:
        w.family("distillguard_uptime_seconds", "gauge", "Seconds since the worker started.",
                 [({}, round((now if now is not None else time.time()) - started, 3))])
    if adapters:
        w.family("distillguard_adapter_records_total", "counter",
                 "Gateway log records seen by the topic adapters, by source and outcome.",
                 [({"source": src, "outcome": outcome}, n)
                  for src, counts in sorted(adapters.items()) for outcome, n in sorted(counts.items())])
    if lag is not None:
        w.family("distillguard_consumer_lag", "gauge",
                 "Messages not yet committed per partition (highwater - committed offset).",
                 [({"topic": t, "partition": p}, n) for (t, p), n in sorted(lag.items())])
        w.family("distillguard_consumer_lag_sum", "gauge", "Consumer lag summed over assigned partitions.",
                 [({}, sum(lag.values()))])
    if sink_stats is not None:
        w.family("distillguard_sink_pending_rows", "gauge", "Rows buffered by the ClickHouse sink, not yet inserted.",
                 [({}, sink_stats.get("pending_rows", 0))])
        w.family("distillguard_sink_inserted_rows_total", "counter", "Rows inserted into ClickHouse, by table.",
                 [({"table": t}, n) for t, n in sorted((sink_stats.get("inserted") or {}).items())])
        w.family("distillguard_sink_retries_total", "counter", "Failed ClickHouse inserts that were retried.",
                 [({}, sink_stats.get("retries", 0))])
        w.family("distillguard_sink_skipped_messages_total", "counter",
                 "Malformed sink messages, sent to the sink's dead-letter topic.",
                 [({}, sink_stats.get("skipped_messages", 0))])
        w.family("distillguard_sink_consumer_restarts_total", "counter",
                 "Sink consumers closed and made again because records waited and none was read (DG_SINK_STALL_S).",
                 [({}, sink_stats.get("consumer_restarts", 0))])
        w.family("distillguard_sink_dead_letter_rows_total", "counter",
                 "Rows ClickHouse rejected for good, sent to the sink's dead-letter topic, by table.",
                 [({"table": t}, n) for t, n in sorted((sink_stats.get("dead_letter_rows") or {}).items())])
    return w.text()


def faust_lag(app: Any, topics: Iterable[str]) -> dict[tuple[str, int], int] | None:
    """Consumer lag per assigned partition of ``topics`` from a running Faust app; None if unknown."""
    try:
        consumer = app.consumer
        wanted = set(topics)
        out: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            if tp.topic not in wanted:
                continue
            high = consumer.highwater(tp)
            if high is None:
                continue
            committed = consumer._committed_offset.get(tp)
            if committed is None:
                read = consumer._read_offset.get(tp)
                committed = read + 1 if read is not None else None
            if committed is None:
                continue
            out[(tp.topic, tp.partition)] = max(0, int(high) - int(committed))
        return out
    except Exception:  # not started yet, rebalancing, or internals changed: no lag rather than no page
        return None
