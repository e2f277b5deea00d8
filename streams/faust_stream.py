"""The worker's Faust stream: batches taken straight from the channel's queue, and raw bytes
decoded without a codec lookup per message (issue #15).

Faust's ``Stream.take_events`` consumes the stream passively in the background: every event
goes through the stream's async iterator (``Stream._py_aiter``: a ``sleep(0)``, sensors, the
task-local current event, the processor chain) and then through ``take_events``' own
processor coroutine, about half of a bare Faust agent's CPU per event after the consumer's
tax is gone (``streams/faust_transport.py``). ``BatchStream.take_batches`` gives the agent
the same batches (lists of ``faust.Event``, at most ``max_`` of them, released when full or
``within`` seconds after the wait began; under a backlog, a full batch also takes what already
waits, up to ``backlog_max``) by draining the channel's queue in one loop, and keeps what the
iterator does for correctness, per event:

- an event of an older consumer generation, or one read while flow control is off (a
  rebalance is under way), is skipped as Faust's iterator skips it, but not acked (Faust's
  iterator acks it): it was not processed, and the seek that ends the rebalance reads it
  again. Acked, its offset stayed in the consumer's acked list past the revoke (Faust forgets
  a revoked partition's acks before such a late event is taken), so when the events before it
  were read again and acked, the commit jumped over the re-read copy of it while that was
  still waiting in the queue, and the next queue clear (a rebalance or a stop) lost it;
- an event taken is tracked as unacked at once, as the iterator tracks what it reads, so a
  revoke's or a stop's ``stream_wait_empty`` wait lets the batch being filled go out and
  be processed, as ``take_events`` lets its buffer go out;
- the batch's events are acked after the agent has processed the batch (the ``async for``
  body returned), as ``take_events`` acks them.

Where the two could differ (what a rebalance does to a batch being filled), this follows
``take_events``: ``tests/faults/test_rebalance.py`` ran on that behaviour before.

``RawSchema`` is the schema of the topics the worker reads as bytes: Faust's decode looks the
``raw`` codec up and calls it for the key and the value of every message (then reads the
``Event`` class from the settings); the raw codec returns the bytes as they are, so this
decode makes the event from the message's own key and value.

``BatchStream`` is selected by Faust's ``Stream`` setting (``app.faust_options``): the class agents' streams
are made of, Faust's extension point for it. ``tests/test_faust_transport.py`` fails if the
parts of Faust this follows (``Stream._py_aiter``, ``Stream.take_events``) change.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.types import EventT

# sha256 of inspect.getsource of the Faust methods this class follows, in the faust-streaming
# release it was written against (0.15.3); tests/test_faust_transport.py checks them.
UPSTREAM_SHA256 = {
    "Stream._py_aiter": "3a48ee257a65435b482d51edb74f2993a67867949b1ef89b49fea893769e0614",
    "Stream.take_events": "607d48aead118ba8ea868718a0df87de1c5fcecd10ec542c659b448796728e08",
}


class RawSchema(faust.Schema):
    """Key and value as the bytes the message holds (Faust's ``raw`` serializer, which returns
    them unchanged), decoded without Faust's per-message codec lookups; for sends the ``raw``
    serializers of Faust's ``Schema`` stay in place."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    def compile(self, app, *, on_key_decode_error=None, on_value_decode_error=None,
                default_propagate: bool = False):
        event_class = app.conf.Event   # read once here, not per message

        async def decode(message, *, propagate: bool = default_propagate):
            return event_class(app, message.key, message.value, message.headers, message)
        return decode


class BatchStream(faust.Stream):
    """``faust.Stream`` with ``take_batches``: ``take_events`` without a coroutine per event."""

    async def take_batches(self, max_: int, within: float, backlog_max: int = 0) -> AsyncIterator[list[EventT]]:
        """Lists of at most ``max_`` events: released when full, or ``within`` seconds after the
        wait for them began if at least one came; each acked when the caller asks for the next
        (Faust's iterators also ack an event whose processing raised: its offset could be
        committed with the event never processed).

        ``backlog_max`` (if above ``max_``): a full batch goes on taking the events already
        waiting in the queue, without waiting for more, up to ``backlog_max``. A worker that
        keeps up gets batches of ``max_`` at most, so an event waits no longer than before; one
        behind its input gets larger batches, whose per-batch work (state writes, minute rows,
        link messages, producer flushes) is spread over more events (README, "Larger batches
        under a backlog")."""
        most = max(max_, backlog_max)
        self._finalized = True
        started_by_us = await self.maybe_start()
        queue = self.channel.queue
        app = self.app
        flow_active = app.flow_control.is_active
        consumer = app.consumer
        add_unacked = consumer.unacked.add
        acking_topics = app.topics.acking_topics
        on_message_in = self._on_message_in
        loop = asyncio.get_running_loop()
        events: list[EventT] = []
        try:
            while not self.should_stop:
                deadline = loop.time() + within
                while True:
                    n = len(events)
                    if n >= max_ and (n >= most or queue.empty()):
                        break   # full; past max_, only what already waits (a backlog)
                    if queue.empty():
                        remaining = deadline - loop.time()
                        if remaining <= 0:
                            break
                        try:   # the only wait: the queue ran dry before the batch is full
                            value: Any = await asyncio.wait_for(queue.get(), remaining)
                        except asyncio.TimeoutError:
                            break
                    else:
                        value = queue.get_nowait()   # raises what was thrown into the channel
                    message = value.message
                    if not flow_active() or message.generation_id != app.consumer_generation_id:
                        continue   # read before a rebalance: skipped, not acked (the docstring)
                    if message.topic in acking_topics and not message.tracked:
                        message.tracked = True   # a revoke's or stop's wait now waits for this batch
                        add_unacked(message)
                        on_message_in(message.tp, message.offset, message)
                    events.append(value)
                # One pass of the event loop per batch (Faust's iterator makes one per event): the
                # fetcher refills the queue, health and status pages answer, timers run, between
                # batches rather than in the middle of one's sends.
                await asyncio.sleep(0)
                if not events:
                    continue
                batch, events = events, []
                self.events_total += len(batch)
                yield batch
                # The caller asks for the next batch: it is done with this one. One that raised
                # or was cancelled in the middle of a batch (an agent crash, a stop) does not get
                # here, so that batch stays unacked: its offsets are not committed, it is read again.
                self._ack_all(batch)
        except StopAsyncIteration:
            # the channel ends (the stream stops): events taken but not yet given out are not
            # acked, so their offsets are not committed and they are read again
            return
        finally:
            self._channel_stop_iteration(self.channel)
            if started_by_us:
                await self.stop()
                self.service_reset()

    def _ack_all(self, events: list[EventT]) -> None:
        """Ack ``events`` as ``Stream._py_aiter`` acks each (its inlined ``Stream.ack``: the async
        ``Stream.ack`` would cost a coroutine per event)."""
        on_stream_event_out, on_message_out = self._on_stream_event_out, self._on_message_out
        for event in events:
            message = event.message
            last = event.ack()
            on_stream_event_out(message.tp, message.offset, self, event, None)
            if last:
                on_message_out(message.tp, message.offset, message)
