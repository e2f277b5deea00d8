"""The worker's Faust transport (streams/faust_transport.py): Faust selects it through its
transport registry, its fetch loop is still the one Faust ships, and a delivery that has to
wait behaves like Faust's (raced against a flow suspension, cancellable). And the worker's
stream (streams/faust_stream.py): selected by Faust's ``Stream`` setting, following the
Faust methods it was written against, giving batches, skipping what Faust
skips (without acking it).
Faust's own objects throughout (app, channel queue, messages, events); the real broker's
side is in test_pipeline.py and tests/faults/."""
import asyncio
import hashlib
import inspect
from contextlib import aclosing

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.producer import ProducerBuffer as FaustProducerBuffer

import faust
from faust import Stream as FaustStream
from faust.types.tuples import ConsumerMessage

from distillguard.streams import faust_stream, faust_transport
from distillguard.streams.app import create_app
from distillguard.streams.faust_transport import ResumedDelivery
from distillguard.streams.settings import load_settings


def test_faust_drain_loop_is_the_one_our_copy_follows():
    source = inspect.getsource(FaustConsumer._drain_messages)
    digest = hashlib.sha256(source.encode()).hexdigest()
    assert digest == faust_transport.UPSTREAM_DRAIN_SHA256, (
        "faust.transport.consumer.Consumer._drain_messages changed (a Faust upgrade?): "
        "streams/faust_transport.Consumer._drain_messages is a copy of it with only the per-message "
        "delivery replaced. Re-copy the new loop, keep `await deliver(callback, message)` in place of "
        "`wait_first(callback(message), suspend_flow.wait())`, then set UPSTREAM_DRAIN_SHA256 to "
        f"{digest}")


def test_the_worker_app_selects_our_consumer(tmp_path):
    settings = load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"})
    app = create_app(settings)
    assert type(app.transport) is faust_transport.Transport   # via the faust.transports entry point
    assert type(app.consumer) is faust_transport.Consumer     # the consumer the worker runs
    # the producer too: Faust's aiokafka producer with the buffer whose size reads no setting
    assert type(app.producer_transport) is faust_transport.Transport
    assert type(app.producer) is faust_transport.Producer
    assert type(app.producer.buffer) is faust_transport.ProducerBuffer and app.producer.buffer.threaded is False
    assert app.producer.buffer.app is app and app.producer.buffer.size == 0
    assert type(app.monitor) is faust_transport.QuietMonitor and app.conf.consumer_max_fetch_size == 4 << 20
    assert app.conf.Stream is faust_stream.BatchStream and isinstance(app.stream(app.channel()), faust_stream.BatchStream)


@pytest.mark.parametrize("name", sorted(faust_stream.UPSTREAM_SHA256))
def test_faust_stream_methods_are_the_ones_batch_stream_follows(name):
    digest = hashlib.sha256(inspect.getsource(getattr(FaustStream, name.split(".")[1])).encode()).hexdigest()
    assert digest == faust_stream.UPSTREAM_SHA256[name], (
        f"faust {name} changed (a Faust upgrade?): streams/faust_stream.BatchStream.take_batches does per "
        "event what it does (skip an older generation or a suspended flow, track, ack). Compare the two, "
        f"then set UPSTREAM_SHA256[{name!r}] to {digest}")


def _stream_app(tmp_path):
    app = create_app(load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"}))
    app.topics.add(app.topic("requests"))   # subscribed (below): its messages are tracked and acked
    app.flow_control.resume()   # as after a partition assignment
    return app


def _event(app, offset: int, generation: int | None = None):
    """An event of a message as the consumer makes them (``ConsumerMessage``: tracked for acks)."""
    message = ConsumerMessage("requests", 0, offset, 0.0, 0, [], b"k", b"v", None,
                              generation_id=app.consumer_generation_id if generation is None else generation)
    message.incref()   # one channel holds it, as the conductor counts
    return app.create_event(b"k", b"v", [], message)


async def _stream_of(app, events):
    """A stream of the app's stream class with ``events`` waiting in its channel's queue."""
    await app.topics._update_indices()   # the conductor's subscription step (no broker call here)
    stream = app.stream(app.channel())
    for e in events:
        stream.channel.queue.put_nowait(e)
    return stream


def test_take_batches_gives_full_batches_then_the_rest_after_within_and_acks_after_each(tmp_path):
    app = _stream_app(tmp_path)

    async def main():
        events = [_event(app, i) for i in range(5)]
        stream = await _stream_of(app, events)
        got = []
        async with aclosing(stream.take_batches(3, within=0.05)) as batches:
            async for batch in batches:
                # being processed: tracked (the stop waits for them), not acked yet
                assert all(e.message in app.consumer.unacked for e in batch)
                got.append(([e.message.offset for e in batch], [e.message.acked for e in events]))
                if len(got) == 2:
                    break
        return got, [e.message.acked and e.message not in app.consumer.unacked for e in events]

    got, acked_after = asyncio.run(main())
    assert got == [([0, 1, 2], [False] * 5), ([3, 4], [True, True, True, False, False])]
    # the loop left during the second batch, which is not acked: only asking for more acks one
    assert acked_after == [True, True, True, False, False]


def test_a_batch_whose_processing_raised_is_not_acked_and_its_offsets_are_not_committed(tmp_path):
    """Faust's iterators ack an event in a ``finally``: an agent that crashed on it would have its
    offset committed, the event never processed (nor its state saved)."""
    from faust.types import TP

    app = _stream_app(tmp_path)
    tp = TP("requests", 0)

    async def main():
        events = [_event(app, i) for i in range(5)]
        stream = await _stream_of(app, events)
        app.consumer._committed_offset[tp] = app.consumer._first_delivered[tp] = 0
        with pytest.raises(RuntimeError):
            async with aclosing(stream.take_batches(3, within=0.05)) as batches:
                async for batch in batches:
                    if batch[0].message.offset == 3:
                        raise RuntimeError("the detector failed on this batch")
        return [(e.message.acked, e.message in app.consumer.unacked) for e in events]

    assert asyncio.run(main()) == [(True, False)] * 3 + [(False, True)] * 2
    assert app.consumer._new_offset(tp) == 3   # a commit now takes offset 3: 3 and 4 are read again


def test_a_full_batch_takes_what_already_waits_up_to_backlog_max_without_waiting(tmp_path):
    app = _stream_app(tmp_path)

    async def main(queued: int):
        events = [_event(app, i) for i in range(queued)]
        stream = await _stream_of(app, events)
        got = []
        loop = asyncio.get_running_loop()
        async with aclosing(stream.take_batches(3, within=0.3, backlog_max=5)) as batches:
            started = loop.time()
            async for batch in batches:
                got.append([e.message.offset for e in batch])
                if sum(map(len, got)) == queued:
                    break
            return got, loop.time() - started

    # a backlog: batches past max_ (3) up to backlog_max (5), none waiting for `within`
    backlog, took = asyncio.run(main(8))
    assert backlog == [[0, 1, 2, 3, 4], [5, 6, 7]] and took < 0.3
    # four waiting: the full batch takes the fourth too, and does not wait for a fifth
    four, took = asyncio.run(main(4))
    assert four == [[0, 1, 2, 3]] and took < 0.3


def test_take_batches_skips_events_of_an_older_generation_without_acking_them(tmp_path):
    app = _stream_app(tmp_path)

    async def main():
        old = _event(app, 0, generation=app.consumer_generation_id - 1)
        stream = await _stream_of(app, [old, _event(app, 1)])
        async with aclosing(stream.take_batches(10, within=0.05)) as batches:
            async for batch in batches:
                return [e.message.offset for e in batch], old.message.acked, old.message in app.consumer.unacked

    # read before a rebalance: not processed, and neither acked (Faust's iterator acks it) nor
    # tracked: the seek that ends the rebalance reads it again
    assert asyncio.run(main()) == ([1], False, False)


def test_an_event_skipped_at_a_rebalance_does_not_let_the_commit_pass_its_re_read_copy(tmp_path):
    """After a revoke (Faust forgets the partition's acks), offsets 103..105 of a fetch made
    before it come out of the queue with the old generation; the seek then reads the partition
    again from the committed offset 100, and a batch has processed 100..102 while the re-read
    103..105 still wait in the queue. A commit may take 103, not 106: acked, the skipped copies
    let the commit pass the re-read ones, which the next queue clear (a rebalance, a stop) lost."""
    from faust.types import TP

    app = _stream_app(tmp_path)
    tp = TP("requests", 0)

    async def main():
        old = [_event(app, i, generation=app.consumer_generation_id - 1) for i in (103, 104, 105)]
        re_read = [_event(app, i) for i in range(100, 103)]
        stream = await _stream_of(app, old + re_read)
        consumer = app.consumer
        consumer._committed_offset[tp] = 100   # where the seek after the rebalance put it
        async with aclosing(stream.take_batches(3, within=0.05)) as batches:
            batch = await anext(batches)
            assert [e.message.offset for e in batch] == [100, 101, 102]
            consumer._first_delivered[tp] = 100   # the fetch loop's record of the re-read
            with pytest.raises(asyncio.TimeoutError):   # asking for the next acks this one
                await asyncio.wait_for(anext(batches), 0.2)
        return consumer._new_offset(tp)

    assert asyncio.run(main()) == 103


def test_a_batch_being_filled_when_a_rebalance_begins_goes_out_as_take_events_buffer_does(tmp_path):
    app = _stream_app(tmp_path)

    async def main():
        before = _event(app, 0)
        stream = await _stream_of(app, [before])
        async with aclosing(stream.take_batches(10, within=0.3)) as batches:
            async def rebalance():
                await asyncio.sleep(0.05)        # `before` is taken; the batch waits to fill
                app.consumer_generation_id += 1  # what Faust's assignment does
                stream.channel.queue.put_nowait(after := _event(app, 1))
                return after
            later = asyncio.ensure_future(rebalance())
            async for batch in batches:
                tracked = before.message in app.consumer.unacked   # the revoke's wait waits for it
                return [e.message.offset for e in batch], tracked, (await later).message.acked

    # taken while its generation was current: tracked at once and processed with the batch
    # (take_events' buffer behaves so; the rebalance fault test ran on that)
    assert asyncio.run(main()) == ([0, 1], True, False)


def test_take_batches_ends_with_the_channel_and_leaves_what_it_held_unacked(tmp_path):
    app = _stream_app(tmp_path)

    async def main():
        held = [_event(app, i) for i in range(2)]
        stream = await _stream_of(app, held)
        batches = []

        async def consume():
            async for batch in stream.take_batches(3, within=30):
                batches.append(batch)
        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.05)   # it holds two events and waits for a third
        await stream.channel.throw(StopAsyncIteration())   # what Faust does when the stream stops
        await asyncio.wait_for(task, 5)
        return batches, [(e.message.acked, e.message in app.consumer.unacked) for e in held]

    batches, held = asyncio.run(main())
    # never given out, so never acked: the offsets stay uncommitted and are read again
    assert batches == [] and held == [(False, True), (False, True)]


def test_a_resumed_delivery_finishes_where_the_coroutine_stopped():
    async def main():
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        queue.put_nowait("first")
        steps = []

        async def deliver():
            steps.append("started")
            await queue.put("second")     # full: waits for a free slot
            steps.append("delivered")
            return "done"

        coro = deliver()
        waiting_on = coro.send(None)      # one step in place, as the consumer does
        assert steps == ["started"]
        task = asyncio.ensure_future(ResumedDelivery(coro, waiting_on))
        await asyncio.sleep(0)
        assert not task.done()
        assert queue.get_nowait() == "first"   # room: the delivery goes on, once
        assert await task == "done"
        assert steps == ["started", "delivered"] and queue.get_nowait() == "second"

    asyncio.run(main())


def test_a_resumed_delivery_is_cancelled_like_a_task():
    async def main():
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        queue.put_nowait("first")
        cleaned = []

        async def deliver():
            try:
                await queue.put("second")
            finally:
                cleaned.append(True)

        coro = deliver()
        task = asyncio.ensure_future(ResumedDelivery(coro, coro.send(None)))
        await asyncio.sleep(0)
        task.cancel()                          # what wait_first does when the flow is suspended
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cleaned == [True] and queue.qsize() == 1   # the message was not put

    asyncio.run(main())


def test_the_scheme_is_registered_as_an_entry_point():
    faust_transport.check_registered()   # raises a one-line UserError on a stale install


def test_the_consumer_delivers_in_place_and_abandons_a_waiting_delivery_when_flow_stops(tmp_path):
    async def main():
        app = create_app(load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"}))
        consumer = app.consumer
        consumer.resume_flow()
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)

        async def callback(message):           # Faust's conductor: put into the stream's buffer
            await queue.put(message)

        tasks_before = len(asyncio.all_tasks())
        await consumer._deliver(callback, "m1")
        assert queue.get_nowait() == "m1"
        assert len(asyncio.all_tasks()) == tasks_before   # no task for a delivery that did not wait

        queue.put_nowait("full")
        waiting = asyncio.ensure_future(consumer._deliver(callback, "m2"))
        await asyncio.sleep(0.05)
        assert not waiting.done()                # waits on the full buffer...
        consumer.stop_flow()                     # ...until a rebalance suspends the flow
        await asyncio.wait_for(waiting, 5)
        await asyncio.sleep(0)
        assert queue.get_nowait() == "full"      # room again, yet m2 is abandoned for good:
        await asyncio.sleep(0.05)
        assert queue.empty()                     # it is read again from the committed offset

    asyncio.run(main())


def test_faust_still_clears_stream_queues_after_its_end_of_recovery_seek():
    """What the consumer's second seek is for (faust_transport.Consumer's docstring): at the end
    of a recovery Faust seeks to the committed offsets and only then resumes the flow, and
    resuming the flow empties every stream queue. If Faust stops doing either, the second seek
    may be unnecessary; if it changes the order, it must be looked at again."""
    from faust.tables.recovery import Recovery
    from mode.utils.queues import FlowControlEvent, FlowControlQueue

    async def main():
        flow = FlowControlEvent()
        queue = FlowControlQueue(flow_control=flow, clear_on_resume=True)
        flow.resume()
        queue.put_nowait("fetched while the seek ran")
        flow.resume()                         # Faust's end of recovery, after the seek
        return queue.qsize()

    assert asyncio.run(main()) == 0
    for method in (Recovery._resume_streams, Recovery.on_recovery_completed):
        source = inspect.getsource(method)
        assert source.index("perform_seek()") < source.index("flow_control.resume()"), method.__name__


def test_each_faust_seek_is_repeated_at_the_next_fetch_round(tmp_path):
    settings = load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"})
    consumer = create_app(settings).consumer
    seeks = []

    async def seek_to_committed():
        seeks.append("seek")
        return {}

    consumer.seek_to_committed = seek_to_committed    # the broker round trip, on this instance
    assert not consumer._seek_again
    asyncio.run(consumer.perform_seek())              # what Faust's recovery calls
    assert seeks == ["seek"] and consumer._seek_again  # the drain loop seeks again, then clears it


@pytest.mark.parametrize("key,value", [(b"acct", b'{"a": 1}'), (None, b"\x00\xff"), (b"k", None), (b"", b"")])
def test_raw_schema_decodes_what_fausts_raw_serializer_decodes(tmp_path, key, value):
    app = _stream_app(tmp_path)
    message = ConsumerMessage("requests", 0, 7, 0.0, 0, [("h", b"1")], key, value, None)
    faust_raw = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    async def main():
        ours = await faust_stream.RawSchema().compile(app)(message)
        theirs = await faust_raw.compile(app)(message)
        return ours, theirs

    ours, theirs = asyncio.run(main())
    assert type(ours) is type(theirs)
    assert (ours.key, ours.value, ours.headers, ours.message) == (theirs.key, theirs.value, theirs.headers, message)


def test_the_worker_reads_its_topics_through_the_raw_schema(tmp_path):
    app = create_app(load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"}))
    read = {agent.channel.get_topic_name(): type(agent.channel.schema) for agent in app.agents.values()}
    assert read and set(read.values()) == {faust_stream.RawSchema}, read


def test_records_fetched_before_a_seek_moved_their_partition_back_wait_for_the_second_seek(tmp_path):
    """Faust's end-of-recovery seek ends while the fetch loop delivers a fetch made before it:
    the partition's read offset goes back to the committed offset (100) and its next record
    (104) looked like a gap 101..104, which Faust marks as acked. Those offsets were read and
    acked for real as well, so each was twice in the acked list and the committed offset moved
    one offset per commit (a restarted worker did not commit what it had read in 300 s,
    tests/faults/test_kill_worker.py). The records after the seek now wait for the second
    seek, and one commit takes everything that was acked."""
    from faust.types import TP

    consumer = _stream_app(tmp_path).consumer
    tp = TP("requests", 0)
    committed = 100

    async def seek_to_committed():   # the broker round trip: every partition to its committed offset
        return {tp: committed}

    consumer.seek_to_committed = seek_to_committed
    consumer._committed_offset[tp] = committed
    # both rounds fetch 100..109 (from the committed offset)
    delivered, rounds, commit = _two_fetch_rounds(consumer, tp, lambda _round: range(100, 110), seek_after=103)
    assert commit == {tp: 110}             # one commit takes everything acked (was 102, then 103, ...)
    assert not consumer._gap[tp]           # nothing marked acked without being read
    # 104..109 of the first fetch came after the seek: not delivered, read after the second seek
    assert delivered == [100, 101, 102, 103] + list(range(100, 110))
    assert rounds[1] == {tp: committed}   # the second round starts from the second seek


def _two_fetch_rounds(consumer, tp, fetch, seek_after: int, acked=lambda _round, _offset: True):
    """The consumer's fetch loop, run for two fetch rounds of `tp`: round r (1, 2) fetches the
    offsets `fetch(r)`; Faust's end-of-recovery seek (its own task) ends right after `seek_after`
    of round 1; the stream processes each delivered record and acks it if `acked(r, offset)`.
    Returns the offsets delivered, the read offsets at the start of each round, and the commit."""
    app = consumer.app

    class Fetcher:   # the fetcher service: stops the loop after two fetch rounds
        _stopped = asyncio.Event()

    rounds: list = []
    delivered: list = []

    async def getmany(timeout):
        rounds.append(dict(consumer._read_offset))
        for offset in fetch(len(rounds)):
            yield tp, ConsumerMessage("requests", 0, offset, 0.0, 0, [], b"k", b"v", None,
                                      generation_id=app.consumer_generation_id)
            if len(rounds) == 1 and offset == seek_after:
                await consumer.perform_seek()
        if len(rounds) == 2:
            Fetcher._stopped.set()

    async def callback(msg):
        delivered.append(msg.offset)
        if acked(len(rounds), msg.offset):
            consumer.ack(msg)

    async def main():
        await app.topics._update_indices()   # `requests` is an acking topic
        consumer.getmany = getmany
        consumer.callback = callback
        await consumer._drain_messages(Fetcher())
        return consumer._filter_committable_offsets([tp])

    return delivered, rounds, asyncio.run(main())


def _acked_consumer(tmp_path, committed, first_delivered, acked, gap=None):
    """The app's consumer with `acked` acked on requests/0 after a seek to `committed` (None: no
    committed offset) whose first delivered record was `first_delivered`."""
    from faust.types import TP

    consumer = _stream_app(tmp_path).consumer
    tp = TP("requests", 0)
    consumer._committed_offset[tp] = committed
    if first_delivered is not None:
        consumer._first_delivered[tp] = first_delivered
    consumer._acked[tp] = list(acked)
    consumer._acked_index[tp] = set(acked)
    if gap:
        consumer._gap[tp].addi(*gap)
    return consumer, tp


def test_no_commit_past_a_delivered_head_offset_that_is_not_acked(tmp_path):
    """faust-streaming #606: with 2585 committed and 2586..2589 acked, Faust's own rule commits
    2590, past 2585, which was delivered and is still being processed (or was cleared by a
    rebalance): it would never be read again. Ours waits for 2585's ack."""
    consumer, tp = _acked_consumer(tmp_path, 2585, 2585, range(2586, 2590))
    assert FaustConsumer._new_offset(consumer, tp) == 2590     # Faust's rule: 2585 is lost
    consumer, tp = _acked_consumer(tmp_path, 2585, 2585, range(2586, 2590))
    assert consumer._new_offset(tp) is None
    report = consumer.offset_report()   # the worker's status page shows the hold, and for how long
    assert report["commits_held"] == 1 and list(report["held_for_s"]) == ["requests:0"]
    asyncio.run(consumer.app.topics._update_indices())   # `requests` is an acking topic
    assert consumer.ack(ConsumerMessage("requests", 0, 2585, 0.0, 0, [], b"k", b"v", None))
    assert consumer._new_offset(tp) == 2590                    # acked: one commit takes them all
    assert consumer.offset_report()["held_for_s"] == {}


def test_a_head_offset_the_log_skipped_is_committed_past_as_faust_does(tmp_path):
    # the first record after the seek was 2586: 2585 is a transaction marker or compacted away
    consumer, tp = _acked_consumer(tmp_path, 2585, 2586, range(2586, 2590))
    assert consumer._new_offset(tp) == 2590
    # a gap Faust recorded between two delivered records (2585 skipped by the log)
    consumer, tp = _acked_consumer(tmp_path, 2585, 2580, range(2586, 2590), gap=(2585, 2586))
    assert consumer._new_offset(tp) == 2590
    # before any record was delivered since the seek, Faust's rule stands
    consumer, tp = _acked_consumer(tmp_path, 2585, None, range(2586, 2590))
    assert consumer._new_offset(tp) == 2590


def test_a_partition_never_committed_has_where_its_seek_put_it_as_head(tmp_path):
    consumer, tp = _acked_consumer(tmp_path, None, 40, range(41, 45))
    assert FaustConsumer._new_offset(consumer, tp) == 45       # Faust checks nothing before a commit
    consumer, tp = _acked_consumer(tmp_path, None, 40, range(41, 45))
    consumer._seek_start[tp] = 40
    assert consumer._new_offset(tp) is None
    consumer, tp = _acked_consumer(tmp_path, None, 40, range(40, 45))
    consumer._seek_start[tp] = 40
    assert consumer._new_offset(tp) == 45


def _seeking_consumer(tmp_path, committed: dict):
    """The app's consumer with the broker round trips of Faust's consumer thread replaced: the
    seek to the committed offsets returns `committed`; seeks are recorded."""
    app = _stream_app(tmp_path)
    consumer = app.consumer
    seeks: list = []

    class Thread:
        async def seek_to_committed(self):
            return dict(committed)

        async def seek_wait(self, partitions):
            seeks.append(dict(partitions))

    asyncio.run(app.topics._update_indices())   # `requests` is an acking topic, changelogs are not
    consumer._thread = Thread()
    return consumer, seeks


def test_seeks_move_a_never_committed_partition_back_to_what_was_not_processed(tmp_path):
    """aiokafka's seek leaves a partition with no committed offset where it is. Ours moves it
    to the first offset delivered since the last seek that is not acked, holds its records until
    the second seek like the others', and the second seek moves it there again; a partition
    nothing was delivered from stays where it is."""
    from faust.types import TP

    committed_tp, read_tp, unread_tp, zero_tp, table_tp = (
        TP("requests", 0), TP("requests", 1), TP("requests", 2), TP("requests", 3), TP("app-table-changelog", 0))
    consumer, seeks = _seeking_consumer(tmp_path, {committed_tp: 100, read_tp: None, unread_tp: None,
                                                   zero_tp: 0, table_tp: None})
    consumer._first_delivered.update({read_tp: 5, zero_tp: 0, table_tp: 0})
    consumer._acked[read_tp] = [5, 6, 7, 9]     # 8 was delivered and cleared
    consumer._acked[zero_tp] = [1, 2]           # 0 is still being processed
    asyncio.run(consumer.perform_seek())
    assert seeks == [{read_tp: 8, zero_tp: 0}]
    assert consumer._seek_start == {read_tp: 8, zero_tp: 0}
    assert consumer.offset_report()["uncommitted_partitions_moved_back"] == 2
    assert consumer._moved_back == {committed_tp, read_tp, zero_tp}   # held until the second seek
    assert consumer._first_delivered == {}
    assert consumer._read_offset[committed_tp] == 100 and consumer._seek_again
    # the second seek, nothing delivered in between: the same place again
    asyncio.run(consumer.perform_seek())
    assert seeks[1] == {read_tp: 8, zero_tp: 0}


def test_a_revoked_partition_assigned_again_is_read_from_what_was_not_processed(tmp_path):
    from faust.types import TP

    tp = TP("requests", 0)
    consumer, seeks = _seeking_consumer(tmp_path, {tp: None})
    consumer._first_delivered[tp] = 10
    consumer._acked[tp] = [10, 11, 12]
    asyncio.run(consumer.on_partitions_revoked({tp}))   # Faust forgets the acks here...
    assert not consumer._acked.get(tp) and tp not in consumer._first_delivered
    consumer._acked[tp] = [13]                           # ...the batch in flight is acked after
    asyncio.run(consumer.perform_seek())                 # assigned again: the recovery's seek
    assert seeks == [{tp: 14}]
    assert consumer._revoked_progress == {}


def test_faust_methods_the_consumer_and_buffer_build_on_are_the_ones_they_follow():
    upstream = {"Consumer": FaustConsumer, "ProducerBuffer": FaustProducerBuffer}
    for name, expected in faust_transport.UPSTREAM_SHA256.items():
        cls, method = name.split(".")
        source = vars(upstream[cls]).get(method) or getattr(upstream[cls], method)
        source = getattr(source, "fun", source)   # a mode ``Service.task`` wraps its function
        digest = hashlib.sha256(inspect.getsource(source).encode()).hexdigest()
        assert digest == expected, (
            f"faust {name} changed (a Faust upgrade?): faust_transport.{cls} builds on it "
            f"(its docstring says how). Check that it still holds, then set UPSTREAM_SHA256[{name!r}] to {digest}")


def test_a_never_committed_partition_is_read_again_after_a_rebalance_clear(tmp_path):
    """A partition with nothing committed: 2 and 3 were delivered when Faust's end-of-recovery
    seek ended and were then cleared (never acked). Both seeks move the partition back to 2, the
    records fetched before the second are held, and 2.. are read and acked again: one commit
    takes 0..9. (aiokafka's own seek left it where it was, and Faust committed past what was
    cleared.)"""
    from faust.types import TP

    tp = TP("requests", 0)
    consumer, seeks = _seeking_consumer(tmp_path, {tp: None})
    # round 1 fetches 0..9, round 2 from where the second seek put the partition; 2 and 3 of the
    # first round were cleared
    delivered, _, commit = _two_fetch_rounds(consumer, tp, lambda r: range(10) if r == 1 else range(seeks[-1][tp], 10),
                                             seek_after=3, acked=lambda r, offset: not (r == 1 and offset in (2, 3)))
    assert seeks == [{tp: 2}, {tp: 2}]
    assert delivered == [0, 1, 2, 3] + list(range(2, 10))
    assert consumer._first_delivered == {tp: 2}
    assert commit == {tp: 10}


def test_a_second_seek_that_fails_holds_the_partitions_and_is_tried_again(tmp_path):
    """A rebalance that begins between Faust's seek and the second one takes the partitions
    (aiokafka: "No partitions are currently assigned"). The fetch loop goes on, the partitions
    the first seek moved back stay held, and the next round seeks again."""
    from faust.types import TP

    tp = TP("requests", 0)
    consumer, _ = _seeking_consumer(tmp_path, {tp: 100})
    asyncio.run(consumer.perform_seek())
    assert consumer._moved_back == {tp} and consumer._seek_again

    class Rebalancing:
        async def seek_to_committed(self):
            raise AssertionError("No partitions are currently assigned")

    working = consumer._thread
    consumer._thread = Rebalancing()
    asyncio.run(consumer._seek_once_more())
    assert consumer._moved_back == {tp} and consumer._seek_again      # held, tried again
    assert consumer.offset_report()["seek_retries"] == 1
    consumer._thread = working
    asyncio.run(consumer._seek_once_more())
    assert consumer._moved_back == set() and not consumer._seek_again


def test_a_failed_seek_of_a_never_committed_partition_holds_it_for_the_next_seek(tmp_path):
    from faust.types import TP

    tp = TP("requests", 0)
    consumer, seeks = _seeking_consumer(tmp_path, {tp: None})
    consumer._first_delivered[tp] = 3
    consumer._acked[tp] = [3, 4]
    working_seek = consumer._thread.seek_wait

    async def rebalancing(partitions):
        raise RuntimeError("IllegalStateError: No current assignment for partition")

    consumer._thread.seek_wait = rebalancing
    asyncio.run(consumer._seek_once_more())   # the second seek of the loop
    assert consumer._moved_back == {tp} and consumer._seek_again and consumer._seek_start == {tp: 5}
    consumer._thread.seek_wait = working_seek
    asyncio.run(consumer._seek_once_more())
    assert seeks == [{tp: 5}] and not consumer._seek_again and consumer._moved_back == set()


class _Write:
    """A table write as the producer buffer holds it (a ``FutureMessage``): its channel's
    ``publish_message`` hands it to the Kafka producer; here that takes ``delay`` seconds, after
    ``gate`` opens if there is one (a full producer batch, a slow broker)."""

    def __init__(self, sent: list, name, delay: float = 0.0, gate: asyncio.Event | None = None):
        self.sent, self.name, self.delay, self.gate = sent, name, delay, gate
        self.message = self   # fut.message.channel.publish_message(fut, wait=False)
        self.channel = self

    async def publish_message(self, fut, wait: bool = False):
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        self.sent.append(self.name)


async def _running_buffer(tmp_path):
    buffer = create_app(load_settings({"DG_DATA_DIR": str(tmp_path), "DG_DEV": "1"})).producer.buffer
    await buffer.start()   # its task sends what is put, as in a worker
    return buffer


def test_flush_returns_once_every_table_write_is_sent_even_slow_ones(tmp_path):
    async def run():
        buffer = await _running_buffer(tmp_path)
        try:
            sent: list = []
            for i in range(3):
                buffer.put(_Write(sent, i, delay=0.15))
            await FaustProducerBuffer.flush(buffer)   # Faust's: gives up after 0.1 s without a send
            by_faust = list(sent)
            await buffer.flush()
            return by_faust, sent
        finally:
            await buffer.stop()

    by_faust, sent = asyncio.run(run())
    assert by_faust == [] and sent == [0, 1, 2]


def test_flush_waits_for_the_write_being_sent_when_the_queue_is_already_empty(tmp_path, caplog):
    async def run():
        buffer = await _running_buffer(tmp_path)
        buffer.FLUSH_WARN_S = 0.05
        try:
            sent: list = []
            gate = asyncio.Event()
            buffer.put(_Write(sent, "state", gate=gate))
            await asyncio.sleep(0.02)
            assert buffer.size == 0 and sent == []   # taken off the queue, not sent
            await asyncio.wait_for(FaustProducerBuffer.flush(buffer), 0.05)   # Faust's returns at once
            flushing = asyncio.ensure_future(buffer.flush())
            await asyncio.sleep(0.15)
            waited = not flushing.done()
            gate.set()
            await asyncio.wait_for(flushing, 1.0)
            return waited, sent
        finally:
            await buffer.stop()

    with caplog.at_level("WARNING"):
        waited, sent = asyncio.run(run())
    assert waited and sent == ["state"]
    assert "1 table writes not sent after" in caplog.text   # a slow send is named, not waited on silently


def test_a_delivery_finding_a_batch_of_state_writes_waiting_flushes_down_to_100_without_a_warning(tmp_path, caplog):
    """Faust's ``wait_until_ebb`` warns "producer buffer full" whenever more than 100 table writes
    wait; the worker puts a batch's states (hundreds) at once, so that was every batch's log line."""
    async def run(ebb):
        buffer = await _running_buffer(tmp_path)
        try:
            sent: list = []
            gate = asyncio.Event()
            buffer.put(_Write(sent, 0, gate=gate))   # being sent: the buffer's task waits on it
            await asyncio.sleep(0.02)
            for i in range(1, 151):
                buffer.put(_Write(sent, i))
            waiting = buffer.size
            gate.set()
            await ebb(buffer)
            return waiting, buffer.size
        finally:
            await buffer.stop()

    caplog.set_level("INFO")
    assert asyncio.run(run(FaustProducerBuffer.wait_until_ebb))[0] == 150
    assert "producer buffer full size 150" in caplog.text   # Faust's
    caplog.clear()
    waiting, left = asyncio.run(run(lambda buffer: buffer.wait_until_ebb()))
    assert waiting == 150 and left <= 100 and "producer buffer" not in caplog.text
