"""Kafka cluster settings without a broker: client configuration for both client libraries,
secrets masked, topic checks, the development-key refusal."""
import os
import subprocess
import sys

import pytest

from distillguard.streams.kafka_config import client_config, faust_broker_options, ssl_context
from distillguard.streams.kafka_io import topic_differences
from distillguard.streams.settings import SettingsError, describe, load_settings

SASL = {"DG_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "DG_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "DG_KAFKA_SASL_USERNAME": "svc", "DG_KAFKA_SASL_PASSWORD": "hunter2"}


def test_plaintext_is_the_default_and_unchanged():
    s = load_settings({})
    conf = client_config(s)
    assert conf.pop("logger").name == "distillguard.kafka"   # librdkafka's lines into Python logging
    assert conf == {"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "plaintext"}
    assert faust_broker_options(s) == {"broker": ["kafka://127.0.0.1:19092"],
                                       "broker_consumer": ["distillguard://127.0.0.1:19092"],   # our consumer
                                       "broker_producer": ["distillguard://127.0.0.1:19092"],   # and producer
                                       "broker_credentials": None}
    assert ssl_context(s) is None


def test_sasl_ssl_reaches_both_clients_and_is_masked():
    import faust
    s = load_settings({**SASL, "DG_KAFKA_BOOTSTRAP": "b1:9096,b2:9096"})
    conf = client_config(s, **{"group.id": "g"})
    assert conf["security.protocol"] == "sasl_ssl" and conf["sasl.mechanism"] == "SCRAM-SHA-256"
    assert conf["sasl.username"] == "svc" and conf["sasl.password"] == "hunter2" and conf["group.id"] == "g"
    options = faust_broker_options(s)
    assert options["broker"] == ["kafka://b1:9096", "kafka://b2:9096"]
    assert options["broker_consumer"] == options["broker_producer"] == ["distillguard://b1:9096", "distillguard://b2:9096"]
    creds = options["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-256" and creds.ssl_context is not None
    text = describe(s)
    assert "hunter2" not in text and "kafka_sasl_password" in text and "***" in text


def test_mutual_tls_files(tmp_path):
    for name in ("ca.pem", "c.pem", "c.key"):
        (tmp_path / name).write_text("x")
    s = load_settings({"DG_KAFKA_SECURITY_PROTOCOL": "SSL", "DG_KAFKA_SSL_CA_FILE": str(tmp_path / "ca.pem"),
                       "DG_KAFKA_SSL_CERT_FILE": str(tmp_path / "c.pem"), "DG_KAFKA_SSL_KEY_FILE": str(tmp_path / "c.key"),
                       "DG_KAFKA_SSL_KEY_PASSWORD": "kp"})
    conf = client_config(s)
    assert conf["ssl.ca.location"].endswith("ca.pem") and conf["ssl.certificate.location"].endswith("c.pem")
    assert conf["ssl.key.location"].endswith("c.key") and conf["ssl.key.password"] == "kp"
    assert "kp" not in describe(s).split("kafka_ssl_key_password")[1].splitlines()[0]


@pytest.mark.parametrize("env, needle", [
    ({"DG_KAFKA_SECURITY_PROTOCOL": "TLS"}, "must be one of: PLAINTEXT, SSL"),
    ({"DG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs DG_KAFKA_SASL_USERNAME"),
    ({**SASL, "DG_KAFKA_SASL_MECHANISM": "GSSAPI"}, "DG_KAFKA_SASL_MECHANISM='GSSAPI'"),
    ({"DG_KAFKA_SECURITY_PROTOCOL": "SSL", "DG_KAFKA_SSL_CA_FILE": "/nope.pem"}, "is not a valid readable file"),
    ({"DG_KAFKA_SSL_CA_FILE": __file__}, "use SSL or SASL_SSL"),
    ({"DG_REPLICATION_FACTOR": "0"}, "DG_REPLICATION_FACTOR must be at least 1"),
    ({"DG_DEV": "maybe"}, "DG_DEV"),
])
def test_bad_settings_are_one_clear_error(env, needle):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert needle in str(err.value)


def test_topic_differences():
    s = load_settings({"DG_PARTITIONS": "4", "DG_REPLICATION_FACTOR": "3"})
    ok = (4, 3)
    errors, warnings = topic_differences(s, {s.topic_requests: ok, s.topic_alerts: (1, 3), s.topic_dlq: (1, 3)})
    assert errors == [] and warnings == []
    # infra/docker-compose.yml used to make the alerts topic and the DLQ with 4 partitions
    errors, warnings = topic_differences(s, {s.topic_requests: (8, 1), s.topic_alerts: (4, 3)})
    assert errors == [f"topic {s.topic_requests} has 8 partitions, the settings expect 4 (DG_PARTITIONS); "
                      "the account-state table is partitioned like it: set DG_PARTITIONS=8"]
    assert any("llm.alerts has 4 partitions, the settings expect 1 (DG_ALERTS_PARTITIONS)" in w for w in warnings)
    assert any("replication factor 1, DG_REPLICATION_FACTOR is 3 (a broker loss" in w for w in warnings)


def test_worker_refuses_the_development_key_unless_dev(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DG_")}
    env.update(DG_DATA_DIR=str(tmp_path), DG_KAFKA_BOOTSTRAP="127.0.0.1:1", DG_STARTUP_TIMEOUT_S="0")
    r = subprocess.run([sys.executable, "-m", "distillguard.streams.cli", "worker"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]       # one line
    assert "DG_FINGERPRINT_KEY is the development key" in r.stderr and "DG_DEV=1" in r.stderr
    # --dev gets past the check (and then fails on the missing broker, with one line too)
    r = subprocess.run([sys.executable, "-m", "distillguard.streams.cli", "worker", "--dev"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "development key" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("distillguard worker: error: gave up waiting for the Kafka broker at 127.0.0.1:1")
