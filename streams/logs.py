"""Logging a platform can read: one format for our lines, Faust's, aiokafka's and librdkafka's.

``DG_LOG_FORMAT=text`` (default) prints ``time level component: message``;
``json`` prints one object per line with the stable fields ``time`` (ISO 8601,
UTC), ``level``, ``component``, ``message`` and, where a line has them,
``counts`` (``log.info(..., extra={"counts": {...}})``). librdkafka's lines
reach Python logging through the confluent-kafka ``logger`` config (see
``kafka_io.client_config``), never as raw ``%N|...`` console lines.
Standard library only (the CLI configures logging before any command runs).
"""
from __future__ import annotations

import json
import logging
import logging.config
import time

# logger name prefix -> component shown in every line
_COMPONENTS = (("distillguard.kafka", "kafka"), ("distillguard.", ""), ("aiokafka", "kafka"),
               ("faust", "faust"), ("mode", "faust"))
KAFKA_LOGGER = "distillguard.kafka"          # librdkafka (confluent-kafka clients)
PROBE_LOGGER = "distillguard.kafka.probe"    # clients that only probe: their failure is our own line
_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "error": "ERROR"}


def component(name: str) -> str:
    for prefix, comp in _COMPONENTS:
        if name.startswith(prefix):
            return comp or name.removeprefix(prefix).split(".")[0]
    return name.split(".")[0] or "root"


def _time(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, component, message (+ counts, error)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": _time(record), "level": record.levelname.lower(), "component": component(record.name),
               "message": record.getMessage()}
        for extra in ("counts", "settings"):
            value = getattr(record, extra, None)
            if value:
                doc[extra] = value
        if record.exc_info and record.exc_info[1] is not None:
            doc["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"[:500]
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``2026-12-01T06:50:00.123Z info    worker: message key=value ...``"""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_time(record)} {record.levelname.lower():<7} {component(record.name)}: {record.getMessage()}"
        counts = getattr(record, "counts", None)
        if counts:
            line += " " + " ".join(f"{k}={v}" for k, v in counts.items())
        if record.exc_info and record.exc_info[1] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return line


class TransientKafkaFilter(logging.Filter):
    """librdkafka warns about conditions it retries by itself (``GETPID ... retrying`` while a
    fresh broker loads its coordinator): those are info, not warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (record.levelno == logging.WARNING and record.name.startswith(KAFKA_LOGGER)
                and "retrying" in record.getMessage()):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def logging_config(log_level: str = "info", log_format: str = "text") -> dict:
    """A ``logging.config.dictConfig`` document; the worker hands the same one to Faust."""
    level = _LEVELS.get(log_level, log_level.upper())
    quiet = "DEBUG" if level == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"dg": {"()": JsonFormatter if log_format == "json" else TextFormatter}},
        "filters": {"transient": {"()": TransientKafkaFilter}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "dg", "level": level,
                                 "stream": "ext://sys.stderr", "filters": ["transient"]}},
        "root": {"level": level, "handlers": ["default"]},
        "loggers": {
            # aiokafka logs every reconnect attempt at ERROR and group chatter at INFO: the worker's
            # own lines say what matters (waiting, ready, lag); its warnings and errors still show
            "aiokafka": {"level": quiet},
            # Faust's service-by-service start/stop lines and recovery tables: on with debug only
            "faust": {"level": quiet}, "mode": {"level": quiet},
            KAFKA_LOGGER: {"level": level},
            # the driver warns about each failed HTTP attempt; our own line (start-up wait, sink
            # retry, doctor) names the failure with its fix
            "clickhouse_connect": {"level": "DEBUG" if level == "DEBUG" else "ERROR"},
            # (clickhouse_connect sets "urllib3" itself when imported; the child logger is ours)
            "urllib3.connectionpool": {"level": "DEBUG" if level == "DEBUG" else "ERROR"},
            PROBE_LOGGER: {"level": "DEBUG" if level == "DEBUG" else "CRITICAL", "propagate": True},
        },
    }


def configure(log_level: str = "info", log_format: str = "text") -> dict:
    config = logging_config(log_level, log_format)
    logging.config.dictConfig(config)
    return config
