"""Reference enforcement: distillguard's alerts applied in a LiteLLM proxy (``pip install
'distillguard[litellm]'``). Two lines in the proxy's config.yaml::

    litellm_settings:
      callbacks: distillguard.streams.enforcement.proxy_handler

and the proxy's environment carries the same ``DG_KAFKA_*`` and ``DG_TOPIC_ALERTS`` settings
as the workers. A background thread follows the alerts topic from its beginning (every proxy
instance needs every alert, so each reads all partitions under its own consumer group and
commits nothing) into a :class:`~distillguard.models.enforcement.PolicyBook`; the pre-call
hook asks the book about each request:

- ``block`` -> 403, ``step_up_verification`` -> 403 naming the step, ``throttle`` -> 429 with
  ``Retry-After`` once the caller's budget (``DG_ENFORCE_THROTTLE_PER_MINUTE``) is spent;
- protections (contract v1.1): ``disable_logprobs`` drops logprobs / top_logprobs /
  logit_bias, ``cap_output_tokens`` caps max_tokens, ``summarize_reasoning`` goes to the
  model server as the header ``x-distillguard-summarize-reasoning: 1``; ``per_end_user``
  limits all of it to the alert's ``end_user_ids``.

The caller is the account distillguard's LiteLLM adapter maps: the key's org id, else team
id, else user id, else the key hash; the end user is the request's ``user``, else the key's
end user. If Kafka is unreachable the hook lets requests through (fail open) and says so in
the proxy log: an enforcement outage must not become an API outage.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid

import orjson

from distillguard.models.enforcement import Caller, Decision, EnforcementConfig, PolicyBook, degrade

from .kafka_config import client_config
from .settings import Settings, load_settings

log = logging.getLogger("distillguard.enforcement")
SUMMARIZE_HEADER = "x-distillguard-summarize-reasoning"

try:  # the hook only exists where LiteLLM is installed (the [litellm] extra)
    from litellm.integrations.custom_logger import CustomLogger
except ImportError:  # pragma: no cover - without the extra, AlertFollower still imports
    CustomLogger = object


class AlertFollower(threading.Thread):
    """Reads every alert event of the alerts topic into ``book`` (under ``lock``)."""

    def __init__(self, settings: Settings, book: PolicyBook, lock: threading.Lock):
        super().__init__(name="distillguard-alerts", daemon=True)
        from confluent_kafka import Consumer
        self.settings, self.book, self.lock = settings, book, lock
        self.events = 0
        self.last_error = ""
        self.caught_up = threading.Event()    # set once the topic was read to its end the first time
        self._stopping = threading.Event()
        self.consumer = Consumer(client_config(settings, **{
            "group.id": f"{settings.app_id}-enforcement-{uuid.uuid4().hex[:12]}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
            "enable.partition.eof": True, "error_cb": self._on_error}))

    def _on_error(self, err) -> None:
        if err.str() != self.last_error:
            self.last_error = err.str()
            log.warning("distillguard enforcement: Kafka: %s (requests pass unenforced until it recovers)", err.str())

    def run(self) -> None:
        from confluent_kafka import KafkaError
        c = self.consumer
        c.subscribe([self.settings.topic_alerts])
        at_end: set[int] = set()
        try:
            while not self._stopping.is_set():
                msg = c.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        if not self.caught_up.is_set() and len(at_end) >= len(c.assignment() or [0]):
                            self.caught_up.set()
                            log.info("distillguard enforcement: %d alert events read, %d callers under a policy",
                                     self.events, len(self.book.policies))
                    continue
                self._apply(msg.value())
        finally:
            c.close()

    def _apply(self, raw: bytes) -> None:
        try:
            alert = orjson.loads(raw)
        except orjson.JSONDecodeError:
            alert = None
        with self.lock:
            self.book.apply(alert)
            self.events += 1

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self.join(timeout)


def caller_of(user_api_key_dict, data: dict) -> Caller:
    """The account and end user of a proxy request, mapped like the LiteLLM input adapter does."""
    key = user_api_key_dict
    account = (getattr(key, "org_id", None) or getattr(key, "team_id", None) or getattr(key, "user_id", None)
               or getattr(key, "api_key", None) or "")
    end_user = data.get("user") or getattr(key, "end_user_id", None)
    return Caller(str(account), str(end_user) if end_user else None)


class DistillguardEnforcement(CustomLogger):
    """The LiteLLM pre-call hook. ``follow=False`` leaves the alerts topic alone (the caller
    feeds ``book``); used by tests of the hook itself."""

    def __init__(self, settings: Settings | None = None, follow: bool = True):
        super().__init__()
        self.settings = settings or load_settings()
        self.book = PolicyBook(EnforcementConfig(
            throttle_per_minute=self.settings.enforce_throttle_per_minute,
            output_token_cap=self.settings.enforce_output_token_cap,
            verification_step=self.settings.enforce_verification_step))
        self.lock = threading.Lock()
        self.follower = AlertFollower(self.settings, self.book, self.lock) if follow else None
        if self.follower is not None:
            self.follower.start()
        self.refused = 0
        self.degraded = 0

    def decide(self, caller: Caller) -> Decision:
        with self.lock:
            return self.book.decide(caller, int(time.time() * 1000))

    async def async_pre_call_hook(self, user_api_key_dict, cache, data: dict, call_type):
        from fastapi import HTTPException

        caller = caller_of(user_api_key_dict, data)
        decision = self.decide(caller)
        if decision.status is not None:
            self.refused += 1
            log.info("distillguard enforcement: %s %s (%s)", decision.status, caller, ",".join(decision.alert_ids))
            headers = {"Retry-After": str(decision.retry_after_s)} if decision.retry_after_s else None
            raise HTTPException(status_code=decision.status, detail=decision.message, headers=headers)
        if not decision.degraded:
            return data
        self.degraded += 1
        data, changes = degrade(data, decision)
        if "summarize_reasoning" in decision.protections:
            data["extra_headers"] = {**(data.get("extra_headers") or {}), SUMMARIZE_HEADER: "1"}
            changes.append(f"{SUMMARIZE_HEADER}: 1")
        log.info("distillguard enforcement: degraded %s: %s", caller, "; ".join(changes))
        return data


_handler: DistillguardEnforcement | None = None


def __getattr__(name: str):
    """``proxy_handler``: the hook LiteLLM's config names, made on first access (importing
    this module starts no thread and reads no settings)."""
    global _handler
    if name == "proxy_handler":
        if _handler is None:
            _handler = DistillguardEnforcement()
        return _handler
    raise AttributeError(name)
