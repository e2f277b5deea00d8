"""Shared fixtures. Integration tests need the real local Kafka broker that
`make test` starts (infra/kafka/broker.sh); each test gets its own topics,
consumer group and data directory so tests never see each other's state."""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from distillguard.models.simulation import load_scenario, simulate, write_jsonl, write_labels
from distillguard.streams.settings import load_settings

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _broker_answers(bootstrap: str) -> bool:
    from confluent_kafka.admin import AdminClient
    try:
        return bool(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3).brokers)
    except Exception:
        return False


@pytest.fixture(scope="session")
def broker() -> str:
    bootstrap = os.environ.get("DG_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    if not _broker_answers(bootstrap):
        if os.environ.get("DG_TEST_BROKER"):
            pytest.fail(f"the test broker at {bootstrap} does not answer (make test starts it)")
        pytest.skip("no Kafka broker: run `make test`, which starts the real local broker")
    return bootstrap


@pytest.fixture
def isolated_env(tmp_path, broker) -> dict[str, str]:
    """DG_* variables for one isolated pipeline: own topics, group, store, web port."""
    run = uuid.uuid4().hex[:8]
    env = {
        "DG_KAFKA_BOOTSTRAP": broker,
        "DG_DATA_DIR": str(tmp_path / "var"),
        "DG_APP_ID": f"dg-test-{run}",
        "DG_TOPIC_REQUESTS": f"t{run}.requests",
        "DG_TOPIC_DLQ": f"t{run}.requests.dlq",
        "DG_TOPIC_ALERTS": f"t{run}.alerts",
        "DG_TOPIC_SINK": f"t{run}.sink",
        "DG_TOPIC_FEEDBACK": f"t{run}.feedback",
        "DG_PARTITIONS": "4",
        "DG_WORKER_WEB_PORT": str(free_port()),
        "DG_BATCH_WITHIN_S": "0.2",
        "DG_DEV": "1",   # test workers may use the development fingerprint key
    }
    return env


@pytest.fixture
def isolated_settings(isolated_env):
    return load_settings(isolated_env)


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory):
    """The `small` simulator scenario written once per session: (events path, labels path, labels)."""
    out = tmp_path_factory.mktemp("sim")
    sim = simulate(load_scenario("small"), seed=3)
    events = out / "small.jsonl.gz"
    write_jsonl(sim.events(), events)
    write_labels(sim.labels, out / "small.labels.json")
    return events, out / "small.labels.json", sim.labels


KAFKA_LIBS = Path(os.environ.get("DG_KAFKA_LIBS") or REPO / "var" / "kafka" / "libs")


class PrivateBroker:
    """A second, private Kafka broker (infra/kafka/broker.sh on free ports, its own data dir,
    the shared broker's jars); ``start()`` when the test wants it; stopped (only it) at the end."""

    def __init__(self, data_dir: Path):
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "DG_DATA_DIR": str(data_dir), "DG_KAFKA_PORT": str(self.port),
                    "DG_KAFKA_CONTROLLER_PORT": str(free_port()), "DG_KAFKA_LIBS": str(KAFKA_LIBS),
                    "DG_KAFKA_HEAP": "256m"}

    def ctl(self, command: str):
        import subprocess
        return subprocess.run([str(REPO / "infra" / "kafka" / "broker.sh"), command], env=self.env,
                              capture_output=True, text=True, timeout=180)

    def start(self) -> None:
        r = self.ctl("start")
        assert r.returncode == 0, r.stderr


@pytest.fixture
def private_broker(tmp_path, broker):
    if not (KAFKA_LIBS / ".complete").exists():
        pytest.skip(f"Kafka jars not in {KAFKA_LIBS} (make broker fetches them; DG_KAFKA_LIBS points elsewhere)")
    b = PrivateBroker(tmp_path / "private-broker")
    try:
        yield b
    finally:
        b.ctl("stop")

