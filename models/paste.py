"""Pasted content and the ask next to it: is the question about what was pasted?

A transformation product (explain this article, analyse these reviews, answer from this document)
pastes content and asks about it: either a fixed instruction the product sends every time
("summarise the text above"), or a question that refers to the passage (its names, its terms).
An extractor that pads each question with unrelated pasted text, so that its requests get the
transformation shape (long input, bounded answers: ``workload_shape.py``), asks a question that
is neither: a new question every time, whose words are not in the passage above it.

``split_ask`` finds the ask: a short last (or else first) paragraph beside a long rest.
``unrelated_ask`` returns it when few of its content words occur in the paste, so the caller can
fingerprint it; whether it repeats (a product's fixed instruction) is per-account state
(``state.AccountState``, ring of recent asks). Word overlap, not vocabulary lists: no language's
phrasing is keyed on, only ASCII words of 4+ letters are compared (other scripts: no verdict).

>>> paste = "The council approved the new bridge over the river Avon on Monday. " * 12
>>> unrelated_ask(paste + "\\n\\nWhy did the council approve the bridge over the Avon?")
>>> unrelated_ask(paste + "\\n\\nQuestion: How many marbles does Janet have left after giving seven away?")
'Question: How many marbles does Janet have left after giving seven away?'
>>> unrelated_ask("What is 2+2?") is None     # no paste
True
"""
from __future__ import annotations

ASK_MAX_CHARS = 400     # an ask longer than this is content, not a question about content
PASTE_MIN_CHARS = 400   # ...and a paste shorter than this (and than 3x the ask) is no paste
PASTE_SCAN_CHARS = 6000  # overlap is looked up in the paste's first this-many characters (bounded cost)
MIN_CONTENT_WORDS = 4   # an ask with fewer content words says too little to judge
UNRELATED_OVERLAP = 0.2  # share of the ask's content words found in the paste, below which it is unrelated
_MIN_WORD = 4           # content words: 4+ letters (skips most function words without a word list)
MIN_PROMPT_CHARS = PASTE_MIN_CHARS + 3   # a shorter prompt has no room for a paste, a blank line and an ask
_ASCII_WORDS = str.maketrans({i: chr(i).lower() if chr(i).isalpha() else " " for i in range(128)})


def split_ask(text: str) -> tuple[str, str] | None:
    """(ask, paste): a short last paragraph after a long paste, else a short first paragraph
    before one; None when the prompt has no such shape."""
    if len(text) < MIN_PROMPT_CHARS:   # most prompts
        return None
    cut = text.rfind("\n\n")
    if cut < 0:
        return None
    ask, paste = text[cut + 2:].strip(), text[:cut]
    if _is_ask(ask, paste):
        return ask, paste
    cut = text.find("\n\n")
    ask, paste = text[:cut].strip(), text[cut + 2:]
    if _is_ask(ask, paste):
        return ask, paste
    return None


def _is_ask(ask: str, paste: str) -> bool:
    return 0 < len(ask) <= ASK_MAX_CHARS and len(paste) >= max(PASTE_MIN_CHARS, 3 * len(ask))


def unrelated_ask(text: str) -> str | None:
    """The ask of ``text`` if it is unrelated to the paste beside it (else None)."""
    parts = split_ask(text)
    if parts is None:
        return None
    ask, paste = parts
    if not ask.isascii():
        return None
    content = {w for w in ask.translate(_ASCII_WORDS).split() if len(w) >= _MIN_WORD}
    if len(content) < MIN_CONTENT_WORDS:
        return None
    scanned = paste[:PASTE_SCAN_CHARS].lower()
    related = UNRELATED_OVERLAP * len(content)   # this many words found in the paste: related
    found = 0
    for w in content:   # a product's ask is related: the search stops at its first few words
        if w in scanned:
            found += 1
            if found >= related:
                return None
    return ask
