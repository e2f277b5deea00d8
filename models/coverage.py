"""How much traffic the detector reads blind: events without prompt text (redacted by the
producer, or never captured; ``schemas/redaction.py``).

Content signals (reasoning and grader cues, templates, topics) cannot fire on such events, only
the metadata ones (volume, timing, parameters, tokens, errors). A deployment where a gateway
redacts every prompt would otherwise look healthy and alert on almost nothing; the worker logs
:func:`blind_warning` when the share is high, and shows :func:`coverage` on its status page.

>>> coverage(25, 100)
{'events': 25, 'share': 0.25}
>>> w = BlindSpotWatch(0.2)
>>> w.check(events=100, content_less=90)[:40]
'90 of the last 100 events (90%) carried '
>>> w.check(events=300, content_less=95) is None   # 5 of the next 200: fine again
True
"""
from __future__ import annotations

MIN_EVENTS = 100   # fewer events since the last check say too little to warn about


def coverage(content_less: int, events: int) -> dict:
    """The status-page block: content-less events and their share of all events."""
    return {"events": content_less, "share": round(content_less / events, 4) if events > 0 else 0.0}


def blind_warning(content_less: int, events: int) -> str:
    return (f"{content_less} of the last {events} events ({content_less / events:.0%}) carried no prompt text "
            "(redacted by the producer, e.g. LiteLLM turn_off_message_logging, or not captured): detection sees "
            "only their metadata (volume, timing, parameters, tokens, errors), not what they ask")


class BlindSpotWatch:
    """Warns when, since the previous check, more than ``warn_share`` of the events were content-less."""

    def __init__(self, warn_share: float) -> None:
        self.warn_share = warn_share
        self.events = 0
        self.content_less = 0

    def check(self, events: int, content_less: int) -> str | None:
        """Totals so far in; a warning for the stretch since the last check that said something."""
        n, blind = events - self.events, content_less - self.content_less
        if n < MIN_EVENTS:
            return None
        self.events, self.content_less = events, content_less
        return blind_warning(blind, n) if blind > self.warn_share * n else None
