"""The one way a rejected input message reaches the dead-letter topic.

The original bytes go as they are (the contract asks for them, for debugging),
with ``dg-reason``/``dg-detail``/``dg-source`` headers. A value larger than a
produce request may carry would make the send fail (and the agent crash again
after each restart), so it is cut to ``DLQ_MAX_VALUE_BYTES`` with its original
length in ``dg-truncated``.
"""
from __future__ import annotations

# the producer's and the broker's default limit is 1 MB; a gateway topic may carry larger events
DLQ_MAX_VALUE_BYTES = 900_000


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
