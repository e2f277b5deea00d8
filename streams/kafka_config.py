"""Kafka client configuration from the settings: the ONE place that knows how distillguard
reaches a cluster (bootstrap servers, SASL, TLS), for both client libraries it uses.

- ``client_config`` builds the librdkafka (confluent-kafka) dict that every admin client,
  producer and consumer of the product starts from (``kafka_io``, the ClickHouse sink,
  the CLI commands, the enforcement hook);
- ``faust_broker_options`` gives the Faust app its broker URLs (the consumer's select the
  worker's transport, ``streams/faust_transport.py``) and ``broker_credentials``
  (Faust's documented setting; aiokafka underneath gets the SASL fields and an
  ``ssl.SSLContext`` from it).

Both read the same ``DG_KAFKA_*`` settings, so the worker's two clients can never disagree
about how to authenticate.
"""
from __future__ import annotations

import logging
import ssl

from .logs import KAFKA_LOGGER
from .settings import Settings


def client_config(settings: Settings, logger: str = KAFKA_LOGGER, **extra) -> dict:
    """librdkafka configuration for ``settings``, with ``extra`` (client-specific keys such as
    ``group.id``, passed as ``**{"group.id": ...}``) on top. librdkafka's log lines go to the
    Python logger ``logger`` (streams/logs.py) instead of raw ``%N|...`` lines on stderr."""
    config: dict = {"bootstrap.servers": settings.kafka_bootstrap,
                    "security.protocol": settings.kafka_security_protocol.lower(),
                    "logger": logging.getLogger(logger)}
    if settings.kafka_security_protocol.startswith("SASL"):
        config.update({"sasl.mechanism": settings.kafka_sasl_mechanism,
                       "sasl.username": settings.kafka_sasl_username,
                       "sasl.password": settings.kafka_sasl_password})
    if settings.kafka_security_protocol.endswith("SSL"):
        if settings.kafka_ssl_ca_file:
            config["ssl.ca.location"] = settings.kafka_ssl_ca_file
        if settings.kafka_ssl_cert_file:
            config["ssl.certificate.location"] = settings.kafka_ssl_cert_file
            config["ssl.key.location"] = settings.kafka_ssl_key_file
            if settings.kafka_ssl_key_password:
                config["ssl.key.password"] = settings.kafka_ssl_key_password
    config.update(extra)
    return config


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context aiokafka (under Faust) uses; None without TLS. Verifies the broker's
    certificate and host name, like librdkafka does by default."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    context = ssl.create_default_context(cafile=settings.kafka_ssl_ca_file or None)
    if settings.kafka_ssl_cert_file:
        context.load_cert_chain(settings.kafka_ssl_cert_file, settings.kafka_ssl_key_file,
                                password=settings.kafka_ssl_key_password or None)
    return context


def faust_broker_options(settings: Settings, stock_consumer: bool = False) -> dict:
    """``faust.App`` keyword arguments for the broker: URL(s) and credentials.

    The consumer's and producer's URLs say ``distillguard://``: Faust's transport registry maps
    that scheme to ``streams/faust_transport.py`` (Faust's aiokafka transport with a consumer that
    makes no tasks per message and a producer buffer that reads no setting per message).
    ``stock_consumer`` keeps Faust's own for both (the bench's "before" figure)."""
    import faust

    from .faust_transport import SCHEME, check_registered

    hosts = [host.strip() for host in settings.kafka_bootstrap.split(",") if host.strip()]
    urls = [f"kafka://{host}" for host in hosts]
    if not stock_consumer:
        check_registered()
    transport_urls = urls if stock_consumer else [f"{SCHEME}://{host}" for host in hosts]
    protocol = settings.kafka_security_protocol
    credentials = None
    if protocol.startswith("SASL"):
        # SASLCredentials picks SASL_SSL when it is given a context, SASL_PLAINTEXT otherwise
        credentials = faust.SASLCredentials(username=settings.kafka_sasl_username,
                                            password=settings.kafka_sasl_password,
                                            mechanism=settings.kafka_sasl_mechanism,
                                            ssl_context=ssl_context(settings))
    elif protocol == "SSL":
        credentials = faust.SSLCredentials(ssl_context(settings))
    return {"broker": urls, "broker_consumer": transport_urls, "broker_producer": transport_urls,
            "broker_credentials": credentials}


def describe_auth(settings: Settings) -> str:
    """How the clients authenticate, for error messages (no secrets)."""
    protocol = settings.kafka_security_protocol
    text = protocol
    if protocol.startswith("SASL"):
        text += f" {settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username!r}"
    if protocol.endswith("SSL") and settings.kafka_ssl_cert_file:
        text += " with a client certificate"
    return text
