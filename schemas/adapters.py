"""Gateway logs → request events (contract v1): plain functions, no I/O.

Two sources:

**LiteLLM** ``StandardLoggingPayload`` (the ``standard_logging_object`` LiteLLM
passes to every logging callback; docs.litellm.ai/docs/proxy/logging_spec):

==========================================  =====================================================
contract v1                                 LiteLLM
==========================================  =====================================================
``event_id``                                ``id``
``ts_ms`` / ``latency_ms``                  ``startTime`` (epoch seconds, float) / ``endTime - startTime``
``account_id``                              ``metadata.user_api_key_org_id``, else ``metadata.user_api_key_team_id``,
                                            else ``metadata.user_api_key_user_id`` (the key's owner)
``api_key_id``                              ``metadata.user_api_key_hash``
``user_id``                                 ``end_user``, else ``metadata.user_api_key_end_user_id``
``client_ip`` / ``user_agent``              ``requester_ip_address`` (or ``metadata.``) / ``metadata.user_agent``
``session_id``                              ``metadata.requester_metadata.session_id`` if the caller sent one
``model``                                   ``model`` (else ``model_group``)
``operation``                               ``call_type``: (a)completion, (a)responses, anthropic_messages → chat;
                                            (a)text_completion → text_completion; (a)embedding → embeddings;
                                            (a)create_batch → batch
``messages``                                ``messages`` (list of chat messages, or a prompt string)
``params``                                  ``model_parameters`` (known keys with the right type; ``tools`` → ``tools_count``)
``usage``                                   ``prompt_tokens``, ``completion_tokens``,
                                            ``response.usage.completion_tokens_details.reasoning_tokens``
``status``                                  ``status``: success → ok, failure → error (HTTP 429 → rate_limited)
``finish_reason``                           ``response.choices[0].finish_reason``
==========================================  =====================================================

**OpenTelemetry GenAI spans** (semantic conventions ``gen_ai.*``,
opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans): one span per model
call, as OTLP/JSON (``attributes`` as a key/value list, ``startTimeUnixNano``)
or as a flat JSON span (``attributes`` as an object, ``start_time``);
resource attributes count as span attributes.

==========================================  =====================================================
contract v1                                 span
==========================================  =====================================================
``event_id``                                ``traceId:spanId``
``ts_ms`` / ``latency_ms``                  span start / end − start
``account_id``                              ``gen_ai.account.id`` (**our attribute**: the semantic conventions have
                                            no billing-account attribute), else ``enduser.id``
``user_id``                                 ``user.id``
``api_key_id``                              ``gen_ai.api_key.id`` (**ours**, optional)
``client_ip`` / ``user_agent``              ``client.address`` / ``user_agent.original``
``session_id``                              ``gen_ai.conversation.id``
``model``                                   ``gen_ai.request.model`` (else ``gen_ai.response.model``)
``operation``                               ``gen_ai.operation.name``: chat, generate_content → chat;
                                            text_completion; embeddings
``messages``                                ``gen_ai.system_instructions`` + ``gen_ai.input.messages`` (current),
                                            else ``gen_ai.prompt`` (JSON or text), else ``gen_ai.prompt.N.role/content``,
                                            else the span events ``gen_ai.{system,user,assistant,tool}.message``
``params``                                  ``gen_ai.request.{max_tokens,temperature,top_p,seed,choice.count}``
``usage``                                   ``gen_ai.usage.{input,output}_tokens`` (or ``prompt/completion_tokens``)
``finish_reason``                           first of ``gen_ai.response.finish_reasons``
``status``                                  span status ERROR → error (``error.type`` 429 → rate_limited), else ok
``gen_ai.system`` / ``gen_ai.provider.name``  kept as the extra field ``provider``
==========================================  =====================================================

A record that cannot be mapped raises :class:`BadEvent` with reason
``adapter_unmapped`` and a detail such as ``no account id``; the result of a
mapping is validated by the contract-v1 validator, so it raises the usual
reasons (``bad_value``, ``wrong_type``) too.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from .event import PARAM_TYPES, ROLES, BadEvent, event_from_dict

UNMAPPED = "adapter_unmapped"
SOURCES = ("litellm", "otel")

_ROLE_ALIASES = {"developer": "system", "function": "tool", "model": "assistant", "human": "user", "ai": "assistant"}


def _unmapped(detail: str) -> BadEvent:
    return BadEvent(UNMAPPED, detail)


def _str(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _role(role: Any) -> str:
    r = str(role or "").lower()
    r = _ROLE_ALIASES.get(r, r)
    if r not in ROLES:
        raise _unmapped(f"message role {str(role)[:40]!r} has no contract-v1 equivalent")
    return r


def _text_of(content: Any) -> str:
    """Text of a message content: a string, or a list of parts (OpenAI ``{"type":"text","text"}``,
    OTel ``{"type":"text","content"}``); non-text parts are left out."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type", "text") == "text":
                t = part.get("text", part.get("content"))
                if isinstance(t, str):
                    out.append(t)
        return "\n".join(out)
    if isinstance(content, dict):
        return _text_of([content])
    return str(content)


def _chat_messages(raw: Any) -> list[dict[str, str]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, dict):
        raw = raw.get("messages", [raw])
    if not isinstance(raw, list):
        raise _unmapped(f"messages of type {type(raw).__name__}")
    out = []
    for m in raw:
        if isinstance(m, str):
            out.append({"role": "user", "content": m})
        elif isinstance(m, dict):
            content = m.get("content", m.get("parts"))
            out.append({"role": _role(m.get("role", "user")), "content": _text_of(content)})
        else:
            raise _unmapped(f"a message of type {type(m).__name__}")
    return out


def _params(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the contract's parameter keys that carry the right type; count tools."""
    out: dict[str, Any] = {}
    for key, kinds in PARAM_TYPES.items():
        value = raw.get(key)
        if value is None:
            continue
        if kinds == (int,) and (type(value) is not int):
            if type(value) is float and value.is_integer():
                value = int(value)
            else:
                continue
        if type(value) in kinds or (kinds == (int, float) and type(value) in (int, float)):
            out[key] = value
    tools = raw.get("tools")
    if isinstance(tools, list) and "tools_count" not in out:
        out["tools_count"] = len(tools)
    return out


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _finish(event: dict[str, Any]) -> dict[str, Any]:
    """Drop empty optionals, validate against contract v1, return the dict."""
    doc = {k: v for k, v in event.items() if v is not None and v != {}}
    doc.setdefault("params", {})
    doc.setdefault("messages", [])
    return event_from_dict(doc).to_dict()


# ---------------------------------------------------------------- LiteLLM

_LITELLM_OPS = {
    "completion": "chat", "acompletion": "chat", "responses": "chat", "aresponses": "chat",
    "anthropic_messages": "chat", "generate_content": "chat", "agenerate_content": "chat",
    "text_completion": "text_completion", "atext_completion": "text_completion",
    "embedding": "embeddings", "aembedding": "embeddings",
    "create_batch": "batch", "acreate_batch": "batch",
}


def _epoch_ms(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _unmapped(f"no {what}")
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise _unmapped(f"{what} {value[:40]!r} is not a time") from None
    v = float(value)
    return int(v if v > 1e11 else v * 1000)   # seconds (LiteLLM) or already milliseconds


def from_litellm(rec: Any) -> dict[str, Any]:
    """One LiteLLM ``StandardLoggingPayload`` (dict) → a contract-v1 request event (dict)."""
    if not isinstance(rec, dict):
        raise BadEvent("not_object", "a LiteLLM log record must be a JSON object")
    event_id = _str(rec.get("id"))
    if not event_id:
        raise _unmapped("no id")
    meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
    account = (_str(meta.get("user_api_key_org_id")) or _str(meta.get("user_api_key_team_id"))
               or _str(meta.get("user_api_key_user_id")))
    if not account:
        raise _unmapped("no account id (metadata.user_api_key_org_id / team_id / user_id)")
    call_type = rec.get("call_type")
    operation = _LITELLM_OPS.get(str(call_type))
    if operation is None:
        raise _unmapped(f"call_type {str(call_type)[:40]!r}")
    model = _str(rec.get("model")) or _str(rec.get("model_group"))
    if not model:
        raise _unmapped("no model")
    start = _epoch_ms(rec.get("startTime"), "startTime")
    end = rec.get("endTime")
    latency = None
    if end is not None:
        try:
            latency = max(0, _epoch_ms(end, "endTime") - start)
        except BadEvent:
            latency = None
    response = rec.get("response") if isinstance(rec.get("response"), dict) else {}
    usage: dict[str, int] = {}
    for ours, theirs in (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens")):
        n = _int(rec.get(theirs))
        if n is not None and n >= 0:
            usage[ours] = n
    details = ((response.get("usage") or {}).get("completion_tokens_details") or {}) \
        if isinstance(response.get("usage"), dict) else {}
    reasoning = _int(details.get("reasoning_tokens")) if isinstance(details, dict) else None
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
    finish = None
    choices = response.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        finish = _str(choices[0].get("finish_reason"))
    requester = meta.get("requester_metadata") if isinstance(meta.get("requester_metadata"), dict) else {}
    params = rec.get("model_parameters") if isinstance(rec.get("model_parameters"), dict) else {}
    messages = rec.get("messages")
    if operation == "embeddings" and isinstance(messages, (str, list)) and not (
            isinstance(messages, list) and messages and isinstance(messages[0], dict)):
        messages = [messages] if isinstance(messages, str) else messages
    return _finish({
        "schema_version": "1",
        "event_id": event_id,
        "ts_ms": start,
        "account_id": account,
        "api_key_id": _str(meta.get("user_api_key_hash")),
        "user_id": _str(rec.get("end_user")) or _str(meta.get("user_api_key_end_user_id")),
        "client_ip": _str(rec.get("requester_ip_address")) or _str(meta.get("requester_ip_address")),
        "user_agent": _str(meta.get("user_agent")),
        "session_id": _str(requester.get("session_id")),
        "model": model,
        "operation": operation,
        "messages": _chat_messages(messages),
        "params": _params(params),
        "usage": usage,
        "status": status,
        "latency_ms": latency,
        "finish_reason": finish,
        "source": "litellm",
    })


# ---------------------------------------------------------------- OpenTelemetry

_OTEL_OPS = {"chat": "chat", "generate_content": "chat", "text_completion": "text_completion",
             "embeddings": "embeddings"}
ACCOUNT_ATTRS = ("gen_ai.account.id", "enduser.id")
_MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                   "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _otlp_value(v: Any) -> Any:
    """An OTLP/JSON AnyValue → a Python value."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return _int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_otlp_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return _attrs((v["kvlistValue"] or {}).get("values", []))
    return None


def _attrs(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list):
        return {a["key"]: _otlp_value(a.get("value")) for a in raw if isinstance(a, dict) and "key" in a}
    return {}


def _time_ms(span: dict, otlp_key: str, flat_key: str) -> int | None:
    ns = span.get(otlp_key)
    if ns is not None:
        n = _int(ns)
        return None if n is None else n // 1_000_000
    t = span.get(flat_key)
    if t is None:
        return None
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return int(t) // 1_000_000 if t > 1e15 else _epoch_ms(t, flat_key)
    return _epoch_ms(t, flat_key)


def _json_or(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _span_messages(attrs: dict[str, Any], events: list) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    system = _json_or(attrs.get("gen_ai.system_instructions"))
    if system:
        out.append({"role": "system", "content": _text_of(system)})
    current = _json_or(attrs.get("gen_ai.input.messages"))
    if current is not None:
        return out + _chat_messages(current)
    legacy = _json_or(attrs.get("gen_ai.prompt"))
    if legacy is not None:
        return out + _chat_messages(legacy)
    flat = []
    i = 0
    while f"gen_ai.prompt.{i}.content" in attrs or f"gen_ai.prompt.{i}.role" in attrs:
        flat.append({"role": _role(attrs.get(f"gen_ai.prompt.{i}.role", "user")),
                     "content": _text_of(attrs.get(f"gen_ai.prompt.{i}.content"))})
        i += 1
    if flat:
        return out + flat
    for ev in events or []:
        if not isinstance(ev, dict):
            continue
        name = ev.get("name")
        ev_attrs = _attrs(ev.get("attributes"))
        if name in _MESSAGE_EVENTS:
            body = ev.get("body")
            content = ev_attrs.get("content", body.get("content") if isinstance(body, dict) else body)
            out.append({"role": _MESSAGE_EVENTS[name], "content": _text_of(_json_or(content))})
        elif name == "gen_ai.content.prompt":
            out.extend(_chat_messages(_json_or(ev_attrs.get("gen_ai.prompt"))))
    return out


def is_genai_span(span: Any) -> bool:
    if not isinstance(span, dict):
        return False
    attrs = _attrs(span.get("attributes"))
    return any(k in attrs for k in ("gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name"))


def from_otel_span(span: Any, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    """One OpenTelemetry GenAI span (OTLP/JSON or flat JSON) → a contract-v1 request event (dict)."""
    if not isinstance(span, dict):
        raise BadEvent("not_object", "a span must be a JSON object")
    attrs = {**_attrs((span.get("resource") or {}).get("attributes") if isinstance(span.get("resource"), dict)
                      else None), **(resource or {}), **_attrs(span.get("attributes"))}
    op_name = attrs.get("gen_ai.operation.name")
    if op_name is None and not any(k in attrs for k in ("gen_ai.system", "gen_ai.provider.name")):
        raise _unmapped("not a GenAI span (no gen_ai.operation.name)")
    operation = _OTEL_OPS.get(str(op_name or "chat"))
    if operation is None:
        raise _unmapped(f"gen_ai.operation.name {str(op_name)[:40]!r}")
    ctx = span.get("context") if isinstance(span.get("context"), dict) else {}
    trace_id = _str(span.get("traceId")) or _str(ctx.get("trace_id"))
    span_id = _str(span.get("spanId")) or _str(ctx.get("span_id"))
    if not span_id:
        raise _unmapped("no span id")
    account = next((_str(attrs[k]) for k in ACCOUNT_ATTRS if _str(attrs.get(k))), None)
    if not account:
        raise _unmapped("no account id (gen_ai.account.id / enduser.id)")
    model = _str(attrs.get("gen_ai.request.model")) or _str(attrs.get("gen_ai.response.model"))
    if not model:
        raise _unmapped("no model (gen_ai.request.model)")
    start = _time_ms(span, "startTimeUnixNano", "start_time")
    if start is None:
        raise _unmapped("no start time")
    end = _time_ms(span, "endTimeUnixNano", "end_time")
    params = _params({"max_tokens": attrs.get("gen_ai.request.max_tokens"),
                      "temperature": attrs.get("gen_ai.request.temperature"),
                      "top_p": attrs.get("gen_ai.request.top_p"),
                      "seed": attrs.get("gen_ai.request.seed"),
                      "n": attrs.get("gen_ai.request.choice.count")})
    usage: dict[str, int] = {}
    for ours, names in (("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
                        ("output_tokens", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
                        ("reasoning_tokens", ("gen_ai.usage.reasoning_tokens",))):
        n = next((_int(attrs[k]) for k in names if _int(attrs.get(k)) is not None), None)
        if n is not None and n >= 0:
            usage[ours] = n
    status_obj = span.get("status") if isinstance(span.get("status"), dict) else {}
    code = str(status_obj.get("code", status_obj.get("status_code", ""))).upper()
    if code in ("2", "STATUS_CODE_ERROR", "ERROR"):
        status = "rate_limited" if str(attrs.get("error.type")) in ("429", "rate_limit_exceeded",
                                                                   "RateLimitError") else "error"
    else:
        status = "ok"
    finish = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(finish, list):
        finish = finish[0] if finish else None
    return _finish({
        "schema_version": "1",
        "event_id": f"{trace_id}:{span_id}" if trace_id else span_id,
        "ts_ms": start,
        "account_id": account,
        "api_key_id": _str(attrs.get("gen_ai.api_key.id")),
        "user_id": _str(attrs.get("user.id")) or (_str(attrs.get("enduser.id"))
                                                 if attrs.get("gen_ai.account.id") else None),
        "client_ip": _str(attrs.get("client.address")),
        "user_agent": _str(attrs.get("user_agent.original")),
        "session_id": _str(attrs.get("gen_ai.conversation.id")),
        "model": model,
        "operation": operation,
        "messages": _span_messages(attrs, span.get("events") or []),
        "params": params,
        "usage": usage,
        "status": status,
        "latency_ms": max(0, end - start) if end is not None else None,
        "finish_reason": _str(finish),
        "provider": _str(attrs.get("gen_ai.provider.name")) or _str(attrs.get("gen_ai.system")),
        "source": "otel",
    })


# ---------------------------------------------------------------- records in a file or on a topic

def split_records(source: str, doc: Any) -> Iterator[tuple[dict | None, Any]]:
    """Yield ``(resource_attributes, record)`` for each record in one decoded JSON line/message.

    LiteLLM: the object itself. OpenTelemetry: an OTLP/JSON export
    (``resourceSpans`` → ``scopeSpans`` → ``spans``) yields its GenAI spans
    (other spans, e.g. HTTP server spans of the same trace, are skipped);
    anything else is taken as one span.
    """
    if source == "litellm":
        yield None, doc
        return
    if source != "otel":
        raise ValueError(f"unknown source {source!r}; one of {SOURCES}")
    if isinstance(doc, dict) and "resourceSpans" in doc:
        for rs in doc.get("resourceSpans") or []:
            resource = _attrs((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                for span in ss.get("spans") or []:
                    if is_genai_span(span):
                        yield resource, span
        return
    yield None, doc


def to_event(source: str, record: Any, resource: dict | None = None) -> dict[str, Any]:
    """Map one record of ``source`` (``litellm`` or ``otel``) to a contract-v1 event dict."""
    if source == "litellm":
        return from_litellm(record)
    if source == "otel":
        return from_otel_span(record, resource)
    raise ValueError(f"unknown source {source!r}; one of {SOURCES}")


def adapt_bytes(source: str, raw: bytes) -> Iterator[dict[str, Any] | BadEvent]:
    """Decode one line / message and yield an event dict or a :class:`BadEvent` per record."""
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
