"""Per-event features: what one request says, in a few numbers.

``extract`` is the only place that reads prompt text; everything downstream
sees :class:`EventFeatures` (fingerprints, flags and counts, no text). Why each
one separates extraction from use is said where the account-level feature is
built (``scoring.account_features``).

>>> from distillguard.schemas import parse_event
>>> ev = parse_event(b'{"schema_version":"1","event_id":"e","ts_ms":5,"account_id":"a","model":"m",'
...     b'"operation":"chat","messages":[{"role":"user","content":"Explain step by step: 2+2?"}],'
...     b'"params":{"max_tokens":1,"logprobs":true,"top_logprobs":5},"access_tier":"pro"}')
>>> f = extract(ev, b"k")
>>> f.reasoning, f.logprob_probe, f.fresh, f.tier   # asks for reasoning, but 1 token cannot hold it
(False, True, True, 'pro')
"""
from __future__ import annotations

from dataclasses import dataclass

from distillguard.schemas import RequestEvent
from distillguard.schemas.redaction import is_content_less

from .memo import Memo
from .text import analyze, clip, fingerprint, grader_cues, reasoning_cues
from .topics import OTHER, topic_of

LONG_OUTPUT_TOKENS = 2048  # max_tokens at or above this asks for a long harvest
REASONING_MIN_TOKENS = 256  # a request capped below this cannot get a reasoning trace back, whatever it says
_SYSTEM_CACHE_MAX = 4096   # system prompts repeat per account: analyse each distinct one once


@dataclass(slots=True)
class EventFeatures:
    ts_ms: int
    event_id: str
    skeleton_fp: int          # keyed fingerprint of the whole prompt's shape
    wrapper_fp: int           # keyed fingerprint of the instruction wrapper only
    topic: int
    reasoning: bool
    grader: bool
    logprob_probe: bool       # logprobs with tiny outputs: reading the distribution, not the text
    logit_bias_size: int
    long_output: bool         # max_tokens >= LONG_OUTPUT_TOKENS
    truncated: bool           # finish_reason == "length"
    input_tokens: int
    output_tokens: int
    error: bool
    model: str
    fresh: bool = True        # no earlier turn and no system prompt: a standalone query
    tier: str | None = None
    created_ms: int | None = None
    content_less: bool = False  # no prompt text to read (redacted or not sent): content signals left out


class _SystemWords:
    """Cue words of system prompts, memoised (bounded) because a deployment sends the same one
    with every request; the cache holds derived word sets only, keyed in memory by the clipped
    text ``analyze`` reads (a few hundred characters, however long the system prompt)."""

    def __init__(self) -> None:
        self._cache = Memo("features.system_words", _SYSTEM_CACHE_MAX)

    def __call__(self, text: str) -> frozenset:
        text = clip(text)
        words = self._cache.get(text)
        if words is None:
            words = analyze(text).words
            self._cache.put(text, words)
        return words


_system_words = _SystemWords()


def prompt_parts(event: RequestEvent) -> tuple[str, str, int]:
    """(last user turn, first system prompt, conversation turns): the one scan of ``messages``
    that feature extraction and cross-account linking (``linking.link_inputs``) both read.
    A content-less event (redacted, or no content sent: ``schemas/redaction.py``) has none, so
    a redaction marker can never read as a prompt, a wrapper or a system prompt."""
    if is_content_less(event):
        return "", "", 0
    prompt = system = ""
    turns = 0
    for m in event.messages:
        role = m.role
        if role == "user":
            prompt = m.content
            turns += 1
        elif role == "system":
            if not system:
                system = m.content
        else:
            turns += 1
    return prompt, system, turns


def extract(event: RequestEvent, key: bytes) -> EventFeatures:
    """One request → :class:`EventFeatures` (reads the last user turn and the system prompt)."""
    prompt, system, turns = prompt_parts(event)
    if not (prompt or system or turns) and is_content_less(event):
        # Redacted or no-content producers: the metadata signals only. The fingerprint is the
        # event's own, so it neither repeats nor fills a template (a constant would read as one
        # prompt sent again and again), and the capability area is "other".
        f = _features(event, key, "", "", 0)
        f.skeleton_fp = f.wrapper_fp = fingerprint(key, event.event_id)
        f.topic, f.reasoning, f.grader, f.fresh, f.content_less = OTHER, False, False, False, True
        return f
    return _features(event, key, prompt, system, turns)


def _features(event: RequestEvent, key: bytes, prompt: str, system: str, turns: int) -> EventFeatures:
    params = event.params
    max_tokens = params.get("max_tokens") or 0
    bias = params.get("logit_bias")
    usage = event.usage
    p = analyze(prompt)
    cue_words = p.words
    if system:
        cue_words = cue_words | _system_words(system)
    return EventFeatures(
        event.ts_ms,
        event.event_id,
        fingerprint(key, p.skeleton),
        fingerprint(key, p.wrapper),
        topic_of(p.words),
        reasoning_cues(cue_words) >= 2 and not 0 < max_tokens < REASONING_MIN_TOKENS,
        grader_cues(cue_words) >= 2,
        bool(params.get("logprobs")) and (params.get("top_logprobs") or 0) >= 1 and 0 < max_tokens <= 5,
        len(bias) if bias else 0,
        max_tokens >= LONG_OUTPUT_TOKENS,
        event.finish_reason == "length",
        usage.get("input_tokens") or 0,
        usage.get("output_tokens") or 0,
        event.status not in (None, "ok"),
        event.model,
        turns <= 1 and not system,
        event.access_tier,
        event.account_created_ms,
    )
