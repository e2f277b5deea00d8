"""Unit tests of the Faust wiring of cross-account detection (streams/cluster_agents.py), no broker."""
import orjson
from aiokafka.partitioner import DefaultPartitioner

from distillguard.streams.cluster_agents import _batch, batch_messages, link_partition


def test_link_partition_is_kafkas_default_partitioner_of_the_link_key():
    # observations sent by an earlier version (keyed by link key, partitioned by the producer)
    # and by this one (batched per partition) of one key reach the same linker
    for n in (1, 3, 4, 12):
        for i in range(300):
            key = f"pay:{i:016x}"
            assert link_partition(key, n) == DefaultPartitioner()(key.encode(), list(range(n)), [])
            assert link_partition(key, n) == link_partition(key, n)   # cached


def test_batch_messages_split_below_the_limit_and_keep_order():
    items = [{"k": f"net:{i}", "pad": "x" * 100} for i in range(500)]
    msgs = batch_messages(items, limit=4096)
    assert len(msgs) > 1 and all(len(m) <= 4096 for m in msgs)
    assert [x for m in msgs for x in _batch(m)] == items
    assert batch_messages(items[:3]) == [orjson.dumps(items[:3])]
    big = [{"pad": "y" * 10_000}]                       # one item larger than the limit: sent alone
    assert batch_messages(big, limit=4096) == [orjson.dumps(big)]


def test_readers_take_a_batch_or_the_single_object_form():
    assert _batch(b'[{"k": "a"}, {"k": "b"}]') == [{"k": "a"}, {"k": "b"}]
    assert _batch(b'{"k": "a"}') == [{"k": "a"}]       # one observation per message (earlier versions)
