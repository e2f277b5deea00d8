"""`distillguard replay`, contract §3: event-time order, bad lines counted and
reported, gzip by file name, exit 0 when the input was read to the end."""
import gzip
import os
import re
import subprocess
import sys

import orjson
import pytest

from distillguard.models import Pipeline
from distillguard.models.pipeline import AccountStage, CrossAccountPipeline
from distillguard.schemas import parse_event, validate_alert
from distillguard.streams import replay as replay_module
from distillguard.streams.replay import ReplayError, ReplayStats, open_lines, ordered_events, replay

CLI = [sys.executable, "-m", "distillguard.streams.cli"]


def ev(i, ts, account="a"):
    return orjson.dumps({"schema_version": "1", "event_id": f"e{i}", "ts_ms": ts, "account_id": account,
                         "model": "m", "operation": "chat", "messages": [{"role": "user", "content": "hi"}],
                         "params": {}})


def test_events_come_out_in_event_time_order():
    lines = [ev(1, 300), ev(2, 100), ev(3, 200), ev(4, 100)]
    stats = ReplayStats()
    out = [(e.ts_ms, e.event_id) for e in ordered_events(lines, stats)]
    assert out == [(100, "e2"), (100, "e4"), (200, "e3"), (300, "e1")]
    assert stats.late == 0


def test_disorder_beyond_the_buffer_is_processed_late_and_counted():
    lines = [ev(1, 300), ev(2, 400), ev(3, 100)]
    stats = ReplayStats()
    out = [e.event_id for e in ordered_events(lines, stats, reorder=1)]
    assert sorted(out) == ["e1", "e2", "e3"] and stats.late == 1


def test_bad_lines_are_counted_by_reason_and_do_not_stop_the_run():
    lines = [ev(1, 1), b"{oops", ev(2, 2), b'{"schema_version":"1"}', b"[]", ev(3, 3)]
    stats = replay(lines, Pipeline(), lambda a: None)
    assert stats.events == 3
    assert dict(stats.bad) == {"invalid_json": 1, "missing_field": 1, "not_object": 1}


def test_cli_replay_on_gzip_with_bad_lines(tmp_path, small_sim):
    events, _labels, labels = small_sim
    src = tmp_path / "in.jsonl.gz"
    with gzip.open(src, "wb") as out:
        out.write(gzip.open(events).read())
        out.write(b"this is not json\n")
        out.write(b'{"schema_version":"1","event_id":"x"}\n')
    alerts_path = tmp_path / "alerts.jsonl"
    proc = subprocess.run([*CLI, "replay", str(src), "--alerts", str(alerts_path), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "2 bad lines" in proc.stderr and "invalid_json=1" in proc.stderr
    assert "events/s" in proc.stderr
    alerts = [orjson.loads(line) for line in alerts_path.read_bytes().splitlines()]
    assert alerts, "the small scenario has attacks"
    for a in alerts:
        assert validate_alert(a) == [], a
        assert "content" not in orjson.dumps(a).decode()  # never raw prompt text
    attacked = {a["account_ids"][0] for a in alerts}
    assert any(labels[acct]["label"] == "attack" for acct in attacked)


def test_cli_replay_missing_input_is_a_clear_error(tmp_path):
    proc = subprocess.run([*CLI, "replay", str(tmp_path / "nope.jsonl"), "--alerts", str(tmp_path / "a.jsonl")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_open_lines_skips_blank_lines(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_bytes(ev(1, 1) + b"\n\n  \n" + ev(2, 2) + b"\n")
    assert len(list(open_lines(p))) == 2


def _alert_lines(lines, jobs):
    out = []
    stats = replay(lines, Pipeline(), lambda a: out.append(a.to_json()), jobs=jobs)
    return stats, out


@pytest.mark.parametrize("batch", [97, 6000])
def test_two_jobs_give_the_same_alert_events_in_the_same_order(small_sim, monkeypatch, batch):
    lines = list(open_lines(small_sim[0]))[:6000]   # 6000: the last batch is empty for batch=6000
    monkeypatch.setattr(replay_module, "BATCH", batch)
    one, alerts_one = _alert_lines(lines, 1)
    two, alerts_two = _alert_lines(lines, 2)
    assert alerts_one and alerts_two == alerts_one
    assert (two.events, two.alerts) == (one.events, one.alerts)


class FailingHydra(CrossAccountPipeline):
    def process(self, record):
        raise ValueError("boom")


class ExitingHydra(CrossAccountPipeline):
    def process(self, record):
        os._exit(3)


@pytest.fixture(params=["fork", "spawn"])
def start_method(request, monkeypatch):
    monkeypatch.setattr(replay_module, "start_method", lambda: request.param)
    return request.param


@pytest.mark.parametrize("hydra, message", [(FailingHydra, "failed: ValueError: boom (test_replay.py"),
                                            (ExitingHydra, "exited (exit code 3)")])
def test_a_failing_cross_account_process_is_a_clear_error(start_method, hydra, message):
    with pytest.raises(ReplayError, match=re.escape(message)):
        replay([ev(i, i * 1000) for i in range(3000)], Pipeline(cross=hydra()), lambda a: None, jobs=2)


def test_spawned_cross_account_process_gives_the_same_alert_events(small_sim, monkeypatch):
    lines = list(open_lines(small_sim[0]))[:6000]
    monkeypatch.setattr(replay_module, "start_method", lambda: "spawn")
    alerts_one = _alert_lines(lines, 1)[1]
    assert alerts_one and _alert_lines(lines, 2)[1] == alerts_one


def test_cli_replay_jobs_1_and_2_write_the_same_file(tmp_path, small_sim):
    paths = []
    for jobs in (1, 2):
        paths.append(tmp_path / f"alerts-{jobs}.jsonl")
        proc = subprocess.run([*CLI, "replay", str(small_sim[0]), "--alerts", str(paths[-1]), "--quiet",
                               "--jobs", str(jobs)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
    assert paths[0].read_bytes() == paths[1].read_bytes() != b""


class _FailsOnE2(AccountStage):
    """An account stage with a bug that one event hits (the exception quotes the event's text)."""

    def process(self, event, position=None):
        if event.event_id == "e2":
            raise ValueError(f"cannot read {event.messages[0].content!r}")
        return super().process(event, position)


def test_an_event_the_detector_raises_on_is_counted_and_the_run_goes_on(capsys):
    pipeline = Pipeline()
    pipeline.accounts = _FailsOnE2()
    stats = replay([ev(1, 1), ev(2, 2), ev(3, 3)], pipeline, lambda a: None)
    assert stats.events == 3 and dict(stats.bad) == {"processing_error": 1}
    assert pipeline.accounts.detector.states["a"].events == 2
    err = capsys.readouterr().err
    assert "event e2 (ValueError at test_replay.py:" in err and "hi" not in err   # where, not the text


def test_the_worker_and_replay_take_the_same_guarded_step():
    """The stream's detect agent and replay both call ``process_guarded`` (streams/dlq.py): the
    stream dead-letters what it returns as ``processing_error`` where replay counts it."""
    import inspect

    from distillguard.streams import app, dlq

    failed = dlq.process_guarded(_FailsOnE2(), parse_event(ev(2, 2)), (0, 0))
    assert failed == dlq.ProcessingFailure("ValueError", failed.where) and failed.where.startswith("test_replay.py:")
    assert dlq.process_guarded(_FailsOnE2(), parse_event(ev(3, 3)), (0, 0)).alerts == []
    for module in (app, replay_module):
        assert "process_guarded(" in inspect.getsource(module)
    assert "send_to_dlq(dlq, msg, PROCESSING_ERROR, out.detail)" in inspect.getsource(app)
