"""What every gateway-log adapter shares: value coercion, messages, parameters, and the last
step (redaction check, contract-v1 validation). Plain functions, no I/O."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from .event import PARAM_TYPES, ROLES, BadEvent, event_from_dict
from .redaction import REDACTED_FIELD, scrub_messages

UNMAPPED = "adapter_unmapped"

_ROLE_ALIASES = {"developer": "system", "function": "tool", "model": "assistant", "human": "user", "ai": "assistant"}
# the current OpenAI name of max_tokens; LiteLLM and clients send either or both
_PARAM_ALIASES = {"max_tokens": "max_completion_tokens"}


def unmapped(detail: str) -> BadEvent:
    return BadEvent(UNMAPPED, detail)


def text_or_none(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def int_or_none(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def role_of(role: Any) -> str:
    r = str(role or "").lower()
    r = _ROLE_ALIASES.get(r, r)
    if r not in ROLES:
        raise unmapped(f"message role {str(role)[:40]!r} has no contract-v1 equivalent")
    return r


def text_of(content: Any) -> str:
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
        return text_of([content])
    return str(content)


def chat_messages(raw: Any) -> list[dict[str, str]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if isinstance(raw, dict):
        raw = raw.get("messages", [raw])
    if not isinstance(raw, list):
        raise unmapped(f"messages of type {type(raw).__name__}")
    out = []
    for m in raw:
        if isinstance(m, str):
            out.append({"role": "user", "content": m})
        elif isinstance(m, dict):
            content = m.get("content", m.get("parts"))
            out.append({"role": role_of(m.get("role", "user")), "content": text_of(content)})
        else:
            raise unmapped(f"a message of type {type(m).__name__}")
    return out


def params_of(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the contract's parameter keys that carry the right type; count tools."""
    out: dict[str, Any] = {}
    for key, kinds in PARAM_TYPES.items():
        value = raw.get(key)
        if value is None and key in _PARAM_ALIASES:
            value = raw.get(_PARAM_ALIASES[key])
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


def epoch_ms(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise unmapped(f"no {what}")
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            try:
                value = float(value)
            except ValueError:
                raise unmapped(f"{what} {value[:40]!r} is not a time") from None
    v = float(value)
    return int(v if v > 1e11 else v * 1000)   # seconds (LiteLLM) or already milliseconds


def finish(event: dict[str, Any]) -> dict[str, Any]:
    """Drop empty optionals, mark content-less events (``schemas/redaction.py``), validate against
    contract v1, return the dict."""
    doc = {k: v for k, v in event.items() if v is not None and v != {}}
    doc.setdefault("params", {})
    messages, content_less = scrub_messages(doc.get("messages") or [])
    doc["messages"] = messages
    if content_less and doc.get("operation") != "batch":
        doc[REDACTED_FIELD] = True
    return event_from_dict(doc).to_dict()
