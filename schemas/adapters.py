"""Gateway logs → request events (contract v1): plain functions, no I/O.

Two sources. Every mapped event goes through one last step
(``adapter_base.finish``): a prompt replaced by a redaction marker
(``redacted-by-litellm``) or absent altogether makes the event content-less
(``content_redacted: true``, no messages; ``schemas/redaction.py``), then the
contract-v1 validator checks it.

**LiteLLM** ``StandardLoggingPayload`` (the ``standard_logging_object`` LiteLLM
passes to every logging callback; docs.litellm.ai/docs/proxy/logging_spec),
checked on captures of the real SDK and proxy (litellm 1.108.7, ``tests/test_real_clients.py``):

==========================================  =====================================================
contract v1                                 LiteLLM
==========================================  =====================================================
``event_id``                                ``id`` (LiteLLM may log one call twice with the same id:
                                            ``adapter_stream.StreamAdapter`` forwards it once)
``ts_ms`` / ``latency_ms``                  ``startTime`` (epoch seconds, float) / ``endTime - startTime``
``account_id``                              ``metadata.user_api_key_org_id``, else ``metadata.user_api_key_team_id``,
                                            else ``metadata.user_api_key_user_id`` (the key's owner), else
                                            ``metadata.user_api_key_hash`` (master key, keys without an owner)
``api_key_id``                              ``metadata.user_api_key_hash``
``user_id``                                 ``end_user``, else ``metadata.user_api_key_end_user_id``
``client_ip`` / ``user_agent``              ``requester_ip_address`` (or ``metadata.``) / ``metadata.user_agent``
``session_id``                              ``metadata.requester_metadata.session_id`` if the caller sent one, else
                                            LiteLLM's ``session_id``, else its ``trace_id`` (``litellm_session_id`` /
                                            ``litellm_trace_id`` group calls; one call alone is its own trace)
``model``                                   ``model_group`` (the name the customer asked for; through the proxy
                                            ``model`` is the deployment, e.g. ``openai/gpt-4o-mini``), else ``model``
``operation``                               ``call_type``: (a)completion, (a)responses, anthropic_messages → chat;
                                            (a)text_completion → text_completion; (a)embedding → embeddings;
                                            (a)create_batch → batch
``messages``                                ``messages`` (list of chat messages, or a prompt string)
``params``                                  ``model_parameters`` (known keys with the right type;
                                            ``max_completion_tokens`` → ``max_tokens``; ``tools`` → ``tools_count``)
``usage``                                   ``prompt_tokens``, ``completion_tokens``,
                                            ``response.usage.completion_tokens_details.reasoning_tokens``
``status``                                  ``status``: success → ok, failure → error (HTTP 429 → rate_limited)
``finish_reason``                           ``response.choices[0].finish_reason``
==========================================  =====================================================

**OpenTelemetry GenAI spans** (semantic conventions ``gen_ai.*``,
opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans) with their **log
records**: one span per model call, as OTLP/JSON (``attributes`` as a
key/value list, ``startTimeUnixNano``) or as a flat JSON span (``attributes``
as an object, ``start_time``); resource attributes count as span attributes.
Checked on captures of ``opentelemetry-instrumentation-openai-v2`` in its three
content modes and of traceloop's OpenLLMetry (``schemas/otel_adapter.py``).

==========================================  =====================================================
contract v1                                 span
==========================================  =====================================================
``event_id``                                ``traceId:spanId``
``ts_ms`` / ``latency_ms``                  span start / end − start
``account_id``                              ``gen_ai.account.id`` (**our attribute**: the semantic conventions have
                                            no billing-account attribute), else ``enduser.id``
``user_id``                                 ``user.id``, else ``gen_ai.user`` (OpenLLMetry: the ``user`` parameter)
``api_key_id``                              ``gen_ai.api_key.id`` (**ours**, optional)
``client_ip`` / ``user_agent``              ``client.address`` / ``user_agent.original``
``session_id``                              ``gen_ai.conversation.id``
``model``                                   ``gen_ai.request.model`` (else ``gen_ai.response.model``)
``operation``                               ``gen_ai.operation.name``: chat, generate_content → chat;
                                            text_completion; embeddings
``messages``                                ``gen_ai.system_instructions`` + ``gen_ai.input.messages`` (current),
                                            else ``gen_ai.prompt`` (JSON or text), else ``gen_ai.prompt.N.role/content``,
                                            else the span events or **log records** (joined by trace and span id)
                                            ``gen_ai.client.inference.operation.details`` and
                                            ``gen_ai.{system,user,assistant,tool}.message``
``params``                                  ``gen_ai.request.{max_tokens,temperature,top_p,seed,choice.count}``;
                                            ``gen_ai.is_streaming`` → ``stream``;
                                            ``gen_ai.tool.definitions`` → ``tools_count``
``usage``                                   ``gen_ai.usage.{input,output,reasoning}_tokens`` (or ``prompt/completion_tokens``)
``finish_reason``                           first of ``gen_ai.response.finish_reasons`` (``tool_call`` → ``tool_calls``)
``status``                                  span status ERROR → error; ``error.type`` ``RateLimitError``
                                            (openai-v2: ``<class 'openai.RateLimitError'>``) or 429 → rate_limited
``gen_ai.system`` / ``gen_ai.provider.name``  kept as the extra field ``provider``
==========================================  =====================================================

Neither instrumentation records ``logprobs``/``top_logprobs``/``logit_bias``,
so the logprob-probing signal needs LiteLLM or a gateway's own events.

A record that cannot be mapped raises :class:`BadEvent` with reason
``adapter_unmapped`` and a detail such as ``no account id``; the result of a
mapping is validated by the contract-v1 validator, so it raises the usual
reasons (``bad_value``, ``wrong_type``) too.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from .adapter_base import (UNMAPPED, chat_messages, epoch_ms, finish, int_or_none, params_of, text_or_none,
                           unmapped)
from .event import BadEvent
from .otel_adapter import from_otel_span, is_genai_span, split_spans

SOURCES = ("litellm", "otel")
__all__ = ["SOURCES", "UNMAPPED", "adapt_bytes", "from_litellm", "from_otel_span", "is_genai_span",
           "litellm_account", "split_records", "to_event"]

_LITELLM_OPS = {
    "completion": "chat", "acompletion": "chat", "responses": "chat", "aresponses": "chat",
    "anthropic_messages": "chat", "generate_content": "chat", "agenerate_content": "chat",
    "text_completion": "text_completion", "atext_completion": "text_completion",
    "embedding": "embeddings", "aembedding": "embeddings",
    "create_batch": "batch", "acreate_batch": "batch",
}
_ACCOUNT_KEYS = ("user_api_key_org_id", "user_api_key_team_id", "user_api_key_user_id", "user_api_key_hash")


def _meta(rec: dict) -> dict:
    return rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}


def litellm_account(rec: Any) -> str | None:
    """The account a LiteLLM payload belongs to (also the Kafka key our LiteLLM logger uses)."""
    if not isinstance(rec, dict):
        return None
    meta = _meta(rec)
    return next((text_or_none(meta.get(k)) for k in _ACCOUNT_KEYS if text_or_none(meta.get(k))), None)


def from_litellm(rec: Any) -> dict[str, Any]:
    """One LiteLLM ``StandardLoggingPayload`` (dict) → a contract-v1 request event (dict)."""
    if not isinstance(rec, dict):
        raise BadEvent("not_object", "a LiteLLM log record must be a JSON object")
    event_id = text_or_none(rec.get("id"))
    if not event_id:
        raise unmapped("no id")
    meta = _meta(rec)
    account = litellm_account(rec)
    if not account:
        raise unmapped("no account id (metadata.user_api_key_org_id / team_id / user_id / hash)")
    call_type = rec.get("call_type")
    operation = _LITELLM_OPS.get(str(call_type))
    if operation is None:
        raise unmapped(f"call_type {str(call_type)[:40]!r}")
    model = text_or_none(rec.get("model_group")) or text_or_none(rec.get("model"))
    if not model:
        raise unmapped("no model")
    start = epoch_ms(rec.get("startTime"), "startTime")
    end = rec.get("endTime")
    latency = None
    if end is not None:
        try:
            latency = max(0, epoch_ms(end, "endTime") - start)
        except BadEvent:
            latency = None
    response = rec.get("response") if isinstance(rec.get("response"), dict) else {}
    usage: dict[str, int] = {}
    for ours, theirs in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        n = int_or_none(rec.get(theirs))
        if n is not None and n >= 0:
            usage[ours] = n
    details = ((response.get("usage") or {}).get("completion_tokens_details") or {}) \
        if isinstance(response.get("usage"), dict) else {}
    reasoning = int_or_none(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    if reasoning:
        usage["reasoning_tokens"] = reasoning
    status = rec.get("status")
    if status == "success":
        status = "ok"
    elif status == "failure":
        info = rec.get("error_information") if isinstance(rec.get("error_information"), dict) else {}
        status = "rate_limited" if str(info.get("error_code")) == "429" else "error"
    else:
        status = None
    finish_reason = None
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        finish_reason = text_or_none(choices[0].get("finish_reason"))
    requester = meta.get("requester_metadata") if isinstance(meta.get("requester_metadata"), dict) else {}
    params = rec.get("model_parameters") if isinstance(rec.get("model_parameters"), dict) else {}
    messages = rec.get("messages")
    if operation == "embeddings" and isinstance(messages, (str, list)) and not (
            isinstance(messages, list) and messages and isinstance(messages[0], dict)):
        messages = [messages] if isinstance(messages, str) else messages
    return finish({
        "schema_version": "1",
        "event_id": event_id,
        "ts_ms": start,
        "account_id": account,
        "api_key_id": text_or_none(meta.get("user_api_key_hash")),
        "user_id": text_or_none(rec.get("end_user")) or text_or_none(meta.get("user_api_key_end_user_id")),
        "client_ip": text_or_none(rec.get("requester_ip_address")) or text_or_none(meta.get("requester_ip_address")),
        "user_agent": text_or_none(meta.get("user_agent")),
        "session_id": text_or_none(requester.get("session_id")) or text_or_none(rec.get("session_id"))
        or text_or_none(rec.get("trace_id")),
        "model": model,
        "operation": operation,
        "messages": chat_messages(messages),
        "params": params_of(params),
        "usage": usage,
        "status": status,
        "latency_ms": latency,
        "finish_reason": finish_reason,
        "source": "litellm",
    })


# ---------------------------------------------------------------- records in a file or on a topic

def split_records(source: str, doc: Any) -> Iterator[tuple[dict | None, Any]]:
    """Yield ``(resource_attributes, record)`` for each record in one decoded JSON line/message.

    LiteLLM: the object itself. OpenTelemetry: each GenAI span of an OTLP/JSON
    trace export (``otel_adapter.split_spans``); anything else is taken as one
    span. Log records need their span: ``adapter_stream.StreamAdapter`` joins them.
    """
    if source == "litellm":
        yield None, doc
        return
    if source != "otel":
        raise ValueError(f"unknown source {source!r}; one of {SOURCES}")
    yield from split_spans(doc)


def to_event(source: str, record: Any, resource: dict | None = None) -> dict[str, Any]:
    """Map one record of ``source`` (``litellm`` or ``otel``) to a contract-v1 event dict."""
    if source == "litellm":
        return from_litellm(record)
    if source == "otel":
        return from_otel_span(record, resource)
    raise ValueError(f"unknown source {source!r}; one of {SOURCES}")


def adapt_bytes(source: str, raw: bytes) -> Iterator[dict[str, Any] | BadEvent]:
    """Decode one line / message and yield an event dict or a :class:`BadEvent` per record,
    spans mapped as they are (no log join, no dedupe: see ``adapter_stream.StreamAdapter``)."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        yield BadEvent("invalid_json", str(err)[:200])
        return
    for resource, record in split_records(source, doc):
        try:
            yield to_event(source, record, resource)
        except BadEvent as err:
            yield err
