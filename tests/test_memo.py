"""Bounded memory (issue #18): the one memo class, and the bounds of the structures that grow
with accounts, clusters and time -- by count and by event-time age."""
import pytest

from distillguard.models import Detector, DetectorConfig
from distillguard.models.clusters import RETIRED_TTL_MS
from distillguard.models.elicitation import default_model
from distillguard.models.pipeline import CrossAccountPipeline
from distillguard.models.memo import AgedMemo, Memo, memo_bounds
from distillguard.models.scoring import MAX_COHORTS, OTHER_COHORT
from distillguard.models.state import AccountState

from .test_clusters import hydra_events, run as run_hydra
from .test_detector import event


def test_memo_is_a_deterministic_lru_of_fixed_size():
    calls = []

    def square(x):
        calls.append(x)
        return x * x

    m = Memo("test.square", 3, register=False)
    for x in [1, 2, 3, 1, 4, 5, 1, 2]:
        assert m.get_or(x, square) == x * x
    assert len(m) == 3 and list(m) == [5, 1, 2]           # least recently used first
    assert calls == [1, 2, 3, 4, 5, 2]                     # 1 stayed: it was used again
    assert "test.square" not in memo_bounds()


def test_module_memos_report_their_bounds():
    default_model()   # the shipped elicitation model registers its memo when it is built
    bounds = memo_bounds()
    for name in ("text.keyed_hashers", "features.opening_capability", "elicitation.verdicts"):
        size, bound = bounds[name]
        assert 0 <= size <= bound


def test_detector_caps_accounts_and_max_scores_by_count():
    d = Detector(DetectorConfig(max_accounts=5, min_events=1, score_every=1))
    for i in range(12):
        d.process_one(event(f"a{i:02d}", 1_000 + i, "hello there"))
    assert len(d.states) == 12
    gone = d.expire_idle(2_000)                            # nobody idle for 48 h: the count bound acts
    assert gone == [f"a{i:02d}" for i in range(7)]         # the longest idle first
    assert sorted(d.states) == [f"a{i:02d}" for i in range(7, 12)]
    assert len(d.max_scores) <= 5
    assert all(size <= bound for size, bound in d.bounds().values())


def test_scorer_cohorts_are_capped():
    d = Detector()
    for i in range(MAX_COHORTS + 5):
        s = AccountState()
        s.tier = f"tier-{i}"
        d.scorer.cohort(s)
    s = AccountState()
    s.tier = "one-more"
    assert d.scorer.cohort(s) == OTHER_COHORT
    assert d.bounds()["scorer.cohorts"] == (MAX_COHORTS, MAX_COHORTS)


def test_cluster_scores_and_retired_records_are_pruned():
    h, _ = run_hydra(hydra_events()[0])
    engine = h.clusters.engine
    assert engine.max_scores
    t = engine.watermark + 13 * 3_600_000
    engine._clock.push(t)                                   # the stream's clock moves on, no evidence
    engine._sweep(t)                                        # pairs idle past their TTL: clusters fall apart
    assert not engine.clusters and engine.retired
    assert set(engine.max_scores) <= set(engine.retired)    # only records that may still carry an alert
    t += 3 * 3_600_000
    engine._clock.push(t)
    engine._sweep(t)                                        # their alerts close when quiet...
    assert all(c.alert is None for c in engine.retired.values())
    t += RETIRED_TTL_MS
    engine._sweep(t)                                        # ...and the records go a day later
    assert not engine.retired and not engine.max_scores
    assert all(size <= bound for size, bound in engine.bounds().values())


def test_pipeline_bounds_cover_every_stage():
    h = CrossAccountPipeline(key=b"k")
    names = {**h.observer.bounds(), **h.linker.bounds(), **h.clusters.engine.bounds()}
    assert {"observer.sent", "observer.profiles", "linker.keys", "engine.pairs", "engine.max_scores"} <= set(names)


def test_aged_memo_holds_the_active_keys_not_its_count_bound():
    """Accounts arriving and going idle (a new set of 50 every hour of event time): an LRU memo
    bounded by count only fills to its bound with idle ids; the aged one holds the last 6 h."""
    hour = 3_600_000
    lru, aged = Memo("test.lru", 4096, register=False), AgedMemo("test.aged", 4096, 6 * hour, register=False)
    sizes = []
    for h in range(100):
        for i in range(50):
            account = f"a{h}-{i}"
            lru.put(account, 1)
            aged.put(account, 1, now=h * hour)
            assert aged.get(account, h * hour) == 1
        sizes.append(len(aged))
    assert len(lru) == 4096
    assert max(sizes[10:]) == min(sizes[10:]) == 7 * 50    # the current hour and the 6 before it
    with pytest.raises(ValueError):
        AgedMemo("test.bad", 0, 1)
