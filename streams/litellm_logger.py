"""A LiteLLM logging callback that publishes every call to Kafka for distillguard.

In a LiteLLM proxy, two config lines (``pip install 'distillguard[litellm]'`` in the proxy's
environment, ``DG_KAFKA_BOOTSTRAP`` and ``DG_TOPIC_LITELLM`` in its environment)::

    litellm_settings:
      callbacks: distillguard.streams.litellm_logger.proxy_handler_instance

With the SDK: ``litellm.callbacks = [DistillguardLogger()]``.

What it publishes: each call's ``StandardLoggingPayload`` (success and failure), as JSON, to the
topic the worker's LiteLLM adapter reads (``DG_TOPIC_LITELLM``), keyed by the account the adapter
will give it. Not mapped here to contract events, because (1) the mapping then lives in one
place, the worker, and a fix to it needs no redeploy of every proxy; (2) a record the mapping
cannot read reaches the DLQ with its original bytes and the reason, instead of being dropped (or
crashing) inside the proxy; (3) the proxy's request path only pays for a non-blocking produce.
``model_map_information`` (LiteLLM's price table for the model, about 8 KB of a 13 KB payload)
is left out: nothing in it describes the request.

The callback never raises into LiteLLM: a full producer queue or a broker that is down is
counted (``counts``) and logged, and the call goes on. When LiteLLM redacts messages
(``turn_off_message_logging``) it says once in the log that distillguard sees no prompts.
"""
from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from typing import Any

import orjson
from litellm.integrations.custom_logger import CustomLogger

from distillguard.schemas.adapters import litellm_account

log = logging.getLogger("distillguard.litellm_logger")
DEFAULT_TOPIC = "llm.litellm"          # when DG_TOPIC_LITELLM is not set; the worker must read the same
LEFT_OUT = ("model_map_information",)
QUEUE_FULL_RETRIES = 20                # x 50 ms of polling before a payload is dropped (and counted)


def payload_bytes(payload: dict) -> bytes:
    return orjson.dumps({k: v for k, v in payload.items() if k not in LEFT_OUT}, default=str)


class DistillguardLogger(CustomLogger):
    """Publishes ``kwargs["standard_logging_object"]`` of every call to Kafka."""

    def __init__(self, bootstrap: str | None = None, topic: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from .settings import load_settings

        settings = load_settings()
        self.settings = settings
        self.bootstrap = bootstrap or settings.kafka_bootstrap
        self.topic = topic or settings.topic_litellm or DEFAULT_TOPIC
        self.counts: Counter = Counter()
        self._producer = None
        self._lock = threading.Lock()
        self._said_redacted = False

    def _get_producer(self):
        with self._lock:
            if self._producer is None:
                from dataclasses import replace

                from .kafka_io import producer

                self._producer = producer(replace(self.settings, kafka_bootstrap=self.bootstrap), **{"linger.ms": 50})
                atexit.register(self.flush)
                log.info("distillguard: publishing LiteLLM calls to Kafka %s topic %s", self.bootstrap, self.topic)
            return self._producer

    def publish(self, kwargs: dict) -> None:
        payload = kwargs.get("standard_logging_object") if isinstance(kwargs, dict) else None
        if not isinstance(payload, dict):
            self.counts["no_payload"] += 1
            return
        try:
            value = payload_bytes(payload)
            key = (litellm_account(payload) or "").encode()
            producer = self._get_producer()
            for _ in range(QUEUE_FULL_RETRIES):
                try:
                    producer.produce(self.topic, key=key, value=value, on_delivery=self._delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            else:
                self.counts["dropped_queue_full"] += 1
                log.error("distillguard: Kafka producer queue full, a LiteLLM payload was dropped")
                return
            producer.poll(0)
            self.counts["queued"] += 1
            self._note_redaction(payload)
        except Exception:  # noqa: BLE001 - a logging callback must never break the call it logs
            self.counts["errors"] += 1
            log.exception("distillguard: could not publish a LiteLLM payload")

    def _delivered(self, err, _msg) -> None:
        if err is None:
            self.counts["delivered"] += 1
        else:
            self.counts["delivery_failed"] += 1
            log.error("distillguard: a LiteLLM payload was not delivered to Kafka: %s", err)

    def _note_redaction(self, payload: dict) -> None:
        if self._said_redacted:
            return
        messages = payload.get("messages")
        if isinstance(messages, list) and any(isinstance(m, dict) and m.get("content") == "redacted-by-litellm"
                                              for m in messages):
            self._said_redacted = True
            log.warning("distillguard: LiteLLM redacts messages (turn_off_message_logging): distillguard "
                        "sees no prompts, only metadata; content-based detection is blind")

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for queued payloads; return how many are still not delivered."""
        return self._producer.flush(timeout) if self._producer is not None else 0

    # LiteLLM calls the sync hooks for sync SDK calls, the async ones in the proxy and for acompletion
    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.publish(kwargs)

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.publish(kwargs)

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.publish(kwargs)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.publish(kwargs)


proxy_handler_instance = DistillguardLogger()
