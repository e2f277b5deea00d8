"""Coarse capability areas from a keyword lexicon (16 hand-named areas).

(Formerly ``models/topics.py``: "topic" means a Kafka topic elsewhere in distillguard.) The
per-account detector uses the finer learned space of :mod:`.capability_space`; this lexicon
feeds the cross-account profile (``linking``, ``clusters``).

Extraction campaigns sweep every capability (maths, code, summarising,
classification, translation, QA, ...) while a real customer's traffic sits in
one or two. A lexicon is enough to tell the two apart: we need the *spread*
of an account's prompts over areas, not a perfect label for each prompt.
No model is downloaded; the table below is the whole model.

>>> from .text import analyze
>>> AREAS[area_of(analyze("def add(a, b):\\n    return a + b  # write a python function").words)]
'code'
>>> AREAS[area_of(analyze("Summarize the following article in one sentence.").words)]
'summarize'
>>> AREAS[area_of(analyze("hello there").words)]
'other'
"""
from __future__ import annotations


_LEXICON: dict[str, str] = {
    "math": "how many much total each calculate compute sum equation solve number numbers percent "
            "cost costs price dollars per minutes hours times twice half remaining average",
    "code": "def return function python code program class import algorithm implement array string "
            "list integer script javascript sql bug compile loop variable",
    "summarize": "summarize summary summarise tl dr headline article highlights brief gist condense",
    "sentiment": "sentiment review positive negative rating movie liked stars recommend opinion",
    "classify": "category categories classify topic label type belongs which following options choose",
    "qa": "question answer answers passage context according based read",
    "translate": "translate translation french german spanish english language chinese",
    "paraphrase": "paraphrase same meaning equivalent rephrase sentences sentence reword",
    "science": "energy cells plants water temperature heat species atoms light earth chemical physics biology",
    "reasoning": "therefore logical infer inference implies premise hypothesis entail entailment conclusion",
    "writing": "write story poem essay letter email blog title creative draft compose",
    "dialogue": "dialogue conversation said says person speaker chat talk",
    "knowledge": "who when where born capital country city president history war year famous",
    "business": "company product customer market sales business job resume interview plan",
    "advice": "should advice tips help best ways improve suggest recommendation how",
}

AREAS: tuple[str, ...] = tuple(_LEXICON) + ("other",)
OTHER = len(AREAS) - 1
_WORD_AREA: dict[str, int] = {}
for _index, _words in enumerate(_LEXICON.values()):
    for _w in _words.split():
        _WORD_AREA.setdefault(_w, _index)
_LEXICON_WORDS = frozenset(_WORD_AREA)


def area_of(words: frozenset) -> int:
    """Index into :data:`AREAS` of the area a prompt's distinct ``words`` are most about."""
    hits = words & _LEXICON_WORDS  # C-level intersection: only lexicon words reach the Python loop
    if not hits:
        return OTHER
    counts = [0] * OTHER
    for w in hits:
        counts[_WORD_AREA[w]] += 1
    # ties go to the lower index (list.index finds the first): set iteration order varies with
    # the process's string-hash seed, and a stream worker must agree with a replay
    return counts.index(max(counts))
