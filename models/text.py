"""Prompt text → compact, privacy-safe signals, in one pass.

Nothing here keeps raw text: callers get keyed fingerprints (keyed BLAKE2b, so a
fingerprint cannot be reversed by hashing guesses without the key) and small
numbers. Text is cut to a head and a tail before the single tokenising regex
runs, which bounds CPU per event whatever the prompt length (wrappers and
instructions sit at the start or the end of a prompt).

>>> p = analyze("Solve: 12 apples + 7 pears = ?  Explain step by step.")
>>> p.skeleton
'solve 0 apples 0 pears explain step by step'
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .memo import Memo

HEAD_CHARS = 200
TAIL_CHARS = 120
WRAPPER_TOKENS = 6

# Tokens are runs of ASCII letters and digits, lower-cased, each run of digits masked to one "0".
_TOKEN = re.compile(r"[a-z0-9]+")
# The same tokens for ASCII text (most prompts), 3x faster: one C translate pass maps letters to
# lower case, digits to "0" and everything else to a space; runs of "0" then collapse to one.
_ASCII_TOKENS = str.maketrans({i: chr(i).lower() if chr(i).isalpha() else "0" if chr(i).isdigit() else " "
                               for i in range(128)})
_ASCII_TOKEN_BYTES = bytes(c + 32 if 65 <= c <= 90 else c if 97 <= c <= 122 else 48 if 48 <= c <= 57 else 32
                           for c in range(256))
_ZEROS = re.compile(r"00+")
_ASCII_WORDS = str.maketrans({i: chr(i).lower() if chr(i).isalnum() else " " for i in range(128)})


def clip(text: str) -> str:
    """Head and tail of ``text``: where prompt wrappers live, at bounded cost (the joint is a
    plain space, so an ASCII prompt stays ASCII)."""
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + " " + text[-TAIL_CHARS:]


def tokens(text: str) -> list[str]:
    """Lower-cased ASCII word and number tokens of ``text``, numbers masked to ``0``.

    >>> tokens("Solve: 12 apples, 7 pears (x2)... Ünïcode ok")
    ['solve', '0', 'apples', '0', 'pears', 'x0', 'n', 'code', 'ok']
    """
    if not text.isascii():  # O(1) in CPython: a flag of the string
        # the same tokens as ``_TOKEN.findall(re.sub("[0-9]+", "0", text.lower()))``, 3x faster: only
        # ASCII letters and digits make tokens, so every other character may become a space ("?")
        text = text.lower().encode("ascii", "replace").translate(_ASCII_TOKEN_BYTES).decode("ascii")
    else:
        text = text.translate(_ASCII_TOKENS)
    if "00" in text:
        text = _ZEROS.sub("0", text)
    return text.split()


@dataclass(slots=True)
class Prompt:
    skeleton: str        # the prompt's shape: tokens with numbers masked
    wrapper: str         # first and last few tokens: the instruction wrapper around a payload
    words: frozenset     # distinct lower-case words
    # ``words`` but the wrapper's: a template's fixed words, repeated in every request, would pull
    # every payload into the template's capability area. A prompt no longer than a wrapper is all
    # question, so all its words count (else every short question fell into no area).
    payload: frozenset


def words(text: str) -> list[str]:
    """Lower-cased ASCII word and number tokens of ``text``, numbers kept (``tokens`` unmasked).

    >>> words("Rate it 1-10, Ünïcode")
    ['rate', 'it', '1', '10', 'n', 'code']
    """
    if not text.isascii():
        return _TOKEN.findall(text.lower())
    return text.translate(_ASCII_WORDS).split()


def analyze(text: str) -> Prompt:
    """Tokenise the clipped, lower-cased prompt once and derive every text signal from it.

    Two prompts from one template share a skeleton more often than not;
    people rarely repeat one. The wrapper ignores the payload in the middle
    (``<wrapper> {question} <wrapper>``)."""
    masked = tokens(clip(text))
    words = frozenset(masked)
    if len(masked) > 2 * WRAPPER_TOKENS:
        head, tail = masked[:WRAPPER_TOKENS], masked[-WRAPPER_TOKENS:]
        return Prompt(" ".join(masked), " ".join(head) + " … " + " ".join(tail), words, words.difference(head, tail))
    return Prompt(" ".join(masked), " ".join(masked), words, words)


_KEYED = Memo("text.keyed_hashers", 16)  # key -> keyed hasher, copied per use (skips the key block)


def fingerprint(key: bytes, text: str) -> int:
    """A keyed 63-bit fingerprint of ``text`` (keyed BLAKE2b, a MAC like HMAC but cheaper)."""
    return keyed_fingerprint(keyed_hasher(key), text)


def keyed_hasher(key: bytes):
    """The keyed BLAKE2b state of ``key`` (memoised): :func:`keyed_fingerprint` copies it."""
    base = _KEYED.get(key)
    if base is None:
        base = hashlib.blake2b(key=key[:64], digest_size=8)
        _KEYED.put(key, base)
    return base


def keyed_fingerprint(hasher, text: str) -> int:
    """``fingerprint`` with the key's hasher already at hand (several texts, one key)."""
    h = hasher.copy()
    h.update(text.encode("utf-8", "surrogatepass"))
    return int.from_bytes(h.digest(), "big") >> 1


# Grader abuse: rubric / scoring prompts used to harvest judgements at scale.
_GRADE_WORDS = frozenset("""grade grading score scoring rate rating rubric evaluate evaluation assess
    judge marks points criteria""".split())
_SCALE_WORDS = frozenset("scale rubric out criteria".split())


def grader_cues(words: frozenset) -> int:
    """Grading vocabulary (2+ words) and a scale or rubric: 2 means a grading prompt."""
    return (len(words & _GRADE_WORDS) >= 2) + (not words.isdisjoint(_SCALE_WORDS))
