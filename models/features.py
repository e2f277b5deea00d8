"""Per-event features: what one request says, in a few numbers.

``extract`` is the only place that reads prompt text; everything downstream
sees :class:`EventFeatures` (fingerprints and counts, no text).

>>> from distillguard.schemas import parse_event
>>> ev = parse_event(b'{"schema_version":"1","event_id":"e","ts_ms":5,"account_id":"a","model":"m",'
...     b'"operation":"chat","messages":[{"role":"user","content":"Explain step by step: 2+2?"}],'
...     b'"params":{"max_tokens":1,"logprobs":true,"top_logprobs":5}}')
>>> f = extract(ev, b"k")
>>> f.reasoning, f.logprob_probe
(True, True)
"""
from __future__ import annotations

from dataclasses import dataclass

from distillguard.schemas import RequestEvent

from .text import analyze, fingerprint, grader_cues, reasoning_cues
from .topics import topic_of

LONG_OUTPUT_TOKENS = 2048  # max_tokens at or above this asks for a long harvest


@dataclass(slots=True)
class EventFeatures:
    ts_ms: int
    event_id: str
    skeleton_fp: int          # keyed fingerprint of the whole prompt's shape
    wrapper_fp: int           # keyed fingerprint of the instruction wrapper only
    system_fp: int            # keyed fingerprint of the system prompt (0 if none)
    topic: int
    reasoning: bool
    grader: bool
    logprob_probe: bool       # logprobs with tiny outputs: reading the distribution, not the text
    logit_bias_size: int
    long_output: bool
    truncated: bool           # finish_reason == "length"
    input_tokens: int
    output_tokens: int
    error: bool
    model: str


def user_prompt(event: RequestEvent) -> tuple[str, str]:
    """(last user turn, first system prompt) of a request; the new question is the last user turn."""
    prompt = system = ""
    for m in event.messages:
        if m.role == "user":
            prompt = m.content
        elif m.role == "system" and not system:
            system = m.content
    return prompt, system


def extract(event: RequestEvent, key: bytes) -> EventFeatures:
    prompt, system = user_prompt(event)
    params = event.params
    max_tokens = params.get("max_tokens") or 0
    bias = params.get("logit_bias") or {}
    usage = event.usage
    p = analyze(prompt)
    cue_words = p.words
    system_fp = 0
    if system:
        s = analyze(system)
        system_fp = fingerprint(key, s.skeleton)
        cue_words = cue_words | s.words
    return EventFeatures(
        ts_ms=event.ts_ms,
        event_id=event.event_id,
        skeleton_fp=fingerprint(key, p.skeleton),
        wrapper_fp=fingerprint(key, p.wrapper),
        system_fp=system_fp,
        topic=topic_of(p.words),
        reasoning=reasoning_cues(cue_words) >= 2,
        grader=grader_cues(cue_words) >= 2,
        logprob_probe=bool(params.get("logprobs")) and (params.get("top_logprobs") or 0) >= 1 and 0 < max_tokens <= 5,
        logit_bias_size=len(bias),
        long_output=max_tokens >= LONG_OUTPUT_TOKENS,
        truncated=event.finish_reason == "length",
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        error=event.status not in (None, "ok"),
        model=event.model,
    )
