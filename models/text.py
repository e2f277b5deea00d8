"""Prompt text → compact, privacy-safe signals.

Nothing here keeps raw text: callers get keyed fingerprints (HMAC, so a
fingerprint cannot be reversed by hashing guesses without the key) and small
numbers. Text is cut to a head and a tail before any regex runs, which bounds
CPU per event whatever the prompt length (wrappers and instructions sit at the
start or the end of a prompt).

>>> skeleton("Solve: 12 apples + 7 pears = ?  Explain step by step.")
'solve: 0 apples + 0 pears = ? explain step by step.'
>>> reasoning_cues("Walk me through your reasoning before you answer")
3
>>> reasoning_cues("What is the capital of France?")
0
"""
from __future__ import annotations

import hashlib
import hmac
import re

HEAD_CHARS = 320
TAIL_CHARS = 200

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"\"[^\"\n]{1,200}\"|'[^'\n]{1,200}'|`[^`\n]{1,200}`")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z]+")


def clip(text: str) -> str:
    """Head and tail of ``text``: where prompt wrappers live, at bounded cost."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + " … " + text[-TAIL_CHARS:]


def skeleton(text: str) -> str:
    """The prompt's shape: lower case, numbers and short quoted spans masked,
    white space folded. Two prompts from one template share a skeleton more
    often than not; people rarely repeat one."""
    s = clip(text).lower()
    s = _QUOTED.sub("Q", s)
    s = _NUMBER.sub("0", s)
    return _SPACE.sub(" ", s).strip()


def wrapper_skeleton(text: str) -> str:
    """The first and last few words of the skeleton: the instruction wrapper
    around a payload (``<wrapper> {question} <wrapper>``), ignoring the payload."""
    words = skeleton(text).split(" ")
    if len(words) <= 12:
        return " ".join(words)
    return " ".join(words[:6]) + " … " + " ".join(words[-6:])


def fingerprint(key: bytes, text: str) -> int:
    """A keyed 63-bit fingerprint of ``text`` (HMAC-SHA256, truncated)."""
    digest = hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def words(text: str) -> list[str]:
    return _WORD.findall(clip(text).lower())


# Reasoning elicitation: a prompt that asks the model to write its reasoning
# out. Matched as co-occurring cue families, not as exact phrases, so that
# paraphrased wrappers ("lay out each step of your thinking") still count.
_REASON_NOUNS = frozenset("""reasoning reason reasons rationale thought thoughts thinking logic derivation
    justification steps step work working process chain explanation""".split())
_REASON_VERBS = frozenset("""explain show think walk detail justify derive outline describe write lay
    elaborate articulate reason break spell narrate verbalize verbalise""".split())
_REASON_SHAPE = frozenset("""step-by-step stepwise each every full complete entire intermediate before
    through out carefully thoroughly""".split())


def reasoning_cues(text: str) -> int:
    """How many of three cue families (reasoning nouns, elicitation verbs,
    'all the steps' qualifiers) the prompt uses: 2+ means it asks for the
    model's reasoning to be written out."""
    ws = set(words(text))
    hits = (not ws.isdisjoint(_REASON_NOUNS)) + (not ws.isdisjoint(_REASON_VERBS)) + (not ws.isdisjoint(_REASON_SHAPE))
    if "step" in ws and ("by" in ws or "each" in ws):
        hits = max(hits, 2)
    return hits


# Grader abuse: rubric / scoring prompts used to harvest judgements at scale.
_GRADE_WORDS = frozenset("""grade grading score scoring rate rating rubric evaluate evaluation assess
    judge marks points criteria""".split())
_SCALE = re.compile(r"\b(?:scale of|out of|from) \d+\b|\b\d+\s*(?:-|to)\s*\d+\b|\brubric\b")


def grader_cues(text: str) -> int:
    """Grading vocabulary plus a numeric scale or rubric: 2 means a grading prompt."""
    c = clip(text).lower()
    ws = set(_WORD.findall(c))
    return (len(ws & _GRADE_WORDS) >= 2) + bool(_SCALE.search(c))
