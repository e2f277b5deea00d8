"""Typed messages between the pipeline's stages (``models/pipeline.py``).

::

    RequestEvent ─AccountStage─► LinkRecord ─LinkObserver─► LinkObservation
        ─Linker─► PairEvidence ─ClusterStage─► alerts + ClusterMemberRow

A :class:`LinkRecord` crosses a process boundary in ``replay --jobs 2`` (as a
plain tuple, ``marshal``); observations and evidence cross Kafka topics in the
stream (``to_wire``/``from_wire``). An item's wire form is the JSON object with
the short keys earlier versions wrote. Evidence travels in messages of many
items, and since version 2 (:func:`evidence_message`) a message names each
account summary once: a hydra's partners repeat in nearly every item of a
batch, and their summaries were 90% of its bytes. Readers take both versions;
``DG_CLUSTER_WIRE=1`` keeps writing version 1 while older workers still read.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, TypedDict

# (reasoning, topic, wrapper fingerprint) of a request: what the observer's per-account
# profile learns (``linking._Profile.learn``); a plain tuple, so a LinkRecord stays marshal-able
LinkFeatures = tuple[bool, int, int]


class AccountSummary(TypedDict, total=False):
    """What the observer says about an account in every observation (no text):
    requests ``n``, day-decayed requests ``rd``, reasoning share ``r``, repeated-wrapper
    share ``tp``, topic mix ``t`` (topic id as str -> decayed count), first request
    ``first``, account creation ``created``, tier, networks used in the last hour ``nets``."""
    n: int
    rd: float
    r: float
    tp: float
    t: dict[str, float]
    first: int
    created: int | None
    tier: str | None
    nets: int


class LinkRecord(NamedTuple):
    """All that the cross-account stage reads of one request (``linking.link_record``)."""
    account: str
    ts_ms: int
    event_id: str
    model: str
    created_ms: int | None
    tier: str | None
    inputs: list[tuple[str, Any]]        # (kind, raw input), ``linking.link_inputs``; never leaves the core
    features: LinkFeatures | None


@dataclass(slots=True)
class LinkObservation:
    """Stage 1 → 2: ``account`` used link key ``key`` (a keyed fingerprint) at ``ts_ms``."""
    account: str
    kind: str
    key: str
    ts_ms: int
    event_id: str
    model: str | None
    summary: AccountSummary

    def to_wire(self) -> dict:
        return {"a": self.account, "kind": self.kind, "k": self.key, "ts": self.ts_ms, "e": self.event_id,
                "m": self.model, "s": self.summary}

    @classmethod
    def from_wire(cls, d: dict) -> LinkObservation:
        """Raises KeyError/TypeError on a message that is not an observation."""
        obs = cls(d["a"], d["kind"], d["k"], d["ts"], d.get("e"), d.get("m"), d["s"])
        if not (isinstance(obs.account, str) and isinstance(obs.key, str) and isinstance(obs.ts_ms, int)
                and isinstance(obs.summary, dict)):
            raise TypeError("link observation with fields of the wrong type")
        return obs


class Partner(NamedTuple):
    account: str
    sync: int                 # 1 if within ``ClusterConfig.sync_ms`` of the observation
    summary: AccountSummary


@dataclass(slots=True)
class PairEvidence:
    """Stage 2 → 3: ``account`` shares a key of ``kind`` (evidence ``weight``) with ``partners``."""
    account: str
    summary: AccountSummary
    kind: str
    weight: float
    ts_ms: int
    event_id: str | None
    model: str | None
    partners: list[Partner]

    def to_wire(self, ref=None) -> dict:
        """The item; ``ref`` (version 2, :func:`evidence_message`): each summary's index in its
        message's table, written in the summary's place."""
        put = _inline if ref is None else ref
        return {"a": self.account, "sa": put(self.summary), "kind": self.kind, "w": self.weight, "ts": self.ts_ms,
                "e": self.event_id, "m": self.model, "p": [[p.account, p.sync, put(p.summary)] for p in self.partners]}

    @classmethod
    def from_wire(cls, d: dict, summaries: list | None = None) -> PairEvidence:
        """An item as ``to_wire`` writes it, or (``summaries``: its message's table, version 2)
        with summary indexes in their place. Raises KeyError/IndexError/TypeError/ValueError on
        an item that is not pair evidence."""
        if summaries is None:
            ev = cls(d["a"], d.get("sa") or {}, d["kind"], float(d["w"]), d["ts"], d.get("e"), d.get("m"),
                     [Partner(a, int(s), sb) for a, s, sb in d["p"]])
        else:
            ev = cls(d["a"], summaries[_index(d["sa"])], d["kind"], float(d["w"]), d["ts"], d.get("e"),
                     d.get("m"), [Partner(a, int(s), summaries[_index(i)]) for a, s, i in d["p"]])
        if not (isinstance(ev.account, str) and isinstance(ev.ts_ms, int)):
            raise TypeError("pair evidence with fields of the wrong type")
        return ev


def _inline(summary: AccountSummary) -> AccountSummary:   # version 1: the summary itself
    return summary


def _index(i: Any) -> int:
    # a summary index as written: a plain non-negative int (not a bool, not from the end)
    if type(i) is not int or i < 0:
        raise TypeError(f"summary index {i!r} is not a non-negative integer")
    return i


def evidence_message(items: list[PairEvidence], version: int = 2) -> Any:
    """Pair evidence as the JSON value of one message. Version 1: the list of ``to_wire``
    items. Version 2: ``{"v": 2, "s": [summary, ...], "ev": [item, ...]}`` where each item's
    ``sa`` and each partner's third element are indexes into ``s``. A summary object is
    written once however many items name it: the linker hands out the summary it keeps per
    anchor, so a partner's repeats are the same object (equal copies are written apart,
    which decodes to the same values).

    >>> s = {"n": 3}
    >>> ev = PairEvidence("b", {"n": 1}, "wrap", 0.5, 10, "e1", "m", [Partner("a", 1, s)])
    >>> doc = evidence_message([ev, ev])
    >>> doc["s"], [item["p"] for item in doc["ev"]]
    ([{'n': 1}, {'n': 3}], [[['a', 1, 1]], [['a', 1, 1]]])
    >>> items, table = evidence_items(doc)
    >>> PairEvidence.from_wire(items[1], table) == ev
    True
    """
    if version == 1:
        return [e.to_wire() for e in items]
    slot: dict[int, int] = {}   # id(summary) -> index; the items hold the objects while this runs
    table: list = []

    def ref(summary) -> int:
        i = slot.get(id(summary))
        if i is None:
            i = slot[id(summary)] = len(table)
            table.append(summary)
        return i

    return {"v": 2, "s": table, "ev": [e.to_wire(ref) for e in items]}


def evidence_items(doc: Any) -> tuple[list, list | None]:
    """A decoded evidence message: (its items, its summary table or None for version 1), for
    ``PairEvidence.from_wire(item, table)`` item by item (a bad item is skipped, not the
    message). Version 1 is a list of items or (earliest versions) one item. Raises TypeError
    on a version-2 message whose table is not a list of objects."""
    if isinstance(doc, dict) and "ev" in doc and doc.get("v") == 2:
        table, items = doc.get("s"), doc["ev"]
        if not (isinstance(table, list) and isinstance(items, list) and all(isinstance(x, dict) for x in table)):
            raise TypeError("pair evidence message with a malformed summary table")
        return items, table
    return (doc if isinstance(doc, list) else [doc]), None
