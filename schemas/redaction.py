"""Content-less request events: prompts a producer redacted or never sent.

A gateway that hides prompts still sends events: LiteLLM with
``turn_off_message_logging`` replaces every message by the text
``redacted-by-litellm``; an OpenTelemetry instrumentation without content
capture sends spans with no messages at all. Such an event must never pass
as a prompt (a marker string would look like one short, repeated prompt), so
the adapters drop the marker and set ``content_redacted: true`` (an added
contract field), and the detector reads only metadata from it
(``models.features.extract``). ``is_content_less`` also recognises events a
gateway produced itself with the marker or with empty messages.

>>> scrub_messages([{"role": "user", "content": "redacted-by-litellm"}])
([], True)
>>> scrub_messages([{"role": "system", "content": ""}, {"role": "user", "content": "hi"}])
([{'role': 'system', 'content': ''}, {'role': 'user', 'content': 'hi'}], False)
"""
from __future__ import annotations

from typing import Any

REDACTED_FIELD = "content_redacted"
# What producers put where a prompt was: LiteLLM's marker, and the usual hand-written ones.
MARKERS = frozenset({"redacted-by-litellm", "redacted", "[redacted]", "<redacted>", "***", "[content redacted]"})
MARKER_MAX_CHARS = max(len(m) for m in MARKERS) + 8   # a longer text is no marker (unless blank)


def is_marker(text: str) -> bool:
    """True when ``text`` is empty or a redaction marker (not a prompt)."""
    return len(text) <= MARKER_MAX_CHARS and text.strip().lower() in MARKERS or not text.strip()


def scrub_messages(messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], bool]:
    """(messages with marker contents emptied, content-less?). A content-less event keeps no
    messages at all: their roles alone would read as a one-turn, system-less request."""
    if not messages:
        return [], True
    out = [m if not is_marker(m["content"]) else {"role": m["role"], "content": ""} for m in messages]
    if all(not m["content"] for m in out):
        return [], True
    return out, False


def is_content_less(event: Any) -> bool:
    """Does this contract event (``RequestEvent``) carry no prompt text the detector may read?
    Batch submissions carry no prompts inline, so they are never content-less."""
    extra = event.extra
    if extra and extra.get(REDACTED_FIELD) is True:
        return True
    if event.operation == "batch":
        return False
    for m in event.messages:
        if not is_marker(m.content):
            return False
    return True
