"""The compiled hot path: an optional, faster route to the same results as the Python code.

Five small C extensions, built by the install (``setup.py``): the text scanner
(``models/_textscan.c``, below), the per-account state update (``models/_statecore.c``,
``state.AccountState.learn_one``'s arithmetic on its packed arrays, identical bytes), the link
observer's per-account profile and loop and the linker (``models/_linkprofile.c``: ``linking._Profile``'s
values, ``LinkObserver.observe`` and ``Linker.process`` on the stages' own objects), the
request's front (``models/_eventfront.c``: ``features.prompt_parts`` and ``linking.link_record``)
and the request event's build from decoded JSON (``schemas/_eventcheck.c``: valid documents
only, the same ``RequestEvent``; every error is raised by the Python).

Prompts seen for the first time cost most of feature extraction: tokenising, the skeleton and
wrapper strings, and the lookups of each word in three tables (coarse lexicon, capability space,
elicitation weights). ``Scanner.scan`` does that in one C pass over an ASCII prompt and returns
the same numbers the Python code derives (``features.prompt_signals`` uses whichever is there;
``tests/test_native.py`` checks they agree on the corpus, the simulator's prompts and random text,
and that whole streams leave identical account states).

Where the extensions are missing (no C compiler at install), or ``set_enabled(False)`` was called
(``DG_NATIVE_TEXT=0``), ``scanner_for`` returns None, ``enabled()`` is False, and the pure Python
code runs. Non-ASCII text always takes the Python route (``scan`` returns None).

>>> s = scanner_for(default_model())
>>> s is None or s.scan("Solve: 12 apples + 7 pears")[0] == 'solve 0 apples 0 pears'
True
"""
from __future__ import annotations

from contextlib import contextmanager

from .capability_areas import OTHER as N_LEXICON_AREAS, _WORD_AREA
from .capability_space import N_CAPABILITIES, _INDEX
from .elicitation import ElicitationModel, default_model  # noqa: F401  (default_model: the doctest)
from .memo import Memo
from .text import _GRADE_WORDS, _SCALE_WORDS, WRAPPER_TOKENS
from distillguard.schemas import event as _event_schema

try:
    from ._linkprofile import (LinkerCore, Observer as LinkObserverCore, Profile as LinkProfile,
                               configure as configure_link_profile)
    from ._statecore import StateCore
    from ._textscan import Scanner
    from ._eventfront import Front as EventFront
except ImportError:   # not built (no C compiler at install): the pure-Python code gives the same results
    Scanner = StateCore = LinkProfile = LinkObserverCore = LinkerCore = configure_link_profile = EventFront = None

BUILT = Scanner is not None and EventFront is not None and _event_schema.CHECKER is not None
_enabled = BUILT
_SCANNERS = Memo("native.scanners", 4)   # elicitation model -> its scanner (a process has one, evaluation a few)
_SWITCHES: list = []   # modules' set_compiled(on): each keeps its compiled callables, or None


def on_switch(set_compiled) -> None:
    """Call ``set_compiled(on)`` now and whenever the route changes: a module that calls its
    compiled part per request keeps it in a global (None on the Python route) instead of asking
    ``enabled()`` each time."""
    _SWITCHES.append(set_compiled)
    set_compiled(_enabled)


def set_enabled(on: bool) -> None:
    """Use the compiled code (when built) or force the pure-Python code (``DG_NATIVE_TEXT=0``)."""
    global _enabled
    _enabled = bool(on) and BUILT
    for set_compiled in _SWITCHES:
        set_compiled(_enabled)


on_switch(_event_schema.set_compiled)   # schemas/ cannot import models/: registered from here


def enabled() -> bool:
    """Whether the compiled code runs (feature extraction's scanner, the state update, the link
    observer and linker, the event build)."""
    return _enabled


def route_name() -> str:
    """Which route runs the hot path, as the status page and the bench report it."""
    return "compiled" if enabled() else "pure Python"


@contextmanager
def python_route():
    """Run a block on the pure-Python route, then restore the route that was in use (the bench's
    same-run comparison, the equivalence tests)."""
    was = _enabled
    set_enabled(False)
    try:
        yield
    finally:
        set_enabled(was)


def word_table(model: ElicitationModel) -> dict[str, tuple]:
    """The union of the word tables the scanner reads, for ``model``'s elicitation weights:
    word -> (lexicon area or -1, capability votes, scaled elicitation weight, grade word, scale word)."""
    words = set(_WORD_AREA) | set(_INDEX) | set(model.scaled_weights) | _GRADE_WORDS | _SCALE_WORDS
    return {w: (_WORD_AREA.get(w, -1), _INDEX.get(w, ()), model.scaled_weights.get(w, 0),
                w in _GRADE_WORDS, w in _SCALE_WORDS) for w in sorted(words)}


def scanner_for(model: ElicitationModel):
    """The compiled scanner over ``model``'s tables, or None (not built, or disabled)."""
    if not _enabled:
        return None
    scanner = _SCANNERS.get(model)
    if scanner is None:
        scanner = Scanner(word_table(model), WRAPPER_TOKENS, N_LEXICON_AREAS, N_CAPABILITIES)
        _SCANNERS.put(model, scanner)
    return scanner


def scan(model: ElicitationModel, text: str):
    """``Scanner.scan`` of ``text`` over ``model``'s tables, or None where the Python code must
    run (not built, disabled, or text that is not ASCII)."""
    scanner = scanner_for(model)
    return None if scanner is None else scanner.scan(text)
