"""Who may use the console, and proof that a state change came from the console's own page.

- Sign-in: the analyst's name plus the shared secret ``DG_CONSOLE_TOKEN`` (compared in
  constant time). A session is a random id in an ``HttpOnly; SameSite=Strict`` cookie,
  kept in memory (a restarted console asks everyone to sign in again).
- Every POST must carry the session's CSRF token in the form *and* come from the
  console's own origin (``Origin``, else ``Referer``); a POST with neither is refused.
"""
from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

COOKIE = "dg_console"
SESSION_S = 12 * 3600


@dataclass
class Session:
    analyst: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    created: float = field(default_factory=time.time)


class Sessions:
    def __init__(self, token: str):
        if not token:
            raise ValueError("a console token is required")
        self._token = token.encode()
        self._by_id: dict[str, Session] = {}

    def check_token(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self._token)

    def open(self, analyst: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        self._by_id[sid] = s = Session(analyst)
        return sid, s

    def get(self, sid: str | None) -> Session | None:
        s = self._by_id.get(sid or "")
        if s is not None and time.time() - s.created > SESSION_S:
            del self._by_id[sid]
            return None
        return s

    def close(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)


def same_origin(headers, host: str, scheme: str) -> bool:
    """True when the request's ``Origin`` (or, without one, ``Referer``) is this console."""
    source = headers.get("Origin") or headers.get("Referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return parts.scheme == scheme and parts.netloc == host


def csrf_ok(session: Session, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(submitted.encode(), session.csrf.encode())
