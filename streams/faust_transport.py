"""The worker's Faust transport: Faust's aiokafka transport with a consumer that hands each
message to the streams without building tasks for it (issue #15), a producer whose buffer's
per-message size check reads no settings, and a Faust monitor without per-message bookkeeping.

Faust's ``Consumer._drain_messages`` delivers every fetched message with
``await self.wait_first(callback(message), self.suspend_flow.wait())``: four tasks per
message (the delivery, the flow-suspension wait, and the service's stopped and crashed
waits), three of them cancelled again -- about a third of a bare Faust agent's CPU. The race
matters only when the delivery has to wait (a stream's buffer is full, the producer buffer
is over its limit, flow control is suspended during a rebalance): then a suspended flow
must abandon the delivery, and the message is read again from the committed offset after
the rebalance.

``Consumer`` here runs the delivery coroutine one step in place. Nearly always that step
finishes it (the message is in the stream's queue) and no task was made. If the delivery
has to wait, the coroutine, suspended exactly where it stopped, is raced against the flow
suspension as Faust does (``wait_first``), so rebalances behave as before.

Selected by the broker URL scheme ``distillguard://`` (``faust_broker_options``), which
Faust resolves through its transport registry: the ``faust.transports`` entry point in
pyproject.toml. ``tests/test_faust_transport.py`` fails if Faust's ``_drain_messages``
changes (the loop below is a copy of it with the delivery replaced, a seek added, and the
records of partitions a seek moved back held until that seek).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine, Generator, Mapping
from functools import partial
from typing import Any, cast

from faust.sensors import Monitor
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka
from faust.transport.producer import ProducerBuffer as FaustProducerBuffer
from faust.types import TP
from mode import Service

from .errors import UserError

SCHEME = "distillguard"

# sha256 of inspect.getsource(faust.transport.consumer.Consumer._drain_messages) in the
# faust-streaming release this copy follows (0.15.3); tests/test_faust_transport.py checks it.
UPSTREAM_DRAIN_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
# ... and of the Faust methods `Consumer` and `ProducerBuffer` below build on (their docstrings
# say how)
UPSTREAM_SHA256 = {
    "Consumer._new_offset": "1d2c7ea89a7ad4f1a216c1d51936e569162cd66bd56f889e13fd29c910b58eb0",
    "Consumer.perform_seek": "0e8c130ff4b0afd82c0be9c5fd831316e10febc62c94032833911096e156d7c6",
    "ProducerBuffer.flush_atmost": "4966e8c5f9b42eb97abe3f93cbc9bc566a22bdea01ae5328c5a6593414820323",
    "ProducerBuffer._handle_pending": "78d648030fd21016cc0d82ae6cc6df1cb474273195b10f133ea0ef9ac9d35f0c",
    "ProducerBuffer._send_pending": "4a9d5f932b56bc6842151bfc868aec1570d53cab7ff129ece408d966ac7f7da8",
    "ProducerBuffer.wait_until_ebb": "758dd5744044071bbc79609fa8e5bfc339818f186bc19b723de2c4c877412e00",
}


def check_registered() -> None:
    """A clear error, instead of Faust's puzzling one, when the ``distillguard://`` scheme is not
    registered: the package's metadata predates the entry point (a checkout updated without
    reinstalling)."""
    from importlib.metadata import entry_points
    if not entry_points(group="faust.transports", name=SCHEME):
        raise UserError("the distillguard Faust transport is not registered (package metadata older "
                        "than the code): reinstall with `pip install -e .` or `make venv`")


class ResumedDelivery:
    """A coroutine that has already run up to its first suspension, awaitable again: it gives
    the event loop the future the coroutine is waiting on, then goes on driving the coroutine
    (results, exceptions and cancellation pass through), so a task can finish it."""

    def __init__(self, coro: Coroutine, waiting_on: Any) -> None:
        self.coro = coro
        self.waiting_on = waiting_on

    def __await__(self) -> Generator[Any, None, Any]:
        coro, waiting_on = self.coro, self.waiting_on
        while True:
            try:
                yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - cancellation: the coroutine decides
                resume = partial(coro.throw, exc)
            else:
                resume = partial(coro.send, None)
            try:
                waiting_on = resume()
            except StopIteration as done:
                return done.value


class Consumer(aiokafka.Consumer):
    """Faust's aiokafka consumer whose fetch loop delivers messages without a task each, and
    which reads again what Faust clears at the end of a recovery.

    At the end of a rebalance's recovery Faust resumes the stream partitions, seeks them to
    their committed offsets (``perform_seek``, a broker round trip) and only then resumes the
    flow, and resuming the flow *clears* every stream's queue. Messages fetched and delivered
    while the seek was under way are cleared without being processed or acked; if the fetch
    position had already passed them, nothing reads them again and they are lost until the
    next restart (a restarted worker lost 1 to 119 of 120 events in 1 run of 6–16 under CPU
    load; Faust's own consumer too). So each of Faust's seeks is followed, at the next fetch
    round (after the clear), by the same seek once more: whatever was cleared is read again
    from the committed offset; what was processed in between comes again as duplicates,
    which the detector drops by event id.

    Faust's seek runs while the fetch loop goes on delivering a fetch made before it ended,
    and it sets each partition's read offset back to the committed offset. The loop's next
    record of that partition (thousands of offsets further on) then looks like a gap in the
    log, and Faust's gap handling marks every offset in between as acked -- offsets that were
    read and are acked for real too. Each of them is then twice in the consumer's acked list,
    which splits its runs of consecutive offsets: the committed offset moved one offset per
    commit (every 2.8 s), and a restarted worker that had read everything had not committed
    it 300 s later (``tests/faults/test_kill_worker.py``, 1 run in 4). So the records of a
    partition a seek moved back are not delivered until the second seek: they are read again
    from the committed offset, with no gap.

    A partition with no committed offset (nothing committed yet since the group began) is not
    moved by aiokafka's seek, so what the clear took there was lost the same way, and Faust
    then committed past it, as it checks nothing before the first commit (likely how the CI of
    5f8fc44 lost 1 of 30,000 events in ``tests/faults/test_rebalance.py``: the first worker had
    read 971 events, too few for a commit, when the group changed; a later CI run lost one with
    committed partitions: a second path, events skipped as being of an older generation and
    acked, is closed in ``BatchStream.take_batches``, which no longer acks them). Both seeks
    move such a partition back to the first offset delivered since the last seek (or before
    its revoke) that was not acked, and that offset is its head for the check below.

    Faust's ``_new_offset`` (the offset a commit may take) commits past the committed offset
    when that one offset is missing from the acked list and the next ones are there: it
    treats a one-offset hole at the head as a gap in the log (faust-streaming issues #312,
    #606). It is one when the log has no record there (a transaction marker, compaction); it
    is a lost event when the record was delivered and never acked -- cleared by a rebalance,
    or still being processed. ``_new_offset`` here does not commit past a head offset at or
    after the first one delivered since the partition's last seek unless it is acked or a gap
    Faust recorded (offsets the log skipped between two delivered records). A head before
    that first delivered record is what the log skipped right after the seek, and Faust's rule
    stands. ``tests/test_faust_transport.py`` fails if Faust's ``_new_offset`` or seek change.
    """

    _seek_again = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # partitions a seek moved back to their committed offset: their records fetched before
        # the second seek are not delivered (see the class docstring)
        self._moved_back: set = set()
        # acking partitions with no committed offset, where the last seek put them: the first
        # offset not known to be processed (the class docstring)
        self._seek_start: dict = {}
        # ... and of those revoked since, the first offset delivered and the offsets acked
        self._revoked_progress: dict = {}
        # partition -> the first offset delivered since its last seek
        self._first_delivered: dict = {}
        # what the checks above did, for the worker's status page (`offset_report`)
        self.commits_held = 0
        self.uncommitted_seeks = 0
        self.seek_retries = 0
        self._held_since: dict = {}   # partition -> monotonic time its commit was first held back

    def offset_report(self) -> dict:
        """The worker status page's ``offsets``: commits held back at an unacked head offset (and
        for how long, per partition held now), seeks of partitions with no committed offset, seeks
        tried again. A partition held for long is a commit that does not move: lag that will not
        drain until the head offset is acked or read again."""
        now = time.monotonic()
        return {"commits_held": self.commits_held, "uncommitted_partitions_moved_back": self.uncommitted_seeks,
                "seek_retries": self.seek_retries,
                "held_for_s": {f"{tp.topic}:{tp.partition}": round(now - since, 1)
                               for tp, since in self._held_since.items()}}

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust's seek to the committed offsets, and partitions without one (or with 0) to the
        first offset delivered since the last seek that is not acked (the class docstring)."""
        committed = await super().seek_to_committed()
        acks_enabled_for = self.app.topics.acks_enabled_for
        acking = [tp for tp in committed if acks_enabled_for(tp.topic)]
        starts = {}
        for tp in acking:
            if not committed[tp]:
                start = self._first_unprocessed(tp)
                if start is not None:
                    starts[tp] = start
        self._revoked_progress.clear()
        self._seek_start = starts
        self._held_since.clear()   # what was held is read again from where this seek put it
        self.uncommitted_seeks += len(starts)
        if starts:
            try:
                await self.seek_wait(starts)
            except Exception as exc:  # noqa: BLE001 - a rebalance took them: the next seek moves them
                self._moved_back.update(starts)   # held until then
                self._seek_again = True
                self.seek_retries += 1
                self.log.warning("seek of partitions with no committed offset failed (%r); trying again", exc)
        self._first_delivered.clear()
        return committed

    def _first_unprocessed(self, tp: TP) -> int | None:
        """Where to read a partition without a committed offset again: from the first offset
        delivered since the last seek (or before its revoke), past the ones acked since; where
        the last seek put it if nothing was delivered since; None if nothing ever was."""
        first = self._first_delivered.get(tp)
        acked = set(self._acked.get(tp, ()))
        if first is None and tp in self._revoked_progress:
            first, acked_before = self._revoked_progress[tp]
            acked |= acked_before
        if first is None:
            return self._seek_start.get(tp)
        while first in acked:
            first += 1
        return first

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # Faust forgets a revoked partition's committed offset and acks here. Of a partition
        # without a committed offset, what was delivered and acked is kept for the next seek
        # (it may be assigned here again); the head check forgets it until that seek.
        for tp in revoked:
            first = self._first_delivered.pop(tp, None)
            if first is None:
                first = self._seek_start.get(tp)
            if first is not None and self._committed_offset.get(tp) is None:
                self._revoked_progress[tp] = (first, set(self._acked.get(tp, ())))
            self._seek_start.pop(tp, None)
            self._held_since.pop(tp, None)
        await super().on_partitions_revoked(revoked)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        self._seek_again = True
        # aiokafka moved the partitions that have a committed offset (> 0), and Faust set their
        # read offsets to it; `seek_to_committed` moved those without one that were read from
        acks_enabled_for = self.app.topics.acks_enabled_for
        self._moved_back.update(tp for tp, offset in self._read_offset.items()
                                if offset and acks_enabled_for(tp.topic))
        self._moved_back.update(self._seek_start)

    def _new_offset(self, tp: TP) -> int | None:
        """Faust's, except that it does not commit past an unacked head offset that was delivered
        (the class docstring)."""
        acked = self._acked[tp]
        if acked:
            head = self._committed_offset[tp]
            if head is None:
                head = self._seek_start.get(tp)
            first = self._first_delivered.get(tp)
            if (head is not None and first is not None and first <= head < min(acked)
                    and not self._gap[tp].overlaps(head)):
                self.commits_held += 1
                self._held_since.setdefault(tp, time.monotonic())
                return None   # delivered, not acked yet (or cleared: read again after the seek)
            self._held_since.pop(tp, None)
        return super()._new_offset(tp)

    async def _seek_once_more(self) -> None:
        """The second seek (the class docstring). If it fails -- a rebalance began since the first
        took the partitions, or the broker did not answer -- the partitions stay held and it is
        tried again at the next fetch round, instead of ending the fetch loop (which would stop
        this worker reading without stopping the worker)."""
        self._seek_again = False
        held = set(self._moved_back)
        self._moved_back.clear()   # before the round trip: a recovery's seek during it adds its own
        try:
            await super().perform_seek()
        except Exception as exc:  # noqa: BLE001 - anything but cancellation: retried
            self._moved_back.update(held)
            self._seek_again = True
            self.seek_retries += 1
            self.log.warning("second seek to the committed offsets failed (%r); trying again", exc)

    async def _deliver(self, callback, message) -> None:
        coro = callback(message)
        try:
            waiting_on = coro.send(None)
        except StopIteration:
            return   # delivered without waiting: the common case
        # The delivery waits (full buffer, producer backlog, suspended flow): race it against
        # a flow suspension, as Faust's own loop does for every message.
        await self.wait_first(ResumedDelivery(coro, waiting_on), self.suspend_flow.wait())

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - the fetch loop
        # Faust's loop (faust/transport/consumer.py), with `self._deliver` in place of
        # `self.wait_first(callback(message), self.suspend_flow.wait())`, the second seek, and
        # no delivery of what a seek moved back until then (the class docstring).
        callback = self.callback
        getmany = self.getmany
        deliver = self._deliver
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        moved_back = self._moved_back
        first_delivered = self._first_delivered

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if self._seek_again:   # the seek again: see the class docstring
                    await self._seek_once_more()
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        if moved_back and tp in moved_back:
                            continue   # fetched before a seek moved it back: read after the seek again
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset:
                                if acks_enabled_for(message.topic):
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    self._n_acked = 0
                                    await self.commit()
                            if tp not in first_delivered:   # for `_new_offset` and the seeks
                                first_delivered[tp] = offset
                            await deliver(callback, message)
                            set_read_offset(tp, offset)
                        else:
                            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                         offset, message.key, message.value)
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)


class ProducerBuffer(FaustProducerBuffer):
    """Faust's producer buffer (the table writes waiting to be sent), whose ``size`` does not read
    the ``producer_threaded`` setting each time, and whose ``flush`` returns only once every
    table write put before it has been handed to the Kafka producer.

    ``size``: Faust's delivery of every message awaits ``wait_until_ebb``, which reads ``size``,
    and a settings read costs more than the check (1.3% of a worker's samples). The setting is
    fixed when the producer is made.

    ``flush``: the worker writes a batch's account states, flushes the producer, and only then
    acks the batch (``streams/app.py``: a committed offset must not pass a state the changelog
    lacks). Faust's ``flush`` returns as soon as the queue is empty, but its sending task takes
    a write off the queue *before* sending it, and the send waits whenever the Kafka producer
    has a full batch for that partition still to go out (16 KiB: seven states of ~2.3 kB).
    Then the producer's flush, which Faust runs next, does not wait for that write: it is not
    in any batch yet. Faust's ``flush`` also gives up, silently, when no write was sent within
    0.1 s (a slow broker). Here a write counts until its send is done, and a slow send is
    waited for, with a warning every ``FLUSH_WARN_S``. Stopping, Faust's own flush runs (its
    sending task may be gone). ``tests/test_faust_transport.py`` fails if Faust's buffer
    methods this builds on change."""

    threaded = True   # until the producer says: Faust's own size and flush, which read the setting
    FLUSH_WARN_S = 10.0
    _sending = 0      # writes taken off the queue whose send has not finished

    @property
    def size(self) -> int:
        if self.threaded:
            return super().size
        return self.pending.qsize()

    async def _send_pending(self, fut) -> None:
        self._sending += 1
        try:
            await super()._send_pending(fut)
        finally:
            self._sending -= 1

    async def wait_until_ebb(self) -> None:
        """Faust's, without its warning. Every delivery of a message awaits this, and when more
        than ``max_messages`` (100) table writes wait it flushes down to that many first, logging
        "producer buffer full". The worker puts a whole batch's account states at once (hundreds
        under a backlog) and flushes them itself right after, so a delivery finding more than
        100 is the normal course, not a fault: 23-31 such warnings in a 15 s paced bench run.
        The same flush runs; a slow one is still warned about by ``flush``."""
        if self.size > self.max_messages:
            await self.flush_atmost(self.max_messages)

    async def flush(self) -> None:
        """Wait until the queue is empty and no send is under way (the class docstring)."""
        if self.threaded:
            return await super().flush()
        since = time.monotonic()
        while self.pending.qsize() or self._sending:
            if self.state != "running":   # stopped or crashed while we waited
                return await super().flush()
            self.message_sent.clear()   # set by Faust's sending task after each send
            try:
                async with asyncio.timeout(self.FLUSH_WARN_S):
                    await self.message_sent.wait()
            except TimeoutError:
                self.log.warning("producer buffer: %d table writes not sent after %.0f s; still waiting",
                                 self.pending.qsize() + self._sending, time.monotonic() - since)


class Producer(aiokafka.Producer):
    """Faust's aiokafka producer with the buffer above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        faust_buffer = self.buffer   # Faust's __init__ made it; nothing started or holds it yet
        self.buffer = ProducerBuffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = faust_buffer.app
        if self.threaded_producer is not None:
            self.buffer.threaded_producer = self.threaded_producer
        self.buffer.threaded = bool(self.app.conf.producer_threaded)


class Transport(aiokafka.Transport):
    """Faust's aiokafka transport with the consumer and producer above (``distillguard://`` URLs)."""

    Consumer = Consumer
    Producer = Producer


class QuietMonitor(Monitor):
    """Faust's monitor (the ``Monitor`` setting) without its per-message and per-event hooks:
    counters, timestamps and a deque append for every message, event, table access and send
    that nothing of ours reads (the worker's own counters and latency histogram are
    streams/app.py's; lag comes from the consumer). Rebalance, commit and assignment hooks,
    and the end offsets the consumer tracks, are Faust's."""

    def on_message_in(self, tp, offset, message) -> None:
        pass

    def on_stream_event_in(self, tp, offset, stream, event) -> None:
        return None

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:
        pass

    def on_message_out(self, tp, offset, message) -> None:
        pass

    def on_table_get(self, table, key) -> None:
        pass

    def on_table_set(self, table, key, value) -> None:
        pass

    def on_table_del(self, table, key) -> None:
        pass

    def on_send_initiated(self, producer, topic, message, keysize, valsize) -> None:
        return None

    def on_send_completed(self, producer, state, metadata) -> None:
        pass
