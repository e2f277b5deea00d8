"""Learned reasoning-elicitation classifier: does this text ask the model to write out its reasoning?

Wherever it sits: the detector asks it about the last user turn (which is the follow-up in a
multi-turn harvest) and about the system prompt. It replaces one hand-written English cue list
with River's multinomial naive Bayes over the distinct words of the text (and character bigrams of CJK
runs, which have no spaces), trained at start-up from labelled phrase *styles* shipped in
``models/data/elicitation_phrases.json`` (imperative, show-work, formats, system prompts,
follow-ups, agent scratchpads, paraphrases, 16 non-English languages; negatives: ordinary requests,
product system prompts, other-language questions) and from prompts of the bundled corpus as
neutral payload. Each phrase is also trained inside a corpus prompt, so that the payload's words
learn to weigh nothing.

Training is deterministic (fixed order and seed); scoring is a sum of log-likelihood ratios over the n-grams the
model has weights for, so a prompt costs a few microseconds. ``ElicitationModel.trained
(exclude_styles=...)`` trains without some styles: the evaluation's leave-one-family-out runs and
``tests/test_elicitation.py`` measure styles the model never saw.

>>> m = default_model()
>>> m.is_elicitation("What is the capital of France?")
False
>>> m.is_elicitation("Walk me through your reasoning before you answer")
True
"""
from __future__ import annotations

import gzip
import math
import random
import re
from functools import lru_cache
from pathlib import Path

import orjson

from .memo import Memo
from .text import clip, tokens

DATA = Path(__file__).resolve().parent / "data" / "elicitation_phrases.json"
CORPUS = Path(__file__).resolve().parent / "simulation" / "data" / "prompts.jsonl.gz"
CORPUS_SAMPLE = 400        # neutral payloads drawn from the corpus
SEED = 12
ALPHA = 0.5                # Laplace smoothing of the word counts
BIAS = -4.0                # log-odds offset: a prompt needs several elicitation words to count
MIN_WEIGHT = 1.0           # words whose ratio is weaker carry no evidence (and cost no time)
THRESHOLD = 0.5
WEIGHT_SCALE = 10_000      # weights are rounded to 4 decimals (``trained``)
_CACHE_MAX = 4096          # system prompts and follow-ups repeat: memo of their verdicts (bounded)

_WORD = re.compile(r"\w+")
_DIGITS = re.compile(r"[0-9]+")


_CJK = re.compile("[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff]")   # CJK, kana, hangul: no spaces between words


def ngrams(text: str) -> frozenset[str]:
    """Distinct lower-case words of the clipped text (digits masked to 0, as ``text.analyze``);
    runs of CJK characters, which have no spaces, as character bigrams.

    >>> sorted(ngrams("Think step by step, 12 times"))
    ['0', 'by', 'step', 'think', 'times']
    >>> sorted(ngrams("请思考"))
    ['思考', '请思']
    """
    text = clip(text)
    if text.isascii():
        return frozenset(tokens(text))
    words = []
    for w in _WORD.findall(_DIGITS.sub("0", text.lower())):
        if len(w) > 1 and _CJK.search(w):
            words.extend(w[i:i + 2] for i in range(len(w) - 1))
        else:
            words.append(w)
    return frozenset(words)


def load_phrases(path: Path = DATA) -> dict:
    return orjson.loads(path.read_bytes())


def _corpus_sample(n: int) -> list[str]:
    with gzip.open(CORPUS, "rb") as fh:
        rows = [orjson.loads(line)["text"] for line in fh if line.strip()]
    rng = random.Random(SEED)
    return rng.sample(rows, min(n, len(rows)))


class ElicitationModel:
    """Per-word log-likelihood ratios of a trained naive Bayes model, summed over a text's words."""

    __slots__ = ("weights", "vocabulary", "intercept", "styles", "_memo", "scaled_weights")

    def __init__(self, weights: dict[str, float], intercept: float, styles: tuple[str, ...]):
        self.weights = weights
        # in 1/10,000 (``trained`` rounds weights to 4 decimals; finer ones are rounded here): integer
        # sums are exact, so P does not depend on the order a text's words are added in (set order
        # varies with the hash seed, and a stream must agree with a replay in another process)
        self.scaled_weights = {g: round(w * WEIGHT_SCALE) for g, w in weights.items()}
        self.vocabulary = frozenset(weights)
        self.intercept = intercept
        self.styles = styles              # positive styles it was trained on
        # system prompts and canned follow-ups repeat: verdicts by clipped text, bounded (LRU)
        self._memo = Memo("elicitation.verdicts", _CACHE_MAX)

    @classmethod
    def trained(cls, exclude_styles=(), phrases: dict | None = None) -> ElicitationModel:
        """Train River's multinomial naive Bayes on every shipped style except ``exclude_styles``;
        keep its per-word log-likelihood ratios as the weights."""
        from river import naive_bayes
        doc = phrases or load_phrases()
        excluded = set(exclude_styles)
        unknown = excluded - set(doc["positive"]) - set(doc["negative"])
        if unknown:
            raise ValueError(f"unknown elicitation style(s) {sorted(unknown)}; known: {sorted(doc['positive'])}")
        payloads = _corpus_sample(CORPUS_SAMPLE)
        rng = random.Random(SEED)
        nb = naive_bayes.MultinomialNB(alpha=ALPHA)
        # Every phrase alone and inside two corpus prompts (before and after), in both classes, and the
        # corpus prompts alone as negatives: payload words occur about as often in each class.
        for label, groups in ((True, doc["positive"]), (False, doc["negative"])):
            for style, texts in sorted(groups.items()):
                if style in excluded:
                    continue
                for t in texts:
                    for text in (t, t + "\n\n" + rng.choice(payloads), rng.choice(payloads) + "\n\n" + t):
                        nb.learn_one(dict.fromkeys(ngrams(text), 1), label)
        for p in payloads:
            nb.learn_one(dict.fromkeys(ngrams(p), 1), False)
        weights = {}
        for g in nb.feature_counts:
            w = math.log(nb.p_feature_given_class(g, True)) - math.log(nb.p_feature_given_class(g, False))
            if abs(w) > MIN_WEIGHT:
                weights[g] = round(w, 4)
        styles = tuple(s for s in sorted(doc["positive"]) if s not in excluded)
        return cls(weights, BIAS, styles)

    def probability_of(self, grams: frozenset) -> float:
        """P(elicitation) of a text's :func:`ngrams` (for ASCII text, ``text.analyze(...).words``
        are the same set, so the detector passes those and tokenises once)."""
        # C-level intersection and sum: only weighted words are looked up, and not in Python
        return self.probability_of_sum(sum(map(self.scaled_weights.__getitem__, grams & self.vocabulary)))

    def probability_of_sum(self, scaled: int) -> float:
        """P(elicitation) of a text whose words' ``scaled_weights`` add up to ``scaled`` (the
        compiled scanner, ``native.py``, sums them in one pass)."""
        z = self.intercept + scaled / WEIGHT_SCALE
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def probability(self, text: str) -> float:
        return self.probability_of(ngrams(text))

    def is_elicitation(self, text: str) -> bool:
        return bool(text) and self.probability(text) >= THRESHOLD

    def is_elicitation_memo(self, text: str) -> bool:
        """As :meth:`is_elicitation`, memoised by the clipped text (system prompts, canned follow-ups)."""
        return self._memo.get_or(clip(text), self.is_elicitation)


@lru_cache(maxsize=1)
def default_model() -> ElicitationModel:
    """The model trained on every shipped style (built once per process)."""
    return ElicitationModel.trained()
