"""Bounded memory: one memo class for every cache of derived values, and a uniform size report.

``Memo`` replaces the "clear the dict when it is full" caches that were spread over the core:
a clear drops the hot entries with the cold ones (a burst of recomputation, then the same
climb to the limit), and each had its own limit and its own code. A ``Memo`` is a
least-recently-used map with a fixed number of entries: deterministic (eviction order
depends only on the order of calls, never on hashes or the clock), and cheap (one dict
lookup and a ``move_to_end`` per hit).

Every bounded structure of the core can say how full it is: ``bounds()`` methods return
``{name: (size, bound)}`` (:data:`Bounds`), and :func:`memo_bounds` reports every memo
created in this process. The worker's status page shows them together
(``/distillguard/``, key ``bounds``), and the soak test checks that none is over its bound
and none is still growing at the end.

>>> m = Memo("doc.square", 2)
>>> m.get_or(3, lambda x: x * x), m.get_or(4, lambda x: x * x), m.get_or(3, lambda x: x * x)
(9, 16, 9)
>>> m.get_or(5, lambda x: x * x), 4 in m, 3 in m       # 4 was the least recently used
(25, False, True)
>>> memo_bounds()["doc.square"]
(2, 2)
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

Bounds = dict[str, tuple[int, int]]   # structure name -> (current size, bound)
_MEMOS: dict[str, Memo | AgedMemo] = {}         # name -> the latest memo of that name (a few, module-level)
_MISSING = object()

class _Keys:
    """What both memos answer about their keys (``_data``: an OrderedDict, least recently used first)."""

    __slots__ = ()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._data

    def __iter__(self):
        """Keys, least recently used first."""
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class Memo(_Keys):
    """A least-recently-used memo of at most ``bound`` entries. A module-level memo registers
    under ``name`` (``memo_bounds``); one owned by an object is reported by its owner's
    ``bounds()`` instead (``register=False``)."""

    __slots__ = ("name", "bound", "_data")

    def __init__(self, name: str, bound: int, register: bool = True):
        if bound < 1:
            raise ValueError(f"memo {name}: bound must be >= 1, got {bound}")
        self.name = name
        self.bound = bound
        self._data: OrderedDict = OrderedDict()
        if register:
            _MEMOS[name] = self

    @property
    def entries(self) -> OrderedDict:
        """The memo's map, least recently used first, for compiled code that inlines ``get``
        (``models/_linkprofile.c``): a hit must ``move_to_end`` its key; entries go in through
        ``put`` only."""
        return self._data

    def get(self, key: Hashable, default=None, _missing=_MISSING):
        """The value memoised for ``key`` (now the most recently used), else ``default``."""
        # a miss is one lookup (no raised KeyError), a hit two; the sentinel is a local (a default
        # argument), not a global: timeit, this machine, hit 644 -> 331 ns, miss 357 -> 239 ns
        value = self._data.get(key, _missing)
        if value is _missing:
            return default
        self._data.move_to_end(key)
        return value

    def put(self, key: Hashable, value) -> None:
        """Remember ``value`` for ``key``; the least recently used entry goes if over the bound."""
        data = self._data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.bound:
            data.popitem(last=False)

    def get_or(self, key: Hashable, compute: Callable):
        """``get(key)``, computing and remembering ``compute(key)`` on a miss."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            value = compute(key)
            self.put(key, value)
        return value


class AgedMemo(_Keys):
    """A ``Memo`` whose entries also go once unused for ``max_age`` of event time: a memo of
    derived values about *active* things (accounts) keeps the active ones only, instead of
    filling to its count bound with the ids of things gone idle. The clock is the highest event
    time seen (``now`` arguments; never the wall clock), so it stays deterministic; LRU order is
    then the order of last use, and the expired entries are all at its front.

    >>> m = AgedMemo("doc.aged", 100, max_age=10)
    >>> m.put("a", 1, now=0); m.put("b", 2, now=5); m.get("a", now=6)
    1
    >>> m.put("c", 3, now=16); sorted(m)      # b last used at 5 < 16 - 10; a (6) stays
    ['a', 'c']
    """

    __slots__ = ("name", "bound", "max_age", "_data", "_now")

    def __init__(self, name: str, bound: int, max_age: int, register: bool = True):
        if bound < 1 or max_age < 0:
            raise ValueError(f"memo {name}: bound must be >= 1 and max_age >= 0, got {bound}, {max_age}")
        self.name, self.bound, self.max_age = name, bound, max_age
        self._data: OrderedDict = OrderedDict()   # key -> (value, last use)
        self._now = 0
        if register:
            _MEMOS[name] = self

    def get(self, key: Hashable, now: int, default=None):
        """The value for ``key`` (its last use now ``now``), else ``default``."""
        entry = self._data.get(key)
        if entry is None:
            return default
        if now > self._now:
            self._now = now
        self._data[key] = (entry[0], self._now)
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value, now: int) -> None:
        """Remember ``value``; entries unused for more than ``max_age``, and the least recently
        used beyond the bound, go."""
        if now > self._now:
            self._now = now
        data = self._data
        data[key] = (value, self._now)
        data.move_to_end(key)
        if len(data) > self.bound:
            data.popitem(last=False)
        oldest = self._now - self.max_age
        while data[next(iter(data))][1] < oldest:
            data.popitem(last=False)


def memo_bounds() -> Bounds:
    """``{name: (entries, bound)}`` of every memo of this process, by name."""
    return {name: (len(m), m.bound) for name, m in sorted(_MEMOS.items())}
