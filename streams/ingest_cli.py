"""``distillguard ingest``: gateway logs (LiteLLM, OpenTelemetry GenAI spans and log records)
→ contract-v1 events.

To Kafka (``--kafka``: the requests topic, keyed by account id) or to a JSONL
file that ``distillguard replay`` reads. Bad records are counted by reason
and reported on stderr; they never stop the run. OpenTelemetry traces and
logs may come in several files (the Collector's file exporter writes them
apart): log files are read first, so every span meets its prompt; a span
whose prompt is nowhere is ingested content-less. The summary says how many
events came without prompt text: detection is blind to their content.
"""
from __future__ import annotations

import gzip
import sys
from collections import Counter
from pathlib import Path

import orjson

from distillguard.schemas.adapter_stream import StreamAdapter
from distillguard.schemas.adapters import SOURCES
from distillguard.schemas.event import BadEvent
from distillguard.schemas.redaction import REDACTED_FIELD


def add_arguments(p) -> None:
    p.add_argument("--from", dest="source", required=True, choices=SOURCES,
                   help="log format: litellm (StandardLoggingPayload per line) or otel "
                        "(OTLP/JSON export or one span per line)")
    p.add_argument("input", nargs="+", help="input files, JSONL (or .gz); '-' for stdin; for otel, traces and "
                                            "logs files of the same run together")
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("--kafka", action="store_true", help="produce to DG_TOPIC_REQUESTS, keyed by account_id")
    dest.add_argument("--out", metavar="EVENTS_JSONL", help="write contract-v1 events here (JSONL)")
    p.add_argument("--topic", help="with --kafka: produce to this topic instead of DG_TOPIC_REQUESTS")


def _lines(path: str):
    if path == "-":
        yield from sys.stdin.buffer
        return
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        yield from f


def run(args) -> int:
    from .errors import UserError

    for path in args.input:
        if path != "-" and not Path(path).is_file():
            raise UserError(f"input file {path} does not exist")
    bad: Counter = Counter()
    shown = 0
    good = content_less = 0
    adapter = StreamAdapter(args.source)

    def checked(items, where):
        nonlocal shown, good, content_less
        for item in items:
            if isinstance(item, BadEvent):
                bad[item.reason] += 1
                if shown < 5:
                    print(f"{where}: {item.reason}: {item.detail[:200]}", file=sys.stderr)
                    shown += 1
                continue
            good += 1
            content_less += bool(item.get(REDACTED_FIELD))
            yield item

    def events():
        for path in _logs_first(args.input):
            for line_no, line in enumerate(_lines(path), 1):
                if line.strip():
                    yield from checked(adapter.feed(line, now=0.0), f"{path} line {line_no}")
        yield from checked(adapter.flush(), "end of input")

    if args.kafka:
        from .kafka_io import KafkaUnavailable, check_broker, produce_events
        from .settings import load_settings

        settings = load_settings()
        try:
            check_broker(settings)
        except KafkaUnavailable as err:
            raise UserError(str(err)) from None
        produce_events(settings, events(), progress=False, topic=args.topic or None)
        where = f"topic {args.topic or settings.topic_requests}"
    else:
        out_path = Path(args.out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "wb") as out:
            for ev in events():
                out.write(orjson.dumps(ev) + b"\n")
        where = str(out_path)
    summary = f"ingested {good} events from {args.source} logs to {where}"
    if bad:
        summary += f"; {sum(bad.values())} bad records (" + ", ".join(f"{r}: {n}" for r, n in bad.most_common()) + ")"
    stats = adapter.stats
    if stats["duplicate"]:
        summary += f"; {stats['duplicate']} duplicates dropped"
    if stats["orphan_logs"]:
        summary += f"; {stats['orphan_logs']} log records without their span"
    print(summary, file=sys.stderr)
    if content_less:
        print(f"warning: {content_less} of {good} events ({content_less / good:.0%}) carry no prompt text "
              "(redacted by the producer, or not captured): detection sees only their metadata "
              "(volume, timing, parameters, tokens, errors), not what they ask", file=sys.stderr)
    return 0


def _logs_first(paths: list[str]) -> list[str]:
    """OpenTelemetry log files before trace files (by their first line), so spans find their logs."""
    def is_logs(path: str) -> bool:
        if path == "-":
            return False
        first = next(iter(_lines(path)), b"")
        return b'"resourceLogs"' in first[:200]
    return sorted(paths, key=lambda p: not is_logs(p))
