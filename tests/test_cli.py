"""The command line: every command has --help, settings errors are plain words."""
import subprocess
import sys

import pytest

from distillguard.streams.settings import ENV_VARS, SettingsError, describe, load_settings

CLI = [sys.executable, "-m", "distillguard.streams.cli"]
COMMANDS = ["worker", "replay", "simulate", "demo", "sql", "migrate", "topics", "eval", "export-ocsf", "ingest",
            "report", "doctor", "otlp-receiver", "console", "sink"]
HEAVY = ("river", "faust", "mode", "aiokafka", "confluent_kafka", "clickhouse_connect", "chdb", "numpy")


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    proc = subprocess.run([*CLI, command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "usage:" in proc.stdout


def test_every_command_is_listed_and_has_help():
    from distillguard.streams.cli import COMMANDS as listed
    assert sorted(listed) == sorted(COMMANDS)


def test_top_level_help_imports_no_heavy_library():
    """`distillguard --help` imports no command module (River, Faust, ... stay out): measured
    in a fresh interpreter by the modules it loaded, not by a wall clock."""
    code = ("import sys\nfrom distillguard.streams import cli\n"
            "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ' '.join(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = proc.stdout.split("LOADED", 1)[1].split()
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert not heavy, heavy
    assert "doctor" in proc.stdout and "worker" in proc.stdout
    commands = [m for m in loaded if m.startswith("distillguard.streams.") and m.split(".")[-1] not in
                ("cli", "errors")]
    assert not commands, commands


def test_a_command_imports_only_its_own_module():
    code = ("import sys\nfrom distillguard.streams import cli\n"
            "try:\n    cli.main(['topics', '--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', ' '.join(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    loaded = set(proc.stdout.split("LOADED", 1)[1].split())
    assert "distillguard.streams.topics_cli" in loaded
    assert not {"river", "faust", "distillguard.streams.eval_cli", "distillguard.streams.worker"} & loaded


def test_bad_setting_is_a_plain_error():
    proc = subprocess.run([*CLI, "topics"], capture_output=True, text=True, timeout=60,
                          env={"DG_PARTITIONS": "many", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "DG_PARTITIONS" in proc.stderr and "Traceback" not in proc.stderr


def test_settings_defaults_and_masking():
    s = load_settings({"DG_CLICKHOUSE_DSN": "http://user:secret@ch:8123/db"})
    assert s.kafka_bootstrap == ENV_VARS["DG_KAFKA_BOOTSTRAP"][0]
    text = describe(s)
    assert "secret" not in text and "***" in text
    assert load_settings({}).embedded_clickhouse


@pytest.mark.parametrize("env", [{"DG_CLICKHOUSE_DSN": "mysql://x"}, {"DG_SINK": "maybe"},
                                 {"DG_LOG_LEVEL": "loud"}, {"DG_PARTITIONS": "0"}])
def test_invalid_settings(env):
    with pytest.raises(SettingsError):
        load_settings(env)


def test_detector_is_deterministic_across_hash_seeds(small_sim, tmp_path):
    digests = set()
    for seed in ("1", "2"):
        out = tmp_path / f"a{seed}.jsonl"
        subprocess.run([*CLI, "replay", str(small_sim[0]), "--alerts", str(out), "--quiet"], check=True,
                       timeout=300, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, capture_output=True)
        digests.add(out.read_bytes())
    assert len(digests) == 1
