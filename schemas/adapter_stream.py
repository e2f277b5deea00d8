"""Gateway records as a stream: the state a mapping needs between records. No I/O, no clock.

:class:`StreamAdapter` is what the ingest command, the topic adapters, the
OTLP receiver and the tests drive: bytes (or decoded documents) in, contract
events and :class:`BadEvent` s out, with per-record counts. It adds to the
stateless mappings of ``schemas.adapters``:

- a **dedupe window** (:class:`RecentIds`): LiteLLM may log one call twice
  with the same ``id``, an OTLP exporter retries a whole export after a
  timeout; an event id seen among the last ``dedupe_window`` ids is counted
  as ``duplicate`` and not forwarded. Bounded, so not a guarantee: the
  detector downstream should dedupe too.
- the **span/log join** (:class:`SpanLogJoiner`): an OpenTelemetry span
  without its prompt waits up to ``join_timeout_s`` for log records with its
  trace and span id; one whose logs never come (no-content mode, or logs not
  exported) is forwarded content-less and counted ``join_timeout``; log
  records whose span never comes are counted ``orphan_logs``.

The caller passes the time (``now``, seconds, any monotonic clock) and calls
:meth:`StreamAdapter.expire` now and then, and :meth:`StreamAdapter.flush` at
the end of a file.
"""
from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from .adapter_base import UNMAPPED
from .adapters import SOURCES, from_litellm
from .event import BadEvent
from .otel_adapter import from_otel_span, is_logs_export, join_key, span_has_content, split_logs, split_spans
from .redaction import REDACTED_FIELD

Item = dict[str, Any] | BadEvent


class RecentIds:
    """The last ``size`` distinct ids, oldest forgotten first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, key: str) -> bool:
        """True if ``key`` is among the recent ids; remembers it either way."""
        if key in self._ids:
            return True
        self._ids[key] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False

    def forget(self, key: str) -> None:
        self._ids.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(slots=True)
class _Pending:
    since: float
    span: dict | None = None
    resource: dict | None = None
    logs: list = field(default_factory=list)


class SpanLogJoiner:
    """Spans waiting for their log records and log records waiting for their span, by
    (trace id, span id); at most ``max_pending`` keys (the oldest is released early)."""

    def __init__(self, timeout_s: float, max_pending: int) -> None:
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[str, str], _Pending] = OrderedDict()
        self._done = RecentIds(max_pending)   # spans already forwarded: their later logs are dropped
        self.stats: Counter = Counter()

    def span_done(self, key: tuple[str, str]) -> None:
        """A span forwarded without waiting (its prompt was on the span): drop its logs."""
        p = self._pending.pop(key, None)
        if p is not None:
            self.stats["logs_after_span"] += len(p.logs)
        self._done.seen(key)

    def add_span(self, key: tuple[str, str], span: dict, resource: dict | None,
                 now: float) -> list[tuple[dict, dict | None, list]]:
        """A span without content: ready (with its logs) if they came first, else it waits."""
        p = self._pending.get(key)
        if p is not None and p.logs:
            del self._pending[key]
            self._done.seen(key)
            self.stats["joined"] += 1
            return [(span, resource, p.logs)]
        self._pending[key] = _Pending(now, span, resource)
        return self._overflow()

    def add_log(self, key: tuple[str, str], record: dict, now: float) -> list[tuple[dict, dict | None, list]]:
        """A log record: joins a waiting span (which is then ready), else waits for it."""
        if key in self._done:
            self.stats["logs_after_span"] += 1
            return []
        p = self._pending.get(key)
        if p is None:
            p = self._pending[key] = _Pending(now)
        p.logs.append(record)
        if p.span is not None:
            del self._pending[key]
            self._done.seen(key)
            self.stats["joined"] += 1
            return [(p.span, p.resource, p.logs)]
        return self._overflow()

    def expire(self, now: float) -> list[tuple[dict, dict | None, list]]:
        """Release what waited longer than the timeout (spans without logs: content-less)."""
        out = []
        while self._pending:
            key, p = next(iter(self._pending.items()))
            if now - p.since < self.timeout_s:
                break
            del self._pending[key]
            self._done.seen(key)
            out.extend(self._release(p))
        return out

    def flush(self) -> list[tuple[dict, dict | None, list]]:
        out = []
        while self._pending:
            out.extend(self._release(self._pending.popitem(last=False)[1]))
        return out

    def _overflow(self) -> list[tuple[dict, dict | None, list]]:
        out = []
        while len(self._pending) > self.max_pending:
            out.extend(self._release(self._pending.popitem(last=False)[1]))
        return out

    def _release(self, p: _Pending) -> list[tuple[dict, dict | None, list]]:
        if p.span is None:
            self.stats["orphan_logs"] += len(p.logs)
            return []
        self.stats["join_timeout"] += 1
        return [(p.span, p.resource, p.logs)]

    def __len__(self) -> int:
        return len(self._pending)


class StreamAdapter:
    """One source's records → contract events, with dedupe and (OpenTelemetry) the span/log join.

    ``stats`` counts per record: ``forwarded`` (of which ``content_less``), ``duplicate``,
    ``dlq_<reason>``, and for OpenTelemetry ``joined``, ``join_timeout``, ``orphan_logs`` and
    ``logs_after_span`` (logs of a span already forwarded, e.g. content both on spans and in logs).
    """

    def __init__(self, source: str, dedupe_window: int = 100_000, join_timeout_s: float = 5.0,
                 max_pending: int = 10_000) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; one of {SOURCES}")
        self.source = source
        self.recent = RecentIds(dedupe_window)
        self.joiner = SpanLogJoiner(join_timeout_s, max_pending)
        self._stats: Counter = Counter()

    @property
    def stats(self) -> Counter:
        return self._stats + self.joiner.stats

    def feed(self, raw: bytes, now: float) -> list[Item]:
        """One line / message (JSON) → the events and bad records it makes ready now."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            return self.stats_add([BadEvent("invalid_json", str(err)[:200])])
        return self.feed_doc(doc, now)

    def feed_doc(self, doc: Any, now: float) -> list[Item]:
        """One decoded document: a LiteLLM payload, an OTLP/JSON trace or logs export, or a span."""
        if self.source == "litellm":
            return self._out([self._map(from_litellm, doc)])
        ready: list = []
        if is_logs_export(doc):
            for record in split_logs(doc):
                key = join_key(record)
                if key is None:
                    ready.append(BadEvent(UNMAPPED, "log record without trace and span id"))
                else:
                    ready.extend(self._mapped(self.joiner.add_log(key, record, now)))
            return self._out(ready)
        for resource, span in split_spans(doc):
            key = join_key(span) if isinstance(span, dict) else None
            if key is None or span_has_content(span):
                if key is not None:
                    self.joiner.span_done(key)
                ready.append(self._map(from_otel_span, span, resource))
            else:
                ready.extend(self._mapped(self.joiner.add_span(key, span, resource, now)))
        return self._out(ready)

    def expire(self, now: float) -> list[Item]:
        """Spans whose logs did not come within the timeout, content-less."""
        return self._out(self._mapped(self.joiner.expire(now)))

    def flush(self) -> list[Item]:
        """Everything still waiting (end of input)."""
        return self._out(self._mapped(self.joiner.flush()))

    def forget(self, event_ids) -> None:
        """Events that were not delivered after all: a retry of them is not a duplicate."""
        for event_id in event_ids:
            self.recent.forget(event_id)

    @staticmethod
    def _map(fn, record, *args) -> Item:
        """``fn(record, *args)``; a bad record comes back as a BadEvent that keeps the record
        (``record``) for a dead letter of its own (one export may hold good and bad ones, and a
        span released by the joiner has outlived the message it came in)."""
        try:
            return fn(record, *args)
        except BadEvent as err:
            err.record = record
            return err

    def _mapped(self, joined: list[tuple[dict, dict | None, list]]) -> list[Item]:
        return [self._map(from_otel_span, span, resource, logs) for span, resource, logs in joined]

    def stats_add(self, items: list[BadEvent]) -> list[Item]:
        """Count records the caller rejected before mapping (e.g. too large)."""
        for err in items:
            self._stats[f"dlq_{err.reason}"] += 1
        return list(items)

    def _out(self, items: list[Item]) -> list[Item]:
        out: list[Item] = []
        for item in items:
            if isinstance(item, BadEvent):
                self._stats[f"dlq_{item.reason}"] += 1
            elif self.recent.seen(item["event_id"]):
                self._stats["duplicate"] += 1
                continue
            else:
                self._stats["forwarded"] += 1
                if item.get(REDACTED_FIELD):
                    self._stats["content_less"] += 1
            out.append(item)
        return out
