"""Request event, contract v1: the fast parse-and-validate path.

JSON Schema files beside this module document the same shape for other
languages; this module is what runs on the hot path (orjson + plain checks,
no per-event schema interpretation). ``tests/test_schemas.py`` checks that
the two agree.

>>> ev = parse_event(b'{"schema_version":"1","event_id":"e1","ts_ms":1,"account_id":"a",'
...                  b'"model":"m","operation":"chat","messages":[],"params":{}}')
>>> ev.account_id, ev.ts_ms
('a', 1)
>>> try:
...     parse_event(b'{"schema_version":"1"}')
... except BadEvent as err:
...     err.reason
'missing_field'
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import orjson

SCHEMA_VERSION = "1"
OPERATIONS = frozenset({"chat", "text_completion", "embeddings", "batch"})
ROLES = frozenset({"system", "user", "assistant", "tool"})
MAX_TS_MS = 2**53  # beyond this JSON numbers lose precision in other languages
MAX_MESSAGES = 2048
MAX_LOGIT_BIAS = 4096

REQUIRED = ("schema_version", "event_id", "ts_ms", "account_id", "model", "operation", "messages", "params")
OPTIONAL_STR = ("api_key_id", "user_id", "client_ip", "user_agent", "session_id",
                "payment_fingerprint", "access_tier", "finish_reason")
OPTIONAL_INT = ("account_created_ms", "latency_ms")
KNOWN = frozenset(REQUIRED + OPTIONAL_STR + OPTIONAL_INT + ("usage", "status"))
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": (int, float), "top_p": (int, float), "max_tokens": (int,), "n": (int,),
    "seed": (int,), "stream": (bool,), "logprobs": (bool,), "top_logprobs": (int,),
    "logit_bias": (dict,), "tools_count": (int,),
}
USAGE_KEYS = ("input_tokens", "output_tokens", "reasoning_tokens")


class BadEvent(ValueError):
    """An event that breaks contract v1. ``reason`` is a short code for the DLQ
    (``invalid_json``, ``too_large``, ``not_object``, ``missing_field``,
    ``wrong_type``, ``bad_value``); ``detail`` says what exactly."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Message:
    role: str
    content: str


@dataclass(slots=True)
class RequestEvent:
    event_id: str
    ts_ms: int
    account_id: str
    model: str
    operation: str
    messages: list[Message]
    params: dict[str, Any]
    api_key_id: str | None = None
    user_id: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None
    session_id: str | None = None
    payment_fingerprint: str | None = None
    account_created_ms: int | None = None
    access_tier: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    status: str | None = None
    latency_ms: int | None = None
    finish_reason: str | None = None
    extra: dict[str, Any] | None = None  # unknown fields: kept, ignored

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for name in self.__slots__:
            if name == "extra":
                continue
            value = getattr(self, name)
            if name == "messages":
                value = [{"role": m.role, "content": m.content} for m in value]
            if value is not None:
                out[name] = value
        if self.extra:
            out.update(self.extra)
        return out


def _is_int(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass; it is not an integer here


def _text(doc: dict, name: str, required: bool) -> str | None:
    value = doc.get(name)
    if value is None:
        if required:
            raise BadEvent("missing_field", name)
        return None
    if type(value) is not str:
        raise BadEvent("wrong_type", f"{name} must be a string")
    return value


def _messages(raw: Any) -> list[Message]:
    if type(raw) is not list:
        raise BadEvent("wrong_type", "messages must be an array")
    if len(raw) > MAX_MESSAGES:
        raise BadEvent("bad_value", f"messages has {len(raw)} entries (max {MAX_MESSAGES})")
    out = []
    add = out.append
    for m in raw:
        if type(m) is dict:
            role, content = m.get("role"), m.get("content")
            if type(role) is str and type(content) is str and role in ROLES:
                add(Message(role, content))
                continue
        _bad_message(len(out), m)
    return out


def _bad_message(i: int, m: Any) -> None:
    """Raise the error of ``messages[i]`` (off the hot path: only a bad message gets here)."""
    if type(m) is not dict:
        raise BadEvent("wrong_type", f"messages[{i}] must be an object")
    role, content = m.get("role"), m.get("content")
    if type(role) is not str or type(content) is not str:
        raise BadEvent("wrong_type", f"messages[{i}] needs string role and content")
    raise BadEvent("bad_value", f"messages[{i}].role {role[:40]!r} is not one of {sorted(ROLES)}")


def _params(raw: Any) -> dict[str, Any]:
    if type(raw) is not dict:
        raise BadEvent("wrong_type", "params must be an object")
    for key, value in raw.items():
        kinds = PARAM_TYPES.get(key)
        if kinds is None or value is None:
            continue
        if type(value) not in kinds or (kinds == (int,) and not _is_int(value)):
            raise BadEvent("wrong_type", f"params.{key} has the wrong type")
    bias = raw.get("logit_bias")
    if bias:
        if len(bias) > MAX_LOGIT_BIAS:
            raise BadEvent("bad_value", f"params.logit_bias has {len(bias)} entries (max {MAX_LOGIT_BIAS})")
        for value in bias.values():
            if type(value) not in (int, float):
                raise BadEvent("wrong_type", "params.logit_bias values must be numbers")
    return raw


def _usage(raw: Any) -> dict[str, int]:
    if raw is None:
        return {}
    if type(raw) is not dict:
        raise BadEvent("wrong_type", "usage must be an object")
    for key in USAGE_KEYS:
        value = raw.get(key)
        if value is not None and (not _is_int(value) or value < 0):
            raise BadEvent("wrong_type", f"usage.{key} must be a non-negative integer")
    return raw


try:   # the compiled happy path (setup.py); without it, the Python below does everything
    from ._eventcheck import Checker
except ImportError:
    Checker = None

_KIND_CODES = {(int, float): 1, (int,): 2, (bool,): 3, (dict,): 4}   # _eventcheck.c's kinds


def _slot_fields(cls: type) -> tuple[str, ...] | None:
    """The field names the C may fill in itself, as the generated ``__init__`` would (a slotted
    dataclass whose ``__init__`` only assigns its fields), or None: then it calls the class."""
    names = tuple(f.name for f in fields(cls))
    plain = "__slots__" in cls.__dict__ and not hasattr(cls, "__post_init__") and all(f.init for f in fields(cls))
    return names if plain else None


CHECKER = None if Checker is None else Checker(
    RequestEvent, Message, OPERATIONS, ROLES, KNOWN, {k: _KIND_CODES[v] for k, v in PARAM_TYPES.items()},
    MAX_MESSAGES, MAX_LOGIT_BIAS, MAX_TS_MS,
    event_fields=_slot_fields(RequestEvent), message_fields=_slot_fields(Message))
_build = None if CHECKER is None else CHECKER.build


def set_compiled(on: bool) -> None:
    """Build events of valid documents in C (when built; ``models.native.set_enabled`` calls
    this) or always in Python. Same events either way: ``Checker.build`` returns None for
    anything but a valid document without unknown fields, and the Python runs for those."""
    global _build
    _build = CHECKER.build if on and CHECKER is not None else None


def compiled() -> bool:
    """Whether valid documents are built in C now."""
    return _build is not None


def event_from_dict(doc: Any) -> RequestEvent:
    """Validate an already-decoded JSON value against contract v1."""
    if _build is not None:
        ev = _build(doc)
        if ev is not None:
            return ev
    return python_event_from_dict(doc)


def python_event_from_dict(doc: Any) -> RequestEvent:
    """``event_from_dict`` in Python: the definition, and the route of every error."""
    if type(doc) is not dict:
        raise BadEvent("not_object", "a request event must be a JSON object")
    version = doc.get("schema_version")
    if version is None:
        raise BadEvent("missing_field", "schema_version")
    if version != SCHEMA_VERSION:
        raise BadEvent("bad_value", f"schema_version {str(version)[:20]!r} is not {SCHEMA_VERSION!r}")
    ts = doc.get("ts_ms")
    if ts is None:
        raise BadEvent("missing_field", "ts_ms")
    if not _is_int(ts):
        raise BadEvent("wrong_type", "ts_ms must be an integer")
    if not 0 <= ts < MAX_TS_MS:
        raise BadEvent("bad_value", "ts_ms out of range")
    get = doc.get
    event_id, account_id, model, operation = get("event_id"), get("account_id"), get("model"), get("operation")
    if type(event_id) is not str or type(account_id) is not str:   # the error of the first bad one
        _text(doc, "event_id", True)
        _text(doc, "account_id", True)
    if not event_id or not account_id:
        raise BadEvent("bad_value", "event_id and account_id must not be empty")
    if type(model) is not str or type(operation) is not str:
        _text(doc, "model", True)
        _text(doc, "operation", True)
    if operation not in OPERATIONS:
        raise BadEvent("bad_value", f"operation {operation[:40]!r} is not one of {sorted(OPERATIONS)}")
    if "messages" not in doc:
        raise BadEvent("missing_field", "messages")
    if "params" not in doc:
        raise BadEvent("missing_field", "params")
    messages = _messages(doc["messages"])
    params = _params(doc["params"])
    usage = _usage(get("usage"))
    ev = RequestEvent(event_id, ts, account_id, model, operation, messages, params,
                      get("api_key_id"), get("user_id"), get("client_ip"), get("user_agent"), get("session_id"),
                      get("payment_fingerprint"), get("account_created_ms"), get("access_tier"), usage,
                      get("status"), get("latency_ms"), get("finish_reason"))
    # one pass over the optional values, in field order; the message names the first bad one
    for value in (ev.api_key_id, ev.user_id, ev.client_ip, ev.user_agent, ev.session_id, ev.payment_fingerprint,
                  ev.access_tier, ev.finish_reason, ev.status):
        if value is not None and type(value) is not str:
            _check_optional(ev)
    for value in (ev.account_created_ms, ev.latency_ms):
        if value is not None and type(value) is not int:
            _check_optional(ev)
    if len(doc) > len(KNOWN) or not KNOWN.issuperset(doc):
        ev.extra = {k: v for k, v in doc.items() if k not in KNOWN} or None
    return ev


def _check_optional(ev: RequestEvent) -> None:
    """Raise the error of the first optional field of the wrong type (off the hot path)."""
    for name in OPTIONAL_STR:
        value = getattr(ev, name)
        if value is not None and type(value) is not str:
            raise BadEvent("wrong_type", f"{name} must be a string")
    for name in OPTIONAL_INT:
        value = getattr(ev, name)
        if value is not None and not _is_int(value):
            raise BadEvent("wrong_type", f"{name} must be an integer")
    if ev.status is not None and type(ev.status) is not str:
        raise BadEvent("wrong_type", "status must be a string")


def parse_event(raw: bytes | str, max_bytes: int = 262144) -> RequestEvent:
    """Decode and validate one request event; raise :class:`BadEvent` if it breaks contract v1."""
    if len(raw) > max_bytes:
        raise BadEvent("too_large", f"{len(raw)} bytes (max {max_bytes})")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise BadEvent("invalid_json", str(err)[:200]) from None
    return event_from_dict(doc)
