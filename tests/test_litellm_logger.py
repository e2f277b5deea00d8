"""The shipped LiteLLM logger (``distillguard.streams.litellm_logger``) inside the real litellm SDK
(``mock_response``: no network), publishing to the real broker; the worker's adapter maps what
arrives."""
import asyncio
import os
import time

import orjson
import pytest

from distillguard.schemas.adapter_stream import StreamAdapter


@pytest.fixture
def litellm():
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")   # no download of the price table
    module = pytest.importorskip("litellm")
    callbacks, redact = module.callbacks, module.turn_off_message_logging
    yield module
    module.callbacks, module.turn_off_message_logging = callbacks, redact


def test_proxy_config_line_resolves_to_a_custom_logger(litellm):
    """What ``callbacks: distillguard.streams.litellm_logger.proxy_handler_instance`` loads in the proxy."""
    from litellm.integrations.custom_logger import CustomLogger
    from litellm.proxy.types_utils.utils import get_instance_fn

    instance = get_instance_fn("distillguard.streams.litellm_logger.proxy_handler_instance")
    assert isinstance(instance, CustomLogger)


@pytest.mark.integration
def test_sdk_calls_published_and_mapped(litellm, isolated_env, isolated_settings):
    from dataclasses import replace

    from distillguard.streams.kafka_io import consume, ensure_topics
    from distillguard.streams.litellm_logger import DistillguardLogger

    topic = isolated_env["DG_TOPIC_REQUESTS"] + ".litellm"
    ensure_topics(replace(isolated_settings, topic_litellm=topic))   # what `distillguard topics` does
    logger = DistillguardLogger(bootstrap=isolated_settings.kafka_bootstrap, topic=topic)
    litellm.callbacks = [logger]
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is a monad?"}]

    def meta(org):
        return {"user_api_key_hash": f"hash-{org}", "user_api_key_org_id": org, "user_api_key_end_user_id": "eu-1",
                "requester_ip_address": "203.0.113.9"}

    litellm.completion(model="gpt-4o-mini", messages=messages, mock_response="A monoid.", metadata=meta("org-a"),
                       max_completion_tokens=64, logprobs=True, top_logprobs=5)
    async def acompletion():
        await litellm.acompletion(model="gpt-4o-mini", messages=messages, mock_response="ok",
                                  metadata=meta("org-b"), max_tokens=3)
        await asyncio.sleep(1.0)   # async logging runs as a task of this loop

    asyncio.run(acompletion())
    with pytest.raises(litellm.RateLimitError):
        litellm.completion(model="gpt-4o-mini", messages=messages, metadata=meta("org-a"), num_retries=0,
                           mock_response=litellm.RateLimitError("slow down", llm_provider="openai",
                                                                model="gpt-4o-mini"))
    litellm.turn_off_message_logging = True
    litellm.completion(model="gpt-4o-mini", messages=messages, mock_response="ok", metadata=meta("org-a"))
    deadline = time.monotonic() + 30
    while logger.counts["queued"] < 4 and time.monotonic() < deadline:
        time.sleep(0.2)   # LiteLLM logs from a thread pool after the call returns
    assert logger.flush(20) == 0 and logger.counts["delivered"] >= 4, dict(logger.counts)
    records = list(consume(isolated_settings, topic, timeout=30, idle=5))
    adapter = StreamAdapter("litellm")
    events = []
    for key, value, _h in records:
        assert b"model_map_information" not in value
        items = adapter.feed(value, now=0.0)
        assert all(isinstance(e, dict) for e in items), items
        for e in items:
            assert key.decode() == e["account_id"]
        events += items
    assert len(events) == 4, adapter.stats
    by_account = sorted((e["account_id"], e.get("status"), e.get("content_redacted", False)) for e in events)
    assert by_account == [("org-a", "ok", False), ("org-a", "ok", True), ("org-a", "rate_limited", False),
                          ("org-b", "ok", False)]
    first = next(e for e in events if e["params"].get("logprobs"))
    assert first["params"]["max_tokens"] == 64 and first["user_id"] == "eu-1" and first["client_ip"] == "203.0.113.9"
    assert first["messages"][-1] == {"role": "user", "content": "What is a monad?"}
    redacted = next(e for e in events if e.get("content_redacted"))
    assert redacted["messages"] == [] and b"redacted-by-litellm" not in orjson.dumps(redacted)
