"""Per-account per-minute aggregates for the analysts' tables.

Partial sums per processing batch, plus the distinct prompt-skeleton
fingerprints and topic ids seen; the store adds the sums up and merges the
distinct sets into sketches (ClickHouse ``uniq`` states), so no state has to
survive between batches.

>>> agg = MinuteAggregates()
>>> agg.learn_one("a", 61_000, 10, 20, False, skeleton=7, topic=1)
>>> agg.learn_one("a", 119_000, 1, 2, True, skeleton=7, topic=2)
>>> agg.rows()
[AccountMinuteRow(account_id='a', minute=60, requests=2, input_tokens=11, output_tokens=22, errors=1, skeletons=[7], topics=[1, 2])]
"""
from __future__ import annotations

from .rows import AccountMinuteRow

MAX_SKELETONS = 64  # distinct skeletons kept per account-minute row; a sketch downstream counts them


class MinuteAggregates:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], list] = {}

    def learn_one(self, account_id: str, ts_ms: int, input_tokens: int, output_tokens: int, error: bool,
                  skeleton: int = 0, topic: int | None = None) -> None:
        key = (account_id, ts_ms // 60_000 * 60)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = [0, 0, 0, 0, set(), set()]
        row[0] += 1
        row[1] += input_tokens
        row[2] += output_tokens
        row[3] += error
        if skeleton and len(row[4]) < MAX_SKELETONS:
            row[4].add(skeleton)
        if topic is not None:
            row[5].add(topic)

    def rows(self) -> list[AccountMinuteRow]:
        """One row per (account, minute) learnt since the last call; then reset."""
        out = [AccountMinuteRow(a, m, n, i, o, e, sorted(s), sorted(t))
               for (a, m), (n, i, o, e, s, t) in self._rows.items()]
        self._rows.clear()
        return out
