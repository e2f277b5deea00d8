"""Typed messages between the pipeline's stages (``models/pipeline.py``).

::

    RequestEvent ─AccountStage─► LinkRecord ─LinkObserver─► LinkObservation
        ─Linker─► PairEvidence ─ClusterStage─► alerts + ClusterMemberRow

A :class:`LinkRecord` crosses a process boundary in ``replay --jobs 2`` (as a
plain tuple, ``marshal``); observations and evidence cross Kafka topics in the
stream (``to_wire``/``from_wire``). The wire form is the JSON object with the
short keys earlier versions wrote, so workers of both versions read each
other's messages during a rolling upgrade.
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

    def to_wire(self) -> dict:
        return {"a": self.account, "sa": self.summary, "kind": self.kind, "w": self.weight, "ts": self.ts_ms,
                "e": self.event_id, "m": self.model, "p": [list(p) for p in self.partners]}

    @classmethod
    def from_wire(cls, d: dict) -> PairEvidence:
        """Raises KeyError/TypeError/ValueError on a message that is not pair evidence."""
        ev = cls(d["a"], d.get("sa") or {}, d["kind"], float(d["w"]), d["ts"], d.get("e"), d.get("m"),
                 [Partner(a, int(s), sb) for a, s, sb in d["p"]])
        if not (isinstance(ev.account, str) and isinstance(ev.ts_ms, int)):
            raise TypeError("pair evidence with fields of the wrong type")
        return ev
