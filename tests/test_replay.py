"""`distillguard replay`, contract §3: event-time order, bad lines counted and
reported, gzip by file name, exit 0 when the input was read to the end."""
import gzip
import subprocess
import sys

import orjson

from distillguard.models import Detector
from distillguard.schemas import validate_alert
from distillguard.streams.replay import ReplayStats, open_lines, ordered_events, replay

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
    stats = replay(lines, Detector(), lambda a: None)
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
