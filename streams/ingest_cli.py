"""``distillguard ingest``: gateway logs (LiteLLM, OpenTelemetry GenAI spans) → contract-v1 events.

To Kafka (``--kafka``: the requests topic, keyed by account id) or to a JSONL
file that ``distillguard replay`` reads. Bad records are counted by reason
and reported on stderr; they never stop the run.
"""
from __future__ import annotations

import gzip
import sys
from collections import Counter
from pathlib import Path

import orjson

from distillguard.schemas.adapters import SOURCES, adapt_bytes
from distillguard.schemas.event import BadEvent


def add_arguments(p) -> None:
    p.add_argument("--from", dest="source", required=True, choices=SOURCES,
                   help="log format: litellm (StandardLoggingPayload per line) or otel "
                        "(OTLP/JSON export or one span per line)")
    p.add_argument("input", help="input file, JSONL (or .gz); '-' for stdin")
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

    if args.input != "-" and not Path(args.input).is_file():
        raise UserError(f"input file {args.input} does not exist")
    bad: Counter = Counter()
    shown = 0
    good = 0

    def events():
        nonlocal shown, good
        for line_no, line in enumerate(_lines(args.input), 1):
            if not line.strip():
                continue
            for item in adapt_bytes(args.source, line):
                if isinstance(item, BadEvent):
                    bad[item.reason] += 1
                    if shown < 5:
                        print(f"line {line_no}: {item.reason}: {item.detail[:200]}", file=sys.stderr)
                        shown += 1
                    continue
                good += 1
                yield item

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
    print(summary, file=sys.stderr)
    return 0
