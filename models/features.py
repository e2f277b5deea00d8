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
>>> ev = parse_event(b'{"schema_version":"1","event_id":"e","ts_ms":5,"account_id":"a","model":"m",'
...     b'"operation":"chat","messages":[{"role":"system","content":"Always think aloud and write out every '
...     b'step of your reasoning before answering."},{"role":"user","content":"What is 2+2?"}],'
...     b'"params":{"max_tokens":4096},"user_id":"u1"}')
>>> f = extract(ev, b"k")
>>> f.reasoning, f.fresh, f.end_user   # elicitation in the system prompt counts too
(True, False, 'u1')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from distillguard.schemas import RequestEvent
from distillguard.schemas.redaction import MARKER_MAX_CHARS, MARKERS, REDACTED_FIELD, is_content_less

from .capability_areas import OTHER as AREA_OTHER, area_of
from .capability_space import OTHER as CAPABILITY_OTHER, capability_of
from .elicitation import ElicitationModel, default_model
from .memo import Memo
from . import native
from .paste import MIN_PROMPT_CHARS as MIN_PASTE_PROMPT, unrelated_ask
from .text import analyze, clip, fingerprint, grader_cues, keyed_fingerprint, keyed_hasher

LONG_OUTPUT_TOKENS = 2048  # max_tokens at or above this asks for a long harvest
LONG_ANSWER_TOKENS = 600   # an answer this long (output tokens actually returned) is worth distilling
SHORT_ANSWER_TOKENS = 100  # a bounded verdict / label (judges, classifiers)
REASONING_MIN_TOKENS = 256  # a request capped below this cannot get a reasoning trace back, whatever it says


@dataclass(slots=True)
class EventFeatures:
    ts_ms: int
    event_id: str
    skeleton_fp: int          # keyed fingerprint of the whole prompt's shape
    wrapper_fp: int           # keyed fingerprint of the instruction wrapper only
    area: int                 # coarse capability area (capability_areas), for the cross-account profile
    reasoning: bool           # asks for written-out reasoning: system prompt, user turn or follow-up
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
    capability: int = 0       # fine capability area (capability_space) of the conversation's question
    long_answer: bool = False  # output_tokens >= LONG_ANSWER_TOKENS
    short_answer: bool = False  # bounded request (max_tokens <= 256) answered in < SHORT_ANSWER_TOKENS
    end_user: str | None = None  # the gateway's user_id (an id, not text)
    content_less: bool = False  # no prompt text to read (redacted or not sent): content signals left out
    unrelated_ask: int = 0      # keyed fingerprint of a question beside pasted text it is unrelated to
                                # (paste.py: padding), 0 if none


# capability areas of recent opening questions (each turn of a chat resends its question);
# derived ints only, keyed in memory by the clipped text
_opening = Memo("features.opening_capability", 4096)


def _opening_capability(question: str, model: ElicitationModel) -> int:
    """Capability area of a conversation's opening question, memoised (bounded)."""
    key = clip(question)
    area = _opening.get(key)
    if area is None:
        scanned = native.scan(model, key)
        area = capability_of(analyze(key).payload) if scanned is None else scanned[4]   # its capability
        _opening.put(key, area)
    return area


def _elicits(model: ElicitationModel, text: str, words: frozenset) -> bool:
    if text.isascii():     # analyze's words are the classifier's n-grams for ASCII text: no second pass
        return model.probability_of(words) >= 0.5
    return model.is_elicitation(text)


class PromptSignals(NamedTuple):
    """Everything ``extract`` derives from the last user turn's text: derived numbers only."""
    skeleton_fp: int
    wrapper_fp: int
    area: int            # coarse area (capability_areas)
    capability: int      # fine area (capability_space) of its payload words
    elicits: bool        # the elicitation model's verdict on it
    grader: bool         # grading vocabulary and a scale


# Prompts repeat (templated jobs, retries, every turn of a chat resends history, eval harnesses):
# ~36% of the default scenario's prompts were seen within the last 4096. Each (key, elicitation
# model) has its own memo of signals by clipped text (the signals depend on both); the memo of
# the latest pairs is kept (a process has one, evaluation a few).
PROMPT_MEMO = 4096
_SIGNALS = Memo("features.signal_memos", 4)


class _SignalContext(NamedTuple):
    """What computing a prompt's signals needs besides its text, looked up once per (key, model)
    rather than once per prompt: its memo, the key's hasher, the compiled scanner (None: the
    pure-Python route; a change of route drops the context, ``_set_compiled``)."""
    key: bytes
    model: ElicitationModel
    memo: Memo
    hasher: object
    scanner: object


_latest: list = [None]   # the context of the last call: a process has one (key, model) pair


def _signal_context(key: bytes, model: ElicitationModel) -> _SignalContext:
    ctx = _latest[0]
    if ctx is not None and ctx.model is model and ctx.key == key:
        return ctx
    memo = _SIGNALS.get((key, model))
    if memo is None:
        memo = Memo("features.prompt_signals", PROMPT_MEMO)
        _SIGNALS.put((key, model), memo)
    ctx = _latest[0] = _SignalContext(key, model, memo, keyed_hasher(key), native.scanner_for(model))
    return ctx


def prepare(key: bytes, model: ElicitationModel | None = None) -> ElicitationModel:
    """Do now the one-time work the first event would otherwise pay (~0.2 s, all of it in one
    batch's latency): train the default model if ``model`` is None, build the compiled scanner's
    tables and the key's hasher. Returns the model."""
    model = model or default_model()
    _signal_context(key, model)
    return model


def prompt_signals(prompt: str, key: bytes, model: ElicitationModel, memo: Memo | None = None,
                   ctx: _SignalContext | None = None) -> PromptSignals:
    """The text signals of ``prompt`` (all functions of its clipped text), memoised in ``memo``
    (``ctx``: the key's and model's context, with its memo, if the caller has it)."""
    clipped = clip(prompt)
    if ctx is not None:
        memo = ctx.memo
    if memo is not None:
        found = memo.get(clipped)
        if found is not None:
            return found
    if ctx is None:
        ctx = _signal_context(key, model)
    hasher = ctx.hasher   # one lookup for both fingerprints
    scanned = None if ctx.scanner is None else ctx.scanner.scan(clipped)
    if scanned is None:   # pure Python (the definition), or text that is not ASCII
        p = analyze(clipped)
        words = p.words
        out = PromptSignals(keyed_fingerprint(hasher, p.skeleton), keyed_fingerprint(hasher, p.wrapper),
                            area_of(words), capability_of(p.payload), _elicits(model, clipped, words),
                            grader_cues(words) >= 2)
    else:   # the same numbers from one compiled pass (native.py)
        skeleton, head_end, tail_start, area, capability, elicitation, grader = scanned
        skeleton_fp = keyed_fingerprint(hasher, skeleton)
        # a prompt too short to have a head and a tail is its own wrapper: one hash, not two
        wrapper_fp = skeleton_fp if head_end < 0 else \
            keyed_fingerprint(hasher, skeleton[:head_end] + " … " + skeleton[tail_start:])
        out = PromptSignals(skeleton_fp, wrapper_fp, area, capability,
                            model.probability_of_sum(elicitation) >= 0.5, grader)
    if memo is not None:
        memo.put(clipped, out)
    return out


class PromptParts(NamedTuple):
    prompt: str      # the last user turn
    system: str      # the first system prompt
    turns: int       # user, assistant and tool turns
    question: str    # the first user turn: the conversation's opening question


NO_PARTS = PromptParts("", "", 0, "")   # a content-less request's parts (compared by identity)


def event_front(**record):
    """The compiled ``prompt_parts`` (models/_eventfront.c) over this module's parts and the
    redaction markers; ``record`` (``linking``'s record class and cuts) adds ``link_record``.
    None where it is not built."""
    if native.EventFront is None:
        return None
    return native.EventFront(PromptParts, NO_PARTS, MARKERS, MARKER_MAX_CHARS, REDACTED_FIELD, **record)


_FRONT = event_front()
_compiled_parts = None   # _FRONT.parts while the compiled route is on


def _set_compiled(on: bool) -> None:
    global _compiled_parts
    _compiled_parts = _FRONT.parts if on and _FRONT is not None else None
    _latest[0] = None   # the signal context holds the route's scanner


native.on_switch(_set_compiled)


def prompt_parts(event: RequestEvent) -> PromptParts:
    """The one scan of ``messages`` that feature extraction and cross-account linking
    (``linking.link_inputs``) both read. A content-less event (redacted, or no content sent:
    ``schemas/redaction.py``) has none, so a redaction marker can never read as a prompt, a
    wrapper or a system prompt."""
    if _compiled_parts is not None:
        parts = _compiled_parts(event)   # None: a type the C does not expect; the Python decides
        if parts is not None:
            return parts
    if is_content_less(event):
        return NO_PARTS
    prompt = system = question = ""
    turns = 0
    for m in event.messages:
        role = m.role
        if role == "user":
            prompt = m.content
            if not question:
                question = prompt
            turns += 1
        elif role == "system":
            if not system:
                system = m.content
        else:
            turns += 1
    return PromptParts(prompt, system, turns, question)


def extract(event: RequestEvent, key: bytes, elicitation: ElicitationModel | None = None,
            parts: PromptParts | None = None) -> EventFeatures:
    """One request → :class:`EventFeatures` (reads the last and first user turns and the system
    prompt; ``elicitation``: the reasoning-elicitation model, default :func:`default_model`;
    ``parts``: the event's :func:`prompt_parts` if the caller has them already)."""
    if parts is None:
        parts = prompt_parts(event)
    if parts is NO_PARTS:
        # Redacted or no-content producers: the metadata signals only. The fingerprint is the
        # event's own, so it neither repeats nor fills a template (a constant would read as one
        # prompt sent again and again), and the capability areas are "other".
        f = _features(event, key, parts, elicitation)
        f.skeleton_fp = f.wrapper_fp = fingerprint(key, event.event_id)
        f.area, f.capability = AREA_OTHER, CAPABILITY_OTHER
        f.reasoning, f.grader, f.fresh, f.content_less = False, False, False, True
        return f
    return _features(event, key, parts, elicitation)


def _features(event: RequestEvent, key: bytes, parts: PromptParts,
              elicitation: ElicitationModel | None) -> EventFeatures:
    prompt, system, turns, question = parts
    params = event.params
    max_tokens = params.get("max_tokens") or 0
    bias = params.get("logit_bias")
    usage = event.usage
    model = elicitation or default_model()
    sig = prompt_signals(prompt, key, model, ctx=_signal_context(key, model))
    # the area of a conversation is its opening question's, whatever the follow-ups ask
    capability = sig.capability if question is prompt else _opening_capability(question, model)
    elicits = sig.elicits or (bool(system) and model.is_elicitation_memo(system))
    output_tokens = usage.get("output_tokens") or 0
    ask = unrelated_ask(prompt) if len(prompt) >= MIN_PASTE_PROMPT else None   # most prompts: no call
    return EventFeatures(
        event.ts_ms,
        event.event_id,
        sig.skeleton_fp,
        sig.wrapper_fp,
        sig.area,
        elicits and not 0 < max_tokens < REASONING_MIN_TOKENS,
        sig.grader,
        bool(params.get("logprobs")) and (params.get("top_logprobs") or 0) >= 1 and 0 < max_tokens <= 5,
        len(bias) if bias else 0,
        max_tokens >= LONG_OUTPUT_TOKENS,
        event.finish_reason == "length",
        usage.get("input_tokens") or 0,
        output_tokens,
        event.status not in (None, "ok"),
        event.model,
        turns <= 1 and not system,
        event.access_tier,
        event.account_created_ms,
        capability,
        output_tokens >= LONG_ANSWER_TOKENS,
        0 < max_tokens <= 256 and output_tokens < SHORT_ANSWER_TOKENS,
        event.user_id,
        unrelated_ask=(fingerprint(key, ask) or 1) if ask is not None else 0,
    )
