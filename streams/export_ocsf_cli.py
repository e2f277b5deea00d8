"""``distillguard export-ocsf``: alert events (contract v1) as OCSF Detection Findings, JSONL."""
from __future__ import annotations

import sys
from pathlib import Path

import orjson

from distillguard.schemas import validate_alert

from .ocsf import to_ocsf


def add_arguments(p) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--in", dest="input", metavar="ALERTS_JSONL",
                     help="alert events, JSONL (e.g. the output of `distillguard replay`)")
    src.add_argument("--from-topic", nargs="?", const="", metavar="TOPIC",
                     help="read alerts from Kafka (default topic: DG_TOPIC_ALERTS) until idle")
    p.add_argument("--out", required=True, metavar="FILE", help="OCSF records, JSONL; '-' for stdout")
    p.add_argument("--idle", type=float, default=5.0, help="with --from-topic: stop after this many quiet seconds")
    p.add_argument("--timeout", type=float, default=60.0, help="with --from-topic: stop after this many seconds")


def _alerts_from_file(path: Path):
    with open(path, "rb") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                yield line_no, line


def _alerts_from_topic(args):
    from .kafka_io import check_broker, consume
    from .settings import load_settings

    settings = load_settings()
    check_broker(settings)   # KafkaUnavailable is a UserError: one line, exit 2
    topic = args.from_topic or settings.topic_alerts
    for n, (_key, value, _headers) in enumerate(consume(settings, topic, timeout=args.timeout, idle=args.idle), 1):
        yield n, value


def run(args) -> int:
    from .errors import UserError

    if args.input is not None:
        src = Path(args.input)
        if not src.is_file():
            raise UserError(f"input file {src} does not exist")
        records = _alerts_from_file(src)
    else:
        records = _alerts_from_topic(args)
    out = sys.stdout.buffer if args.out == "-" else None
    if out is None:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        out = open(args.out, "wb")
    written = bad = 0
    try:
        for where, raw in records:
            try:
                alert = orjson.loads(raw)
                errors = validate_alert(alert)
                if errors:
                    raise ValueError("; ".join(errors[:3]))
                out.write(orjson.dumps(to_ocsf(alert)) + b"\n")
                written += 1
            except (orjson.JSONDecodeError, ValueError) as err:
                bad += 1
                if bad <= 5:
                    print(f"record {where}: not a contract-v1 alert: {str(err)[:200]}", file=sys.stderr)
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        else:
            out.flush()
    print(f"wrote {written} OCSF detection findings" + (f", skipped {bad} bad records" if bad else ""),
          file=sys.stderr)
    return 0
