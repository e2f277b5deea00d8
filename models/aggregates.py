"""Per-account per-minute aggregates for the analysts' tables.

Partial sums per processing batch; the store adds them up (SummingMergeTree),
so no state has to survive between batches.

>>> agg = MinuteAggregates()
>>> agg.learn_one("a", 61_000, 10, 20, False)
>>> agg.learn_one("a", 119_000, 1, 2, True)
>>> agg.rows()
[['a', 60, 2, 11, 22, 1]]
"""
from __future__ import annotations


class MinuteAggregates:
    def __init__(self) -> None:
        self._sums: dict[tuple[str, int], list[int]] = {}

    def learn_one(self, account_id: str, ts_ms: int, input_tokens: int, output_tokens: int, error: bool) -> None:
        key = (account_id, ts_ms // 60_000 * 60)
        row = self._sums.get(key)
        if row is None:
            self._sums[key] = [1, input_tokens, output_tokens, int(error)]
        else:
            row[0] += 1
            row[1] += input_tokens
            row[2] += output_tokens
            row[3] += error

    def rows(self) -> list[list]:
        """[account_id, minute (epoch s), requests, input_tokens, output_tokens, errors] per key; then reset."""
        out = [[a, m, *v] for (a, m), v in self._sums.items()]
        self._sums.clear()
        return out
