"""OpenTelemetry GenAI spans and log records → request events (contract v1). Plain functions.

The mapping table is in ``schemas/adapters.py``. Prompts may sit on the span
(``gen_ai.input.messages``, the legacy ``gen_ai.prompt*`` attributes or span
events) or only in log records: ``gen_ai.client.inference.operation.details``
(openai-v2 with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental``
and event capture) or the legacy ``gen_ai.{system,user,assistant,tool}.message``
events. Log records carry the trace and span id of their span; the join is
``schemas.adapter_stream.SpanLogJoiner``'s job, this module maps one span with
the log records joined to it.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from .adapter_base import (chat_messages, epoch_ms, finish, int_or_none, params_of, role_of, text_of,
                           text_or_none, unmapped)
from .event import BadEvent

_OPS = {"chat": "chat", "generate_content": "chat", "text_completion": "text_completion",
        "embeddings": "embeddings"}
ACCOUNT_ATTRS = ("gen_ai.account.id", "enduser.id")
MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
_CONTENT_ATTRS = ("gen_ai.input.messages", "gen_ai.prompt", "gen_ai.prompt.0.content", "gen_ai.prompt.0.role")
# finish reasons that name the same thing differently (traceloop says tool_call, OpenAI tool_calls)
_FINISH_ALIASES = {"tool_call": "tool_calls", "function_call": "tool_calls"}


def otlp_value(v: Any) -> Any:
    """An OTLP/JSON AnyValue → a Python value."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int_or_none(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [otlp_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return attrs_of((v["kvlistValue"] or {}).get("values", []))
    return None


def attrs_of(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list):
        return {a["key"]: otlp_value(a.get("value")) for a in raw if isinstance(a, dict) and "key" in a}
    return {}


def _time_ms(span: dict, otlp_key: str, flat_key: str) -> int | None:
    ns = span.get(otlp_key)
    if ns is not None:
        n = int_or_none(ns)
        return None if n is None else n // 1_000_000
    t = span.get(flat_key)
    if t is None:
        return None
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return int(t) // 1_000_000 if t > 1e15 else epoch_ms(t, flat_key)
    return epoch_ms(t, flat_key)


def _json_or(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def _messages_from_attrs(attrs: dict[str, Any]) -> list[dict[str, str]] | None:
    """Messages carried as attributes (of a span or a details log record); None if there are none."""
    out: list[dict[str, str]] = []
    system = _json_or(attrs.get("gen_ai.system_instructions"))
    if system:
        out.append({"role": "system", "content": text_of(system)})
    current = _json_or(attrs.get("gen_ai.input.messages"))
    if current is not None:
        return out + chat_messages(current)
    legacy = _json_or(attrs.get("gen_ai.prompt"))
    if legacy is not None:
        return out + chat_messages(legacy)
    flat = []
    i = 0
    while f"gen_ai.prompt.{i}.content" in attrs or f"gen_ai.prompt.{i}.role" in attrs:
        flat.append({"role": role_of(attrs.get(f"gen_ai.prompt.{i}.role", "user")),
                     "content": text_of(attrs.get(f"gen_ai.prompt.{i}.content"))})
        i += 1
    return out + flat if out or flat else None


def _message_of_event(name: str, attrs: dict[str, Any], body: Any) -> list[dict[str, str]]:
    """A legacy message event (span event or log record) → its messages."""
    if name in MESSAGE_EVENTS:
        content = attrs.get("content", body.get("content") if isinstance(body, dict) else body)
        return [{"role": MESSAGE_EVENTS[name], "content": text_of(_json_or(content))}]
    if name == "gen_ai.content.prompt":
        return chat_messages(_json_or(attrs.get("gen_ai.prompt")))
    if name == DETAILS_EVENT:
        return _messages_from_attrs(attrs) or []
    return []


def event_name(record: dict) -> str | None:
    """Name of a span event or log record (OTLP ``name``/``eventName``, or the older
    ``event.name`` attribute)."""
    name = record.get("eventName") or record.get("name") or record.get("event_name")
    if not name:
        name = attrs_of(record.get("attributes")).get("event.name")
    return name if isinstance(name, str) else None


def _span_messages(attrs: dict[str, Any], events: list, logs: list | None) -> list[dict[str, str]]:
    on_span = _messages_from_attrs(attrs)
    if on_span is not None:
        return on_span
    out: list[dict[str, str]] = []
    for ev in list(events or []) + list(logs or []):
        if isinstance(ev, dict):
            name = event_name(ev)
            if name:
                out.extend(_message_of_event(name, attrs_of(ev.get("attributes")), otlp_value(ev.get("body"))))
    return out


def is_genai_span(span: Any) -> bool:
    if not isinstance(span, dict):
        return False
    attrs = attrs_of(span.get("attributes"))
    return any(k in attrs for k in ("gen_ai.operation.name", "gen_ai.system", "gen_ai.provider.name"))


def is_genai_log(record: Any) -> bool:
    """A log record that carries a GenAI request's content (the details event or a legacy message)."""
    return isinstance(record, dict) and (event_name(record) in MESSAGE_EVENTS
                                         or event_name(record) in (DETAILS_EVENT, "gen_ai.content.prompt"))


def span_has_content(span: dict) -> bool:
    """Does the span itself carry the prompt (attributes or span events)? If not, its prompt may
    come in log records, or never (no-content mode)."""
    attrs = attrs_of(span.get("attributes"))
    if any(k in attrs for k in _CONTENT_ATTRS):
        return True
    return any(isinstance(ev, dict) and event_name(ev) in MESSAGE_EVENTS for ev in span.get("events") or [])


def join_key(record: dict) -> tuple[str, str] | None:
    """(trace id, span id) of a span or a log record, the key that joins them."""
    ctx = record.get("context") if isinstance(record.get("context"), dict) else {}
    trace = text_or_none(record.get("traceId")) or text_or_none(record.get("trace_id")) \
        or text_or_none(ctx.get("trace_id"))
    span = text_or_none(record.get("spanId")) or text_or_none(record.get("span_id")) \
        or text_or_none(ctx.get("span_id"))
    return (trace.lower(), span.lower()) if trace and span else None


def _status(span: dict, attrs: dict[str, Any]) -> str:
    status = span.get("status") if isinstance(span.get("status"), dict) else {}
    code = str(status.get("code", status.get("status_code", ""))).upper()
    if code not in ("2", "STATUS_CODE_ERROR", "ERROR"):
        return "ok"
    # openai-v2 says "<class 'openai.RateLimitError'>", traceloop "RateLimitError"; some just the code
    error = f"{attrs.get('error.type', '')} {status.get('message', '')}".lower()
    return "rate_limited" if "ratelimit" in error or "rate_limit" in error or "429" in error else "error"


def _tools_count(attrs: dict[str, Any]) -> int | None:
    tools = _json_or(attrs.get("gen_ai.tool.definitions"))
    return len(tools) if isinstance(tools, list) else None


def from_otel_span(span: Any, resource: dict[str, Any] | None = None, logs: list | None = None) -> dict[str, Any]:
    """One OpenTelemetry GenAI span (OTLP/JSON or flat JSON), with the log records joined to it,
    → a contract-v1 request event (dict)."""
    if not isinstance(span, dict):
        raise BadEvent("not_object", "a span must be a JSON object")
    attrs = {**attrs_of((span.get("resource") or {}).get("attributes") if isinstance(span.get("resource"), dict)
                        else None), **(resource or {}), **attrs_of(span.get("attributes"))}
    op_name = attrs.get("gen_ai.operation.name")
    if op_name is None and not any(k in attrs for k in ("gen_ai.system", "gen_ai.provider.name")):
        raise unmapped("not a GenAI span (no gen_ai.operation.name)")
    operation = _OPS.get(str(op_name or "chat"))
    if operation is None:
        raise unmapped(f"gen_ai.operation.name {str(op_name)[:40]!r}")
    key = join_key(span)
    span_id = text_or_none(span.get("spanId")) or text_or_none((span.get("context") or {}).get("span_id")
                                                              if isinstance(span.get("context"), dict) else None)
    if not span_id:
        raise unmapped("no span id")
    account = next((text_or_none(attrs[k]) for k in ACCOUNT_ATTRS if text_or_none(attrs.get(k))), None)
    if not account:
        raise unmapped("no account id (gen_ai.account.id / enduser.id)")
    model = text_or_none(attrs.get("gen_ai.request.model")) or text_or_none(attrs.get("gen_ai.response.model"))
    if not model:
        raise unmapped("no model (gen_ai.request.model)")
    start = _time_ms(span, "startTimeUnixNano", "start_time")
    if start is None:
        raise unmapped("no start time")
    end = _time_ms(span, "endTimeUnixNano", "end_time")
    params = params_of({"max_tokens": attrs.get("gen_ai.request.max_tokens"),
                        "temperature": attrs.get("gen_ai.request.temperature"),
                        "top_p": attrs.get("gen_ai.request.top_p"),
                        "seed": attrs.get("gen_ai.request.seed"),
                        "n": attrs.get("gen_ai.request.choice.count"),
                        "stream": _bool(attrs.get("gen_ai.is_streaming", attrs.get("gen_ai.request.stream"))),
                        "tools_count": _tools_count(attrs)})
    usage: dict[str, int] = {}
    for ours, names in (("input_tokens", ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")),
                        ("output_tokens", ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")),
                        ("reasoning_tokens", ("gen_ai.usage.reasoning_tokens",))):
        n = next((int_or_none(attrs[k]) for k in names if int_or_none(attrs.get(k)) is not None), None)
        if n is not None and n >= 0:
            usage[ours] = n
    finish_reason = attrs.get("gen_ai.response.finish_reasons")
    if isinstance(finish_reason, list):
        finish_reason = finish_reason[0] if finish_reason else None
    finish_reason = text_or_none(finish_reason)
    end_user = text_or_none(attrs.get("user.id")) or text_or_none(attrs.get("gen_ai.user"))
    return finish({
        "schema_version": "1",
        "event_id": f"{key[0]}:{key[1]}" if key else span_id,
        "ts_ms": start,
        "account_id": account,
        "api_key_id": text_or_none(attrs.get("gen_ai.api_key.id")),
        "user_id": end_user or (text_or_none(attrs.get("enduser.id")) if attrs.get("gen_ai.account.id") else None),
        "client_ip": text_or_none(attrs.get("client.address")),
        "user_agent": text_or_none(attrs.get("user_agent.original")),
        "session_id": text_or_none(attrs.get("gen_ai.conversation.id")),
        "model": model,
        "operation": operation,
        "messages": _span_messages(attrs, span.get("events") or [], logs),
        "params": params,
        "usage": usage,
        "status": _status(span, attrs),
        "latency_ms": max(0, end - start) if end is not None else None,
        "finish_reason": _FINISH_ALIASES.get(finish_reason, finish_reason) if finish_reason else None,
        "provider": text_or_none(attrs.get("gen_ai.provider.name")) or text_or_none(attrs.get("gen_ai.system")),
        "source": "otel",
    })


def split_spans(doc: Any) -> Iterator[tuple[dict | None, Any]]:
    """``(resource attributes, span)`` for each GenAI span of an OTLP/JSON trace export
    (``resourceSpans`` → ``scopeSpans`` → ``spans``; other spans, e.g. HTTP server spans of the same
    trace, are skipped); anything else is taken as one span."""
    if isinstance(doc, dict) and "resourceSpans" in doc:
        for rs in doc.get("resourceSpans") or []:
            resource = attrs_of((rs.get("resource") or {}).get("attributes"))
            for ss in rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or []:
                for span in ss.get("spans") or []:
                    if is_genai_span(span):
                        yield resource, span
        return
    yield None, doc


def split_logs(doc: Any) -> Iterator[dict]:
    """The GenAI log records of an OTLP/JSON logs export (``resourceLogs`` → ``scopeLogs`` →
    ``logRecords``); other log records are skipped."""
    for rl in doc.get("resourceLogs") or []:
        for sl in rl.get("scopeLogs") or rl.get("instrumentationLibraryLogs") or []:
            for record in sl.get("logRecords") or []:
                if is_genai_log(record):
                    yield record


def is_logs_export(doc: Any) -> bool:
    return isinstance(doc, dict) and "resourceLogs" in doc
