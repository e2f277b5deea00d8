"""The ClickHouse sink on the real broker and the real embedded ClickHouse: rows ClickHouse
rejects for good, and messages that are not row batches, go to the sink's dead-letter topic
with the reason and are counted; the good rows around them are inserted; nothing wedges."""
import time

import orjson
import pytest

from distillguard.models.rows import AccountMinuteRow, DlqMinuteRow, columns
from distillguard.streams.clickhouse import COLUMNS, Store
from distillguard.streams.kafka_io import consume, ensure_topics, producer
from distillguard.streams.sink import Sink, dead_letter_topic, sink_messages

pytestmark = pytest.mark.integration


def test_every_row_class_is_its_tables_column_list():
    for table, cols in COLUMNS.items():
        assert cols and len(set(cols)) == len(cols), table
    assert COLUMNS["account_minute_in"] == columns(AccountMinuteRow)


def test_rejected_rows_go_to_the_dead_letter_topic_and_the_rest_is_inserted(isolated_settings):
    settings = isolated_settings
    ensure_topics(settings)
    minute = int(time.time()) // 60 * 60 - 3600
    good = [AccountMinuteRow(f"acct-{i}", minute, 1, 10, 20, 0, [i + 1], [1]) for i in range(6)]
    bad = AccountMinuteRow("acct-bad", minute, "many", 10, 20, 0, [1], [1])   # a string for a UInt64
    p = producer(settings)
    for value in sink_messages(good[:3] + [bad] + good[3:]) + sink_messages([DlqMinuteRow(minute, "x", 2)]):
        p.produce(settings.topic_sink, value=value)
    p.produce(settings.topic_sink, value=b"{not a row batch")
    p.produce(settings.topic_sink, value=orjson.dumps({"table": "dlq_minute", "rows": [[minute, "short"]]}))
    p.flush(30)

    store = Store(settings)
    store.migrate()
    sink = Sink(settings, store)
    sink.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            st = sink.stats()
            if st["inserted"].get("account_minute_in", 0) >= 6 and st["dead_letter_rows"] and st["skipped_messages"]:
                break
            time.sleep(0.5)
    finally:
        sink.stop()
    st = sink.stats()
    try:
        db = store.db
        accounts = {r[0] for r in store.query(f"SELECT account_id FROM {db}.account_minute").result_rows}
        dlq = store.query(f"SELECT sum(count) FROM {db}.dlq_minute").result_rows[0][0]
    finally:
        store.close()
    assert accounts == {r.account_id for r in good}
    assert dlq == 2
    assert st["inserted"]["account_minute_in"] == 6 and st["pending_rows"] == 0
    assert st["dead_letter_rows"] == {"account_minute_in": 1, "dlq_minute": 1}
    assert st["skipped_messages"] == 1

    letters = list(consume(settings, dead_letter_topic(settings), timeout=30, idle=5))
    reasons = sorted(dict(h)["dg-reason"] for _k, _v, h in letters)
    assert reasons == [b"malformed sink message", b"rejected", b"rejected"]
    rejected = [orjson.loads(v) for _k, v, h in letters if dict(h)["dg-reason"] == b"rejected"]
    by_table = {d["table"]: d for d in rejected}
    assert by_table["account_minute_in"]["rows"] == [bad.values()]
    assert "many" in by_table["account_minute_in"]["reason"]
    assert "2 values" in by_table["dlq_minute"]["reason"] or "3 values" in by_table["dlq_minute"]["reason"]


def test_messages_that_leave_no_row_are_committed_without_waiting_for_rows(isolated_settings):
    # only a malformed message: nothing to insert, so no insert's commit; its offset is committed
    # anyway, or a restarted sink would read it and dead-letter it again
    from confluent_kafka import Consumer, TopicPartition

    from distillguard.streams.kafka_config import client_config
    settings = isolated_settings
    ensure_topics(settings)
    p = producer(settings)
    p.produce(settings.topic_sink, value=b"{not a row batch", partition=0)
    p.flush(30)
    store = Store(settings)
    store.migrate()
    sink = Sink(settings, store)
    probe = Consumer(client_config(settings, **{"group.id": f"{settings.app_id}-sink"}))
    committed = lambda: probe.committed([TopicPartition(settings.topic_sink, 0)], timeout=10)[0].offset  # noqa: E731
    sink.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and committed() != 1:
            time.sleep(0.5)
        assert sink.stats()["skipped_messages"] == 1
        assert committed() == 1, "the malformed message's offset was never committed"
    finally:
        sink.stop()
        probe.close()
        store.close()
    assert len(list(consume(settings, dead_letter_topic(settings), timeout=30, idle=5))) == 1


def test_a_consumer_that_reads_nothing_while_rows_wait_is_made_again(isolated_env, monkeypatch):
    # DG_FAULT_SINK_DEAF pauses every partition the first consumer is given: it stays in the group,
    # answers, and fetches nothing, as librdkafka consumers have after a broker restart. The stall
    # watch sees rows wait with none read and no offset moving, and makes the consumer again.
    from distillguard.streams.settings import load_settings
    monkeypatch.setenv("DG_FAULT_SINK_DEAF", "1")
    settings = load_settings({**isolated_env, "DG_SINK_STALL_S": "3"})
    ensure_topics(settings)
    minute = int(time.time()) // 60 * 60 - 3600
    rows = [AccountMinuteRow(f"acct-{i}", minute, 1, 10, 20, 0, [i + 1], [1]) for i in range(4)]
    p = producer(settings)
    for value in sink_messages(rows):
        p.produce(settings.topic_sink, value=value)
    p.flush(30)
    store = Store(settings)
    store.migrate()
    sink = Sink(settings, store)
    sink.start()
    started = time.monotonic()
    try:
        deadline = started + 90
        while time.monotonic() < deadline and sink.stats()["inserted"].get("account_minute_in", 0) < 4:
            time.sleep(0.5)
        took = time.monotonic() - started
    finally:
        sink.stop()
        store.close()
    st = sink.stats()
    assert st["inserted"].get("account_minute_in", 0) == 4, st
    assert st["consumer_restarts"] == 1
    assert took >= 3   # not before the rows had waited DG_SINK_STALL_S


def test_a_quiet_topic_is_no_stall(isolated_env):
    # nothing waits: the watch asks the broker and never remakes the consumer
    from distillguard.streams.settings import load_settings
    settings = load_settings({**isolated_env, "DG_SINK_STALL_S": "1"})
    ensure_topics(settings)
    store = Store(settings)
    store.migrate()
    sink = Sink(settings, store)
    sink.start()
    try:
        time.sleep(5)
    finally:
        sink.stop()
        store.close()
    assert sink.stats()["consumer_restarts"] == 0
