"""End users inside an account: bounded per-user state, and the extracting sub-population.

Many accounts are products with their own users (the event's ``user_id``). Extraction hidden in a
product's traffic (one end user, or a rotating set of ids that together sweep) is diluted at the
account level: 20% of the traffic barely moves the account's shares. Per end user it is plain: an
honest user asks a few things in the product's few areas; an extracting one asks something new in
nearly every request, over many areas, and wants long or reasoned answers.

Bounds: at most ``MAX_USERS`` end users per account (an array row each: requests, reasoned and
long answers, last seen, a 64-bit set of capability areas). When full, a new user replaces the
least recently seen *unflagged* one, so the extracting ids a finding is about are kept.

>>> eu = EndUsers()
>>> for i in range(30):
...     eu.learn("mallory", i * 1000, i % 64, True, True)
...     eu.learn("alice", i * 1000, i % 2, False, False)
>>> eu.flagged()
['mallory']
>>> strength, users = eu.finding()
>>> users, strength > 0
(['mallory'], True)
"""
from __future__ import annotations

from array import array

from .capability_space import N_CAPABILITIES, TASK_OF

MAX_USERS = 64                # per account
MIN_REQUESTS = 6              # a user is judged after this many requests
NOVELTY = 0.5                 # distinct areas per request of an extracting user (honest users repeat areas)
HARVEST = 0.3                 # share of reasoned or long answers of an extracting user
REQ_SPAN = 30                 # flagged requests above 15 to full strength
TASK_SPAN = 6                 # task groups above 6 to full strength (a sweep covers 15 of 16)
MAX_NAMED = 20                # end users named in an alert
# row layout: requests, reasoned, long answers, last seen ms, area bits (64 areas; OTHER not counted)
R_N, R_REASON, R_LONG, R_LAST, R_BITS = range(5)
ROW = 5


def _popcount(x: int) -> int:
    return bin(x).count("1")


class EndUsers:
    """Per-end-user rows of one account, in a flat ``array('q')`` (serialisable, bounded)."""

    __slots__ = ("ids", "rows")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.rows = array("q")

    def _suspicious(self, i: int) -> bool:
        r = self.rows
        b = i * ROW
        n = r[b + R_N]
        if n < MIN_REQUESTS:
            return False
        return _popcount(r[b + R_BITS]) >= NOVELTY * n and max(r[b + R_REASON], r[b + R_LONG]) >= HARVEST * n

    def learn(self, user: str, ts_ms: int, area: int, reasoning: bool, long_answer: bool) -> None:
        try:
            i = self.ids.index(user)
        except ValueError:
            i = self._slot_for(user)
        b = i * ROW
        r = self.rows
        r[b + R_N] += 1
        r[b + R_REASON] += reasoning
        r[b + R_LONG] += long_answer
        if ts_ms > r[b + R_LAST]:
            r[b + R_LAST] = ts_ms
        if 0 <= area < 63:
            r[b + R_BITS] |= 1 << area

    def _slot_for(self, user: str) -> int:
        if len(self.ids) < MAX_USERS:
            self.ids.append(user)
            self.rows.extend((0, 0, 0, 0, 0))
            return len(self.ids) - 1
        victim = self._victim()
        self.ids[victim] = user
        self.rows[victim * ROW:(victim + 1) * ROW] = array("q", (0, 0, 0, 0, 0))
        return victim

    def _victim(self) -> int:
        """The row a new user takes when all are in use: the least recently seen user that is not
        flagged (all flagged: the least recent), the first such row on a tie."""
        r = self.rows
        lasts = r[R_LAST::ROW]
        # the least recent of all is almost always unflagged: then it is the answer, found in C
        # (an app whose every request has a new user id pays this on each request)
        oldest = lasts.index(min(lasts))
        if not self._suspicious(oldest):
            return oldest
        return min(range(len(self.ids)), key=lambda j: (self._suspicious(j), r[j * ROW + R_LAST]))

    def flagged(self) -> list[str]:
        """Extracting end users, most requests first (at most MAX_NAMED)."""
        hits = [j for j in range(len(self.ids)) if self._suspicious(j)]
        hits.sort(key=lambda j: (-self.rows[j * ROW + R_N], self.ids[j]))
        return [self.ids[j] for j in hits[:MAX_NAMED]]

    def finding(self) -> tuple[float, list[str]]:
        """(strength 0..1 of an extracting sub-population, its end users). Strength grows with the
        requests of the flagged users and with the areas they cover together: one curious user
        with ten questions is not a campaign, a rotating set that sweeps 20+ areas is."""
        hits = [j for j in range(len(self.ids)) if self._suspicious(j)]
        if not hits:
            return 0.0, []
        r = self.rows
        requests = sum(r[j * ROW + R_N] for j in hits)
        bits = 0
        for j in hits:
            bits |= r[j * ROW + R_BITS]
        areas = _popcount(bits)
        # areas are topics: students of one tutoring product, each asking a few science questions,
        # cover many areas but two or three tasks (capability_space.TASK_OF); a sweep covers many
        tasks = len({TASK_OF[a] for a in range(N_CAPABILITIES) if bits >> a & 1})
        strength = min(1.0, max(0.0, (requests - 15) / REQ_SPAN)) * min(1.0, max(0.0, (areas - 10) / 12)) * \
            min(1.0, max(0.0, (tasks - 6) / TASK_SPAN))
        return strength, self.flagged()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EndUsers) and self.ids == other.ids and self.rows == other.rows

    __hash__ = None   # mutable

    # -- persistence
    def to_list(self) -> list:
        return [self.ids, self.rows.tolist()]

    @classmethod
    def from_list(cls, doc: list) -> EndUsers:
        eu = cls()
        eu.ids = list(doc[0])
        eu.rows = array("q", doc[1])
        return eu
