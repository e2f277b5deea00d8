"""Hostile input (≥ 10k messages): 1 MB prompts, invalid UTF-8, wrong types, deep
nesting, missing fields, huge logit_bias, strings built for regex backtracking.
The worker must not crash; every rejected message lands in the DLQ with a reason
(the same one the parser gives locally); valid ones are processed; CPU per event
stays bounded."""
import random
import time
from collections import Counter

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from distillguard.schemas import BadEvent, parse_event
from distillguard.streams.kafka_io import admin, ensure_topics

from ..workers import WorkerProcess
from .conftest import pick, proc_cpu_s, read_all

pytestmark = [pytest.mark.faults, pytest.mark.integration]

BIG = 4 * 1024 * 1024  # the requests topic takes 1 MB+ events, as a gateway's topic may


def _event(i: int, **over) -> dict:
    ev = {"schema_version": "1", "event_id": f"h{i}", "ts_ms": 1793613600000 + i * 10, "account_id": f"hacc{i % 50}",
          "model": "atlas-2", "operation": "chat",
          "messages": [{"role": "user", "content": f"question {i}: how do tides work?"}],
          "params": {"max_tokens": 256}, "usage": {"input_tokens": 12, "output_tokens": 80}, "status": "ok"}
    ev.update(over)
    return ev


BACKTRACK = [  # pathological shapes for naive regexes, each well under the size limit
    lambda k: "a" * k + "!",
    lambda k: "(" * k,
    lambda k: "{{" * (k // 2) + "}",
    lambda k: "Q: " * (k // 3),
    lambda k: "1." * (k // 2),
    lambda k: " \t" * (k // 2) + "x",
    lambda k: "step by step " * (k // 13),
    lambda k: "<" * k + "/>",
    lambda k: "\\" * k,
    lambda k: "aaaa@" * (k // 5) + "@",
    lambda k: "#### " * (k // 5),
    lambda k: "```" * (k // 3),
]


def hostile_messages(n: int, rnd: random.Random) -> list[bytes]:
    out: list[bytes] = []
    big = "x" * (1024 * 1024)
    for i in range(8):                                                 # 1 MB prompts
        out.append(orjson.dumps(_event(i, messages=[{"role": "user", "content": big}])))
    i = 100
    while len(out) < n:
        i += 1
        kind = i % 12
        if kind == 0:                                                  # invalid UTF-8
            raw = orjson.dumps(_event(i))
            cut = rnd.randrange(20, len(raw) - 5)
            out.append(raw[:cut] + bytes([rnd.choice([0xff, 0xfe, 0xc3, 0x80, 0xed])]) + raw[cut:])
        elif kind == 1:                                                # wrong types
            field = rnd.choice(["ts_ms", "event_id", "account_id", "messages", "params", "usage", "model"])
            out.append(orjson.dumps(_event(i, **{field: rnd.choice([[1, 2], {"a": 1}, 3.5, True, "12"])})))
        elif kind == 2:                                                # deep nesting
            depth = rnd.choice([100, 600, 5000])
            if rnd.random() < 0.5:
                out.append(b"[" * depth + b"]" * depth)
            else:
                nested = b'{"a":' * depth + b"1" + b"}" * depth
                raw = orjson.dumps(_event(i, params={"max_tokens": 5, "extra": "X"}))
                out.append(raw.replace(b'"X"', nested))
        elif kind == 3:                                                # missing fields
            ev = _event(i)
            for f in rnd.sample(sorted(ev), rnd.randint(1, 3)):
                del ev[f]
            out.append(orjson.dumps(ev))
        elif kind == 4:                                                # huge logit_bias
            size = rnd.choice([4000, 5000, 50_000])
            out.append(orjson.dumps(_event(i, params={"logit_bias": {str(t): -100 for t in range(size)}})))
        elif kind == 5:                                                # backtracking bait, valid events
            k = rnd.choice([2_000, 20_000, 100_000])
            text = BACKTRACK[(i // 12) % len(BACKTRACK)](k)
            role = rnd.choice(["user", "system"])
            out.append(orjson.dumps(_event(i, messages=[{"role": role, "content": text},
                                                        {"role": "user", "content": text[:500]}])))
        elif kind == 6:                                                # not an object / garbage
            out.append(rnd.choice([b"null", b"42", b'"str"', b"[]", b"", b"\x00\x01\x02", b"{" * 10]))
        elif kind == 7:                                                # bad values
            out.append(orjson.dumps(_event(i, **rnd.choice([{"ts_ms": -5}, {"operation": "drop tables"},
                                                             {"schema_version": "9"}, {"account_id": ""},
                                                             {"messages": [{"role": "god", "content": "x"}]}]))))
        elif kind == 8:                                                # odd but valid: unicode, many messages
            msgs = [{"role": "user", "content": "\u202e\u0000" + chr(rnd.choice([0x100, 0x4e2d, 0x1f600, 0xfffd, 0x10ffff])) * 50}
                    for _ in range(rnd.choice([1, 50, 2000]))]
            out.append(orjson.dumps(_event(i, messages=msgs, extra_field={"k": [1] * 100})))
        else:                                                          # ordinary valid traffic
            out.append(orjson.dumps(_event(i)))
    return out


def expected_reason(raw: bytes, max_bytes: int) -> str | None:
    try:
        parse_event(raw, max_bytes)
        return None
    except BadEvent as err:
        return err.reason


def test_hostile_input(tmp_path, isolated_env, isolated_settings, report):
    settings = isolated_settings
    n = pick(10_000, 30_000)
    msgs = hostile_messages(n, random.Random(7))
    expected = Counter(expected_reason(m, settings.max_event_bytes) for m in msgs)
    bad = sum(v for k, v in expected.items() if k is not None)
    report.update(messages=len(msgs), expected={str(k): v for k, v in expected.items()},
                  megabytes=round(sum(map(len, msgs)) / 2**20, 1))
    # the topic takes the 1 MB events (a gateway topic may); the rest of the topics are defaults
    client = admin(settings)
    for _t, fut in client.create_topics([NewTopic(settings.topic_requests, settings.partitions, 1,
                                                  config={"max.message.bytes": str(BIG)})]).items():
        fut.result()
    ensure_topics(settings)
    worker = WorkerProcess(isolated_env, tmp_path / "worker.log").start()
    try:
        cpu0 = proc_cpu_s(worker.proc.pid)
        t0 = time.monotonic()
        _produce_big(settings, msgs)
        st = worker.wait_for(lambda s: s and s["events"] >= len(msgs), pick(420, 1200), "all hostile messages")
        cpu = proc_cpu_s(worker.proc.pid) - cpu0
        report.update(seconds=round(time.monotonic() - t0, 1), worker_cpu_s=round(cpu, 2),
                      cpu_ms_per_event=round(1000 * cpu / len(msgs), 3), dlq_counted=st["dlq"])
        assert worker.proc.poll() is None
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert sum(st["dlq"].values()) == bad
    assert st["dlq"] == {k: v for k, v in expected.items() if k is not None}

    dlq = read_all(settings, settings.topic_dlq, idle=5, timeout=120)
    got = Counter()
    for m in dlq:
        h = dict(m.headers() or [])
        assert h.get("dg-reason") and h.get("dg-detail") is not None and h.get("dg-source")
        got[h["dg-reason"].decode()] += 1
        if "dg-truncated" in h:        # kept as a prefix: larger than a produce request
            assert int(h["dg-truncated"]) > len(m.value()) and h["dg-reason"] == b"too_large"
            got["truncated"] += 1
    truncated = got.pop("truncated", 0)
    report["dlq_topic"] = dict(got)
    report["dlq_truncated"] = truncated
    assert sum(got.values()) == bad, f"{sum(got.values())} in the DLQ, {bad} rejected"
    assert truncated == 8               # the 1 MB prompts
    assert got == {k: v for k, v in expected.items() if k is not None}
    # generous: the real figure is in the report
    assert report["cpu_ms_per_event"] < 50


def _produce_big(settings, msgs: list[bytes]) -> None:
    from distillguard.streams.kafka_io import produce_waiting, producer
    p = producer(settings, **{"message.max.bytes": BIG, "enable.idempotence": False})
    failed = []
    for i, m in enumerate(msgs):
        produce_waiting(p, settings.topic_requests, value=m, key=f"hacc{i % 50}".encode(),
                        on_delivery=lambda err, _m: err and failed.append(str(err)))
        p.poll(0)
    assert p.flush(120) == 0
    assert not failed, failed[:3]
