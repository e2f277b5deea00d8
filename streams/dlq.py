"""The one way a rejected input message reaches the dead-letter topic.

The original bytes go as they are (the contract asks for them, for debugging),
with ``dg-reason``/``dg-detail``/``dg-source`` headers. A value larger than a
produce request may carry would make the send fail (and the agent crash again
after each restart), so it is cut to ``DLQ_MAX_VALUE_BYTES`` with its original
length in ``dg-truncated``.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

# the producer's and the broker's default limit is 1 MB; a gateway topic may carry larger events
DLQ_MAX_VALUE_BYTES = 900_000
PROCESSING_ERROR = "processing_error"   # the reason of an event the detector raised on


@dataclass(frozen=True, slots=True)
class ProcessingFailure:
    """An event that passed the contract's checks and made the detector raise (a bug, or input
    nobody foresaw). The worker dead-letters it and goes on, replay counts it: one such event
    must not stop every account's detection. Says what and where, never the exception's
    message, which may quote the event's text.

    >>> try:
    ...     {}["prompt text"]
    ... except KeyError as err:
    ...     f = ProcessingFailure.of(err)
    >>> f.error, "prompt" in f.detail
    ('KeyError', False)
    """
    error: str   # the exception's type
    where: str   # file:line where it was raised

    @classmethod
    def of(cls, err: BaseException) -> ProcessingFailure:
        frames = traceback.extract_tb(err.__traceback__)
        where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
        return cls(type(err).__name__, where)

    @property
    def detail(self) -> str:
        return f"{self.error} at {self.where}"


def process_guarded(stage, event, position: tuple[int, int]):
    """``stage.process(event, position)`` (``models.pipeline.AccountStage``), or the
    :class:`ProcessingFailure` if it raised: the one step the worker and replay both take."""
    try:
        return stage.process(event, position)
    except Exception as err:  # noqa: BLE001 - the callers dead-letter or count it, and go on
        return ProcessingFailure.of(err)


def dlq_record(value: bytes | None, reason: str, detail: str, source: str) -> tuple[bytes, dict[str, bytes]]:
    """(value, headers) of the dead-letter record of a rejected message.

    >>> v, h = dlq_record(b"x" * 1_000_000, "too_large", "1000000 bytes", "t/0/5")
    >>> len(v), h["dg-truncated"], h["dg-source"]
    (900000, b'1000000', b't/0/5')
    """
    value = value or b""
    headers = {"dg-reason": reason.encode(), "dg-detail": detail.encode("utf-8", "replace"),
               "dg-source": source.encode()}
    if len(value) > DLQ_MAX_VALUE_BYTES:
        headers["dg-truncated"] = str(len(value)).encode()
        value = value[:DLQ_MAX_VALUE_BYTES]
    return value, headers


async def send_to_dlq(dlq_topic, message, reason: str, detail: str) -> None:
    """Send Faust ``message`` (a consumed record) to ``dlq_topic`` with the reason."""
    value, headers = dlq_record(message.value, reason, detail,
                                f"{message.topic}/{message.partition}/{message.offset}")
    await dlq_topic.send(key=message.key, value=value, headers=headers)
