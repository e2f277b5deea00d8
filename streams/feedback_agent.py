"""The worker's ear for analysts: every triage decision (feedback v1) into the detector.

Each worker must know every decision (any worker may own the account a
decision is about), and must know them again after a restart. So this is not
a consumer-group agent: a plain consumer *assigned* every partition of
``DG_TOPIC_FEEDBACK`` from the beginning, polled without blocking once a
second by a Faust timer. Decisions are few (people make them), so re-reading
the topic at start costs nothing; the topic is the durable book.

A record that breaks feedback v1 is logged with its offset and counted
(``/distillguard/`` → ``feedback.bad``), never learned, never fatal.
"""
from __future__ import annotations

import logging
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from distillguard.models.feedback import FeedbackBook
from distillguard.schemas import BadFeedback, Feedback, parse_feedback

from .kafka_config import client_config
from .settings import Settings

log = logging.getLogger("distillguard.feedback")
POLL_EVERY_S = 1.0


class FeedbackReader:
    """Reads the whole feedback topic into a :class:`FeedbackBook`, a little at a time."""

    def __init__(self, settings: Settings, book: FeedbackBook):
        self.settings = settings
        self.book = book
        self.learned = 0
        self.bad = 0
        self._consumer: Consumer | None = None

    def _open(self) -> Consumer:
        c = Consumer(client_config(self.settings, **{
            "group.id": f"{self.settings.app_id}-feedback-reader",  # never commits: assign only
            "enable.auto.commit": False, "enable.partition.eof": False}))
        meta = c.list_topics(self.settings.topic_feedback, timeout=10).topics.get(self.settings.topic_feedback)
        parts = sorted(meta.partitions) if meta is not None and meta.partitions else [0]
        c.assign([TopicPartition(self.settings.topic_feedback, p, OFFSET_BEGINNING) for p in parts])
        return c

    def poll(self, max_records: int = 500) -> int:
        """Learn what has arrived since the last call; return how many decisions were new."""
        if self._consumer is None:
            self._consumer = self._open()
        new = 0
        for msg in self._consumer.consume(num_messages=max_records, timeout=0):
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("feedback consumer: %s", msg.error())
                continue
            try:
                fb = parse_feedback(msg.value() or b"")
            except BadFeedback as err:
                self.bad += 1
                log.error("feedback: skipped a bad record at %s/%d/%d: %s",
                          msg.topic(), msg.partition(), msg.offset(), err)
                continue
            if self.book.learn(fb):
                new += 1
                log.info("feedback: %s on %s (%s) by %s", fb.decision, fb.alert_id, ",".join(fb.account_ids),
                         fb.analyst)
        self.learned += new
        return new

    def stats(self) -> dict:
        return {"learned": self.learned, "bad": self.bad}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def register_feedback_reader(app, settings: Settings, book: FeedbackBook) -> FeedbackReader:
    """Fill ``book`` (the one the worker's pipeline stages temper with) from the feedback topic."""
    reader = FeedbackReader(settings, book)

    @app.timer(POLL_EVERY_S)
    async def _read_feedback() -> None:
        reader.poll()

    @app.on_before_shutdown.connect
    async def _close_feedback(app, **kwargs) -> None:
        reader.close()

    return reader


class FeedbackFileError(ValueError):
    """A decisions file that cannot be read; the message names the file and line."""


def read_feedback_file(path: str | Path) -> list[Feedback]:
    """Decisions from a JSONL file of feedback v1 records (``replay``/``eval --feedback``).

    A file of decisions is a deliberate input, so a bad line stops the run with its number
    rather than being skipped: a replay that silently ignored a decision would mislead."""
    p = Path(path)
    if not p.is_file():
        raise FeedbackFileError(f"feedback file {p} does not exist")
    out = []
    with open(p, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(parse_feedback(line))
            except BadFeedback as err:
                raise FeedbackFileError(f"{p} line {n}: {err}") from None
    return out


def book_from_file(path: str | Path) -> FeedbackBook:
    book = FeedbackBook()
    book.learn_all(read_feedback_file(path))
    return book
