"""The bench's Kafka helpers on the real broker: the worker runs' events are copied into their
topic message by message, each into its own partition with its key and value."""
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from distillguard.streams.bench import bench_events, copy_topic, create_topic, delete_topics, produce
from distillguard.streams.kafka_config import client_config

pytestmark = pytest.mark.integration


def read_all(settings, topic: str, n: int) -> list[tuple[int, bytes, bytes]]:
    c = Consumer(client_config(settings, **{"group.id": f"t-read-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False}))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
        got = []
        for _ in range(60):
            got += [(m.partition(), m.key(), m.value()) for m in c.consume(1000, timeout=0.5) if not m.error()]
            if len(got) >= n:
                break
        return got
    finally:
        c.close()


def test_copy_topic_keeps_every_message_in_its_partition(isolated_settings):
    settings = isolated_settings
    prefix = f"bench-t{uuid.uuid4().hex[:8]}"
    source, dest = f"{prefix}.requests", f"{prefix}.requests.live"
    try:
        for topic in (source, dest):
            create_topic(settings, topic, settings.partitions)
        assert produce(settings, source, bench_events(300)) == 300
        copy_topic(settings, source, dest, 300)
        original = read_all(settings, source, 300)
        copied = read_all(settings, dest, 300)
        assert len(copied) == 300 and sorted(copied) == sorted(original)
        assert len({p for p, _k, _v in copied}) > 1   # spread over partitions, as the source

        with pytest.raises(RuntimeError, match=r"copied 300/301 messages of .*requests in 2s"):
            copy_topic(settings, source, dest, 301, timeout=2)
    finally:
        delete_topics(settings, prefix)
