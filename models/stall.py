"""When a consumer that should be reading is not: a stall watch.

A Kafka consumer can stay in its group, answer every call and still fetch nothing: librdkafka
has open reports of consumers that stop fetching after a broker restart until they are closed
and made again (confluentinc/librdkafka#5153). From inside, that looks like a quiet topic. The
difference is outside: records wait for the group (its committed offsets are behind the log's
end) and nobody moves them. This watch says when that has held, seen at every check, for
``after_s`` seconds; the owner then makes its consumer again.

A check that could not ask the broker (``waiting=None``: the broker is away, which is no stall
of ours) starts the count again, as does any progress: a record read, or the group's committed
offsets moving (another member of the group reading its partitions is progress too).

>>> w = StallWatch(after_s=60)
>>> w.check(now=0, waiting=120, committed=500, read=0)      # records wait: the count starts
False
>>> w.check(now=30, waiting=150, committed=500, read=0)
False
>>> w.check(now=61, waiting=180, committed=500, read=0)     # 61 s of waiting records, none read
True
>>> w.check(now=62, waiting=180, committed=500, read=0)     # said once; the count starts again
False
>>> w.check(now=70, waiting=0, committed=680, read=180)     # caught up
False
>>> w.check(now=200, waiting=None, committed=None, read=0)  # broker away: not counted
False
"""
from __future__ import annotations


class StallWatch:
    """``check(now, waiting, committed, read)`` → True once records have waited ``after_s``
    seconds with no progress at all; 0 or less: never."""

    __slots__ = ("after_s", "_since", "_committed", "stalls")

    def __init__(self, after_s: float):
        self.after_s = after_s
        self._since: float | None = None     # when the current run of waiting-without-progress began
        self._committed: int | None = None   # the group's committed offsets, summed, at the last check
        self.stalls = 0

    def check(self, now: float, waiting: int | None, committed: int | None, read: int) -> bool:
        """``waiting``: records between the group's committed offsets and the log's end (None:
        unknown); ``committed``: those offsets summed; ``read``: records this consumer read since
        the last check."""
        moved = committed is not None and self._committed is not None and committed != self._committed
        self._committed = committed
        if self.after_s <= 0 or waiting is None or waiting <= 0 or read > 0 or moved:
            self._since = None
            return False
        if self._since is None:
            self._since = now
            return False
        if now - self._since < self.after_s:
            return False
        self._since = None
        self.stalls += 1
        return True
