"""A secured Kafka cluster: SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) over TLS, and mutual TLS.

Runs its OWN broker (infra/kafka/broker.sh on free ports, Kafka's own listener and JAAS
configuration through DG_KAFKA_EXTRA_LISTENERS / DG_KAFKA_EXTRA_PROPERTIES), with a CA,
a server and a client certificate made here by openssl. The shared broker is never touched.
A real worker with the right credentials processes events and raises alerts through every
client it creates (Faust/aiokafka, confluent-kafka admin, producer, sink consumer); wrong
credentials give one error line.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from distillguard.streams.kafka_config import client_config, faust_broker_options
from distillguard.streams.kafka_io import check_broker, consume, ensure_topics, produce_events
from distillguard.streams.replay import open_lines
from distillguard.streams.settings import describe, load_settings

from .conftest import REPO, free_port
from .workers import WorkerProcess

pytestmark = pytest.mark.integration

BROKER = str(REPO / "infra" / "kafka" / "broker.sh")
LIBS = Path(os.environ.get("DG_KAFKA_LIBS") or REPO / "var" / "kafka" / "libs")
USER, PASSWORD = "alice", "alice-secret"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(folder: Path) -> dict[str, Path]:
    """A throw-away CA, a broker certificate for 127.0.0.1/localhost and a client certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=distillguard test CA", cwd=folder)
    for name, san in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=folder)
        (folder / f"{name}.ext").write_text(san + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=folder)
    # Kafka's PEM key store: the (PKCS#8) key and the certificate in one file
    (folder / "server-store.pem").write_text((folder / "server.key").read_text() + (folder / "server.pem").read_text())
    return {name: folder / f"{name}" for name in ("ca.pem", "client.pem", "client.key", "server-store.pem")}


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory, broker):
    """A private broker with a SASL_SSL listener (PLAIN + SCRAM) and an SSL listener that requires
    a client certificate. Yields (ports, certificate paths); stopped (only it) at the end."""
    if not (LIBS / ".complete").exists():
        pytest.skip(f"Kafka jars not in {LIBS} (make broker fetches them; DG_KAFKA_LIBS points elsewhere)")
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (infra/system-deps.sh installs it)")
    work = tmp_path_factory.mktemp("secure-broker")
    certs = make_certificates(work / "certs")
    ports = {name: free_port() for name in ("plain", "controller", "sasl_ssl", "ssl")}
    props = work / "security.properties"
    props.write_text(f"""
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_{USER}="{PASSWORD}";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={certs['server-store.pem']}
ssl.truststore.type=PEM
ssl.truststore.location={certs['ca.pem']}
listener.name.ssl.ssl.client.auth=required
""")
    env = {**os.environ, "DG_DATA_DIR": str(work / "broker"), "DG_KAFKA_PORT": str(ports["plain"]),
           "DG_KAFKA_CONTROLLER_PORT": str(ports["controller"]), "DG_KAFKA_LIBS": str(LIBS), "DG_KAFKA_HEAP": "256m",
           "DG_KAFKA_EXTRA_LISTENERS": f"SASL_SSL://127.0.0.1:{ports['sasl_ssl']},SSL://127.0.0.1:{ports['ssl']}",
           "DG_KAFKA_EXTRA_PROPERTIES": str(props)}
    ctl = lambda cmd: subprocess.run([BROKER, cmd], env=env, capture_output=True, text=True, timeout=180)  # noqa: E731
    r = ctl("start")
    assert r.returncode == 0, r.stderr + (work / "broker" / "kafka" / "broker.log").read_text()[-3000:]
    try:
        # SCRAM users live in the cluster metadata: made through the admin API on the plain listener
        plain_admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{ports['plain']}"})
        for mechanism in (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512):  # one per request
            upsert = UserScramCredentialUpsertion(USER, ScramCredentialInfo(mechanism, 4096), PASSWORD.encode())
            for future in plain_admin.alter_user_scram_credentials([upsert]).values():
                future.result(30)
        yield ports, certs
    finally:
        ctl("stop")


def _env(ports, certs, mechanism="SCRAM-SHA-512", password=PASSWORD, listener="sasl_ssl", **extra) -> dict[str, str]:
    run = uuid.uuid4().hex[:8]
    env = {"DG_KAFKA_BOOTSTRAP": f"127.0.0.1:{ports[listener]}", "DG_KAFKA_SSL_CA_FILE": str(certs["ca.pem"]),
           "DG_APP_ID": f"dg-sec-{run}", "DG_TOPIC_REQUESTS": f"s{run}.requests", "DG_TOPIC_DLQ": f"s{run}.dlq",
           "DG_TOPIC_ALERTS": f"s{run}.alerts", "DG_TOPIC_SINK": f"s{run}.sink", "DG_PARTITIONS": "2",
           "DG_WORKER_WEB_PORT": str(free_port()), "DG_BATCH_WITHIN_S": "0.2", "DG_DEV": "1"}
    if listener == "sasl_ssl":
        env.update({"DG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "DG_KAFKA_SASL_MECHANISM": mechanism,
                    "DG_KAFKA_SASL_USERNAME": USER, "DG_KAFKA_SASL_PASSWORD": password})
    else:
        env.update({"DG_KAFKA_SECURITY_PROTOCOL": "SSL", "DG_KAFKA_SSL_CERT_FILE": str(certs["client.pem"]),
                    "DG_KAFKA_SSL_KEY_FILE": str(certs["client.key"])})
    env.update(extra)
    return env


def test_worker_over_sasl_ssl_processes_events_and_alerts(tmp_path, secure_broker, small_sim):
    """SCRAM-SHA-512 over TLS: topics created, events produced, the worker (Faust consumer and
    producer, the sink's consumer) processes them, alerts read back: all through the one config."""
    ports, certs = secure_broker
    env = _env(ports, certs, DG_DATA_DIR=str(tmp_path / "var"))
    settings = load_settings(env)
    assert PASSWORD not in describe(settings) and "kafka_sasl_password" in describe(settings)
    ensure_topics(settings)
    lines = [line.rstrip(b"\n") for line in open_lines(small_sim[0])]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        # the web server binds DG_WORKER_WEB_BIND (default loopback), not Faust's 0.0.0.0
        assert listening_addresses(worker.port) == {"127.0.0.1"}
        sent = produce_events(settings, lines, progress=False)
        worker.wait_for(lambda s: s and s["events"] >= sent, 180, f"{sent} events over SASL_SSL")
        status = worker.wait_settled(quiet_s=5)
        worker.wait_for(lambda s: s["sink"]["inserted"].get("alert_events", 0) >= sum(status["alerts"].values()),
                        60, "alert rows through the sink consumer")
        alerts = [orjson.loads(v) for _k, v, _h in consume(settings, settings.topic_alerts, timeout=60, idle=5)]
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert sum(status["alerts"].values()) > 0 and len(alerts) >= sum(status["alerts"].values())
    assert PASSWORD not in worker.log_path.read_text()


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:   # 0A = LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "mutual-TLS"])
def test_both_clients_authenticate(secure_broker, mechanism):
    """The two client libraries, configured from the same settings, reach the broker with every
    mechanism: confluent-kafka (client_config) and aiokafka as Faust drives it (broker_credentials)."""
    from aiokafka import AIOKafkaProducer
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    ports, certs = secure_broker
    env = _env(ports, certs, listener="ssl") if mechanism == "mutual-TLS" else _env(ports, certs, mechanism)
    settings = load_settings(env)
    check_broker(settings)
    assert client_config(settings)["security.protocol"] == ("ssl" if mechanism == "mutual-TLS" else "sasl_ssl")

    async def faust_side() -> None:
        options = faust_broker_options(settings)
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                                    **credentials_to_aiokafka_auth(options["broker_credentials"]))
        await producer.start()
        try:
            assert (await producer.client.fetch_all_metadata()).brokers()
        finally:
            await producer.stop()

    asyncio.run(faust_side())


@pytest.mark.parametrize("case", ["wrong password", "no client certificate"])
def test_wrong_credentials_give_one_error_line(tmp_path, secure_broker, case):
    ports, certs = secure_broker
    if case == "wrong password":
        env = _env(ports, certs, password="not-the-password")
    else:
        env = _env(ports, certs, listener="ssl", DG_KAFKA_SSL_CERT_FILE="", DG_KAFKA_SSL_KEY_FILE="")
    env["DG_DATA_DIR"] = str(tmp_path / "var")
    r = subprocess.run([sys.executable, "-m", "distillguard.streams.cli", "worker"], env={**os.environ, **env},
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    error = r.stderr.strip().splitlines()[-1]
    print(error)
    assert error.startswith("distillguard worker: error: cannot use the Kafka broker at"), r.stderr
    assert "Traceback" not in r.stderr and "not-the-password" not in r.stderr
    if case == "wrong password":
        assert "SCRAM-SHA-512 as 'alice'" in error and "uthentication" in error, error
