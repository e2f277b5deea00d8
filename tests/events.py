"""One factory for contract-v1 request events in tests (``make_event`` fixture in conftest)."""
from __future__ import annotations

import itertools

_ids = itertools.count()


def request_event(account: str = "a", ts_ms: int = 1, prompt: str = "hi", *, system: str | None = None,
                  history=(), event_id: str | None = None, model: str = "m", params: dict | None = None,
                  **fields) -> dict:
    """A valid request event as a dict; ``fields`` add or replace top-level fields (usage, access_tier...)."""
    messages = ([{"role": "system", "content": system}] if system else []) + list(history)
    messages.append({"role": "user", "content": prompt})
    return {"schema_version": "1", "event_id": event_id or f"e{next(_ids)}", "ts_ms": ts_ms, "account_id": account,
            "model": model, "operation": "chat", "messages": messages, "params": params or {}, **fields}
