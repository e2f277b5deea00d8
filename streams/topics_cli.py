"""``distillguard topics``: create the Kafka topics distillguard uses (idempotent)."""
from __future__ import annotations


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from .kafka_io import ensure_topics
    from .settings import load_settings

    created = ensure_topics(load_settings())   # KafkaUnavailable is a UserError: one line, exit 2
    print(f"created topics: {', '.join(created)}" if created else "all topics exist")
    return 0
