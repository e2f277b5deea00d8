"""The detection program as stages with typed inputs and outputs, and their composition.

::

    RequestEvent ─► AccountStage ─► alerts, FeatureSnapshotRow, LinkRecord
                      └ end_batch(low watermark) ─► closes, AccountMinuteRow, expired accounts
    LinkRecord ─► LinkObserver ─► LinkObservation ─► Linker ─► PairEvidence
    PairEvidence ─► ClusterStage ─► alerts, ClusterMemberRow

Two drivers run these same objects:

* ``distillguard replay`` (``streams/replay.py``) drives a :class:`Pipeline`: all
  stages in one process, or the cross-account part (:class:`CrossAccountPipeline`)
  in a second one, fed ``LinkRecord``s;
* the stream worker runs ``AccountStage`` and ``LinkObserver`` in its detect agent,
  ``Linker`` in the link agent and ``ClusterStage`` in the cluster agent; the agents
  only parse, route typed outputs between topics and write them out.

Every cadence lives here and is a function of event time, never of batch sizes,
wall-clock time or how often a driver calls: quiet per-account alerts are closed
at each minute boundary the low watermark passes (and dated when they became due,
``lifecycle``), idle accounts are freed every ``EXPIRY_EVERY_MS`` of it, and the
cluster engine closes quiet clusters at each minute boundary of its own clock.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

from distillguard.schemas import Alert, RequestEvent

from .aggregates import MinuteAggregates
from .clusters import ClusterEngine
from .config import DetectorConfig
from .detector import DEV_KEY, AccountDetector
from .elicitation import ElicitationModel
from .features import prompt_parts
from .feedback import FeedbackBook
from .linking import Linker, LinkObserver, link_record
from .records import LinkRecord, PairEvidence
from .rows import AccountMinuteRow, AlertEventRow, ClusterMemberRow, FeatureSnapshotRow, Row
from .state import AccountState

TICK_MS = 60_000                 # quiet alerts are closed at minute boundaries of event time
EXPIRY_EVERY_MS = 10 * 60_000    # idle accounts are freed this often (event time)


def _minute(ts_ms: int) -> int:
    return ts_ms // TICK_MS * TICK_MS


@dataclass(slots=True)
class AccountOutput:
    """``AccountStage.process`` of one request."""
    alerts: list[Alert]
    snapshot: FeatureSnapshotRow | None
    record: LinkRecord               # what the cross-account stage reads of the request


@dataclass(slots=True)
class BatchOutput:
    """``AccountStage.end_batch``: closes due at the low watermark, the batch's minute rows,
    the accounts whose state was freed."""
    alerts: list[Alert] = field(default_factory=list)
    minute_rows: list[AccountMinuteRow] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ClusterOutput:
    """``ClusterStage`` (and ``CrossAccountPipeline``) output."""
    alerts: list[Alert] = field(default_factory=list)
    members: list[ClusterMemberRow] = field(default_factory=list)

    def extend(self, other: ClusterOutput) -> None:
        self.alerts.extend(other.alerts)
        self.members.extend(other.members)


@dataclass(slots=True)
class Output:
    """``Pipeline`` output: alert events and rows for the analysts' tables."""
    alerts: list[Alert] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)    # snapshots, minute rows, cluster members
    expired: list[str] = field(default_factory=list)

    def table_rows(self) -> list[Row]:
        """Every row to store, the alert events' included."""
        return [AlertEventRow.of(a) for a in self.alerts] + self.rows


class AccountStage:
    """Per-account detection plus the minute aggregates, with the per-account cadence."""

    def __init__(self, config: DetectorConfig | None = None, key: bytes = DEV_KEY,
                 states: MutableMapping[str, AccountState] | None = None, feedback: FeedbackBook | None = None,
                 elicitation: ElicitationModel | None = None):
        self.detector = AccountDetector(config, key, states, elicitation)
        self.detector.lifecycle.feedback = feedback   # analysts' decisions temper findings (models/feedback.py)
        self.aggregates = MinuteAggregates()
        self._ticked = 0             # last minute boundary closes ran at
        self._expired_at = 0         # last expiry pass
        self.expired_total = 0

    @property
    def config(self) -> DetectorConfig:
        return self.detector.config

    @property
    def key(self) -> bytes:
        return self.detector.key

    def process(self, event: RequestEvent, position: tuple[int, int] | None = None) -> AccountOutput | None:
        """One request's per-account output; None for a re-delivery (counted once): an event id
        seen within the dedupe window, or an input ``position`` (source, offset) its account's
        state already holds (``AccountDetector.process``)."""
        parts = prompt_parts(event)   # one scan of the messages for features and link inputs
        r = self.detector.process(event, parts, position)
        if r is None:
            return None
        f = r.features
        self.aggregates.learn_one(event.account_id, event.ts_ms, f.input_tokens, f.output_tokens, f.error,
                                  f.skeleton_fp, f.area)
        return AccountOutput(r.alerts, r.snapshot, link_record(event, f, parts))

    def end_batch(self, low_watermark: int) -> BatchOutput:
        """After a batch: the event time every source has reached is ``low_watermark``
        (the minimum over the partitions a worker reads; a replay's single stream's maximum)."""
        out = BatchOutput(minute_rows=self.aggregates.rows())
        minute = _minute(low_watermark)
        if minute > self._ticked:
            self._ticked = minute
            out.alerts = self.detector.advance(minute)
            if minute - self._expired_at >= EXPIRY_EVERY_MS:
                self._expired_at = minute
                out.expired = self.detector.expire_idle(minute)
                self.expired_total += len(out.expired)
        return out

    def forget_open_alerts(self) -> None:
        """The stream's partitions moved (rebalance): see ``AccountDetector.forget_open_alerts``."""
        self.detector.forget_open_alerts()


class ClusterStage:
    """Stage 3 (``ClusterEngine``) with its cadence: quiet clusters close at each minute
    boundary the engine's clock (``close_clock``) passes, checked after every evidence message."""

    def __init__(self, config: DetectorConfig | None = None, settle: int = 1, feedback: FeedbackBook | None = None,
                 shards: int = 1):
        self.engine = ClusterEngine(config, settle=settle, shards=shards)
        self.engine.lifecycle.feedback = feedback
        self._ticked = 0

    def process(self, evidence: PairEvidence) -> ClusterOutput:
        alerts = self.engine.process(evidence)
        minute = _minute(self.engine.close_clock())
        if minute > self._ticked:
            self._ticked = minute
            alerts += self.engine.close_quiet(minute)
        return ClusterOutput(alerts, self.engine.drain_rows())

    def finish(self) -> ClusterOutput:
        """The input went quiet (end of a replay; no evidence for a while in the stream):
        score every cluster still waiting to settle."""
        return ClusterOutput(self.engine.flush(), self.engine.drain_rows())

    def stats(self) -> dict:
        return self.engine.stats()


class CrossAccountPipeline:
    """Stages 1-3 chained in one process: ``LinkRecord`` → cluster alerts and rows. Replay runs it
    in-process or in a child process (``replay --jobs 2``); the stream runs the same three
    stage objects in three agents."""

    def __init__(self, config: DetectorConfig | None = None, key: bytes = DEV_KEY, settle: int = 1,
                 feedback: FeedbackBook | None = None, shards: int = 1):
        config = config or DetectorConfig()
        self.observer = LinkObserver(key, config.clusters)
        self.linker = Linker(config.clusters)
        self.clusters = ClusterStage(config, settle, feedback, shards)

    def process(self, record: LinkRecord) -> ClusterOutput:
        out = ClusterOutput()
        for obs in self.observer.observe(record):
            evidence = self.linker.process(obs)
            if evidence is not None:
                out.extend(self.clusters.process(evidence))
        return out

    def finish(self) -> ClusterOutput:
        return self.clusters.finish()


HydraPipeline = CrossAccountPipeline   # the name before 0.x; kept one release


class Pipeline:
    """The whole detection program in one process: ``process(event)`` per request,
    ``end_batch(low_watermark)`` after each batch, ``finish()`` at the end of the input.

    ``cross`` is the cross-account part: built by default, ``None`` turns it off, or pass
    one of your own. ``feedback``: analysts' decisions both stages learn from (the stream
    fills the same book from the feedback topic). ``elicitation``: the reasoning-elicitation
    model (default: the shipped one; evaluation fits one without a held-out family)."""

    def __init__(self, config: DetectorConfig | None = None, key: bytes = DEV_KEY,
                 states: MutableMapping[str, AccountState] | None = None,
                 cross: CrossAccountPipeline | None | bool = True, feedback: FeedbackBook | None = None,
                 elicitation: ElicitationModel | None = None):
        self.accounts = AccountStage(config, key, states, feedback, elicitation)
        if cross is True:
            cross = CrossAccountPipeline(self.accounts.config, key, feedback=feedback)
        self.cross: CrossAccountPipeline | None = cross or None

    def process(self, event: RequestEvent) -> Output:
        account = self.accounts.process(event)
        if account is None:   # a re-delivered event id
            return Output()
        return self.join(account, None if self.cross is None else self.cross.process(account.record))

    @staticmethod
    def join(account: AccountOutput, cross: ClusterOutput | None) -> Output:
        """One request's output from its two parts (``replay --jobs 2`` joins them across processes)."""
        out = Output(list(account.alerts), [account.snapshot] if account.snapshot is not None else [])
        if cross is not None:
            out.alerts.extend(cross.alerts)
            out.rows.extend(cross.members)
        return out

    def end_batch(self, low_watermark: int) -> Output:
        b = self.accounts.end_batch(low_watermark)
        return Output(b.alerts, list(b.minute_rows), b.expired)

    def finish(self) -> Output:
        out = Output()
        if self.cross is not None:
            c = self.cross.finish()
            out.alerts, out.rows = c.alerts, list(c.members)
        return out
