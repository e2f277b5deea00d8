"""Unit tests of the Faust wiring of cross-account detection (streams/cluster_agents.py), no broker."""
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from distillguard.models.records import PairEvidence, Partner, evidence_message
from distillguard.streams.cluster_agents import (_batch, batch_messages, evidence_messages, link_partition,
                                                 read_evidence)


def test_link_partition_is_kafkas_default_partitioner_of_the_link_key():
    # observations sent by an earlier version (keyed by link key, partitioned by the producer)
    # and by this one (batched per partition) of one key reach the same linker
    for n in (1, 3, 4, 12):
        for i in range(300):
            key = f"pay:{i:016x}"
            assert link_partition(key, n) == DefaultPartitioner()(key.encode(), list(range(n)), [])
            assert link_partition(key, n) == link_partition(key, n)   # cached


def test_batch_messages_split_below_the_limit_and_keep_order():
    items = [{"k": f"net:{i}", "pad": "x" * 100} for i in range(500)]
    msgs = batch_messages(items, limit=4096)
    assert len(msgs) > 1 and all(len(m) <= 4096 for m in msgs)
    assert [x for m in msgs for x in _batch(m)] == items
    assert batch_messages(items[:3]) == [orjson.dumps(items[:3])]
    big = [{"pad": "y" * 10_000}]                       # one item larger than the limit: sent alone
    assert batch_messages(big, limit=4096) == [orjson.dumps(big)]


def test_readers_take_a_batch_or_the_single_object_form():
    assert _batch(b'[{"k": "a"}, {"k": "b"}]') == [{"k": "a"}, {"k": "b"}]
    assert _batch(b'{"k": "a"}') == [{"k": "a"}]       # one observation per message (earlier versions)


def _evidence(n_events: int = 6000) -> list:
    """The linker's evidence over the first requests of the default scenario (real partner lists)."""
    import itertools

    from distillguard.models.linking import Linker, LinkObserver
    from distillguard.models.pipeline import AccountStage
    from distillguard.models.simulation import load_scenario, simulate
    from distillguard.schemas import event_from_dict
    stage = AccountStage(key=b"k" * 32)
    observer, linker = LinkObserver(b"k" * 32, stage.config.clusters), Linker(stage.config.clusters)
    found = []
    for doc in itertools.islice(simulate(load_scenario("default"), seed=1).events(), n_events):
        out = stage.process(event_from_dict(doc))
        for obs in observer.observe(out.record) if out is not None else ():
            ev = linker.process(obs)
            if ev is not None:
                found.append(ev)
    return found


def test_evidence_wire_versions_decode_to_the_same_evidence_and_version_2_is_smaller():
    evidence = _evidence()
    assert len(evidence) > 200 and sum(len(e.partners) for e in evidence) > 3 * len(evidence)
    v1, v2 = evidence_messages(evidence, 1), evidence_messages(evidence, 2)
    assert v1 == batch_messages([e.to_wire() for e in evidence])   # version 1 is what earlier versions wrote
    decoded = {}
    for version, msgs in ((1, v1), (2, v2)):
        items, bad = [], []
        for m in msgs:
            found, why = read_evidence(m)
            items += found
            bad += why
        assert bad == []
        decoded[version] = items
    assert decoded[1] == decoded[2] == evidence
    assert sum(map(len, v2)) < 0.6 * sum(map(len, v1))


def test_a_split_evidence_message_carries_the_summaries_its_part_names():
    evidence = _evidence(3000)
    msgs = evidence_messages(evidence[:120], 2)
    small = batch_messages(evidence[:120], limit=8192,
                           encode=lambda part: orjson.dumps(evidence_message(part, 2)))
    assert len(msgs) == 1 and len(small) > 2
    assert all(len(m) <= 8192 for m in small if len(read_evidence(m)[0]) > 1)
    assert [e for m in small for e in read_evidence(m)[0]] == evidence[:120]


def test_evidence_readers_take_every_form_and_skip_bad_items_with_a_reason():
    ev = PairEvidence("b", {"n": 1}, "wrap", 0.5, 10, "e1", "m", [Partner("a", 1, {"n": 3})])
    assert read_evidence(orjson.dumps(ev.to_wire())) == ([ev], [])            # one object (earliest)
    assert read_evidence(orjson.dumps([ev.to_wire()])) == ([ev], [])          # version 1
    doc = evidence_message([ev], 2)
    good = doc["ev"][0]
    doc["ev"] += [{**good, "sa": 7}, {**good, "sa": -1}, {**good, "sa": True}, {**good, "p": [["a", 1, "0"]]},
                  {**good, "ts": "10"}, {"a": "x"}]
    found, bad = read_evidence(orjson.dumps(doc))
    assert found == [ev] and len(bad) == 6, bad
    assert bad[0].startswith("IndexError") and bad[1].startswith("TypeError")
    for table in ([{"n": 1}, 3], {"n": 1}, None):                                # not a list of summaries
        with pytest.raises(TypeError):
            read_evidence(orjson.dumps({**evidence_message([ev], 2), "s": table}))


def test_the_evidence_wire_version_is_a_setting_of_1_or_2(monkeypatch):
    from distillguard.streams.settings import SettingsError, load_settings
    monkeypatch.setenv("DG_DEV", "1")
    monkeypatch.delenv("DG_CLUSTER_WIRE", raising=False)
    assert load_settings().cluster_wire == 2
    monkeypatch.setenv("DG_CLUSTER_WIRE", "1")
    assert load_settings().cluster_wire == 1
    monkeypatch.setenv("DG_CLUSTER_WIRE", "3")
    with pytest.raises(SettingsError, match="DG_CLUSTER_WIRE"):
        load_settings()
