"""A fine capability space: ~64 areas learned offline from the bundled corpus, shipped as a small
word table (``models/data/capability_space.json``); nothing is downloaded at run time.

The coarse lexicon (:mod:`.capability_areas`, 16 hand-named areas) cannot tell "a product that does
maths and code" from "a campaign that asks everything": both touch a handful of its areas. Here the
corpus (10k prompts: maths problems, code stubs, app instructions, ~35 NLP datasets under 294
templates) is clustered by spherical k-means over TF-IDF word vectors; each area keeps its 30
heaviest words. A prompt goes to the area whose words it shares most (weighted), or to ``OTHER``.
Elicitation words (those the elicitation classifier weighs as positive) and words in more than 20%
of prompts are left out, so a wrapper does not move a question to another area.

Areas are topics, not tasks: one task over topic-diverse content (science questions, news
summaries) spans many of them (the corpus's sciq questions fall into 14 effective areas, gsm8k-style
maths into 7), so a tutoring product over maths and science looked as broad as a sweep (17 effective
areas). ``TASK_OF`` groups the areas into ``N_TASKS`` task groups: areas are alike when the same
corpus datasets (one task each) land in them; average-linkage clustering of the areas' dataset
profiles. A sweep asks many tasks; that product asks two.

Build (deterministic; numpy, offline): ``python -m distillguard.models.capability_space build``
(areas, then task groups) or ``... groups`` (task groups of the shipped areas only).

>>> from .text import analyze
>>> a = capability_of(analyze("Natalia sold clips to 48 of her friends in April, and then she sold half "
...                           "as many clips in May. How many clips did she sell altogether?").words)
>>> 0 <= a < OTHER
True
>>> capability_of(analyze("zzz qqq").words) == OTHER
True
"""
from __future__ import annotations

import sys
from pathlib import Path

import orjson

DATA = Path(__file__).resolve().parent / "data" / "capability_space.json"
K = 64
TOP_WORDS = 30
MAX_DF = 0.2
MIN_DF = 3
SEED = 7
AREAS_PER_WORD = 3
TASK_GROUPS = 16
WEIGHT_SCALE = 10_000   # word weights are stored with 4 decimals (``build``): scaled, exact integers


def _load() -> tuple[int, dict[str, tuple[tuple[int, int], ...]], tuple[int, ...]]:
    doc = orjson.loads(DATA.read_bytes())
    index: dict[str, list[tuple[int, float]]] = {}
    for area, words in enumerate(doc["areas"]):
        for w, weight in words:
            index.setdefault(w, []).append((area, weight))
    # a word votes for its AREAS_PER_WORD strongest areas only: bounded work per word, same answers
    # area as all its areas for 91% of the corpus prompts
    n = len(doc["areas"])
    tasks = tuple(doc.get("tasks") or range(n))   # without groups each area is its own task
    if len(tasks) != n:
        raise ValueError(f"{DATA}: {len(tasks)} task groups for {n} areas; rebuild with `... groups`")
    # weights as integers (the table has 4 decimals): a prompt's sums are then exact, so they do
    # not depend on the order its words are added in (set order varies with the hash seed, and a
    # stream must agree with a replay in another process)
    return n, {w: tuple((area, round(weight * WEIGHT_SCALE))
                        for area, weight in sorted(v, key=lambda aw: (-aw[1], aw[0]))[:AREAS_PER_WORD])
               for w, v in index.items()}, tasks


N_CAPABILITIES, _INDEX, TASK_OF = _load()
OTHER = N_CAPABILITIES          # index of "no area matched"
N_SLOTS = N_CAPABILITIES + 1
N_TASKS = max(TASK_OF) + 1
_VOCAB = frozenset(_INDEX)


def capability_of(words: frozenset) -> int:
    """Area index (``OTHER`` if none) of a prompt's distinct words (``text.analyze(...).words``)."""
    hits = words & _VOCAB
    if not hits:
        return OTHER
    scores = [0] * N_CAPABILITIES
    for w in hits:
        for area, weight in _INDEX[w]:
            scores[area] += weight
    # ties go to the lower index (list.index finds the first)
    return scores.index(max(scores))


# ------------------------------------------------------------------ offline build

def build_tasks(out: Path = DATA, groups: int = TASK_GROUPS) -> dict:
    """Group the shipped areas into task groups and write them beside the areas (offline; numpy).
    An area's profile is the share of each corpus dataset (``apps:*`` counted as one) among the
    corpus prompts it receives; areas are merged by average-linkage on the cosine of their
    profiles until ``groups`` remain; group numbers follow their lowest area."""
    import numpy as np

    from .simulation.corpus import load_corpus
    from .text import analyze
    doc = orjson.loads(out.read_bytes())
    n = len(doc["areas"])
    rows = load_corpus().rows
    names = sorted({r["area"].split(":")[0] if r["area"].startswith("apps:") else r["area"] for r in rows})
    col = {d: j for j, d in enumerate(names)}
    m = np.zeros((n, len(names)))
    for r in rows:
        words = analyze(r["text"])
        area = capability_of(words.payload)   # as features.py reads it
        if area < n:
            m[area, col[r["area"].split(":")[0] if r["area"].startswith("apps:") else r["area"]]] += 1
    prof = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    sim = prof @ prof.T
    clusters = [[a] for a in range(n)]
    while len(clusters) > groups:
        _, x, y = max((float(sim[np.ix_(clusters[x], clusters[y])].mean()), x, y)
                      for x in range(len(clusters)) for y in range(x + 1, len(clusters)))
        clusters[x] += clusters.pop(y)
    clusters.sort(key=min)
    task = [0] * n
    for g, members in enumerate(clusters):
        for a in members:
            task[a] = g
    doc["tasks"] = task
    doc["about_tasks"] = ("Task group of each area: average-linkage (%d groups) on the cosine of the areas' "
                          "corpus-dataset profiles. Built by `python -m distillguard.models.capability_space "
                          "groups`." % groups)
    out.write_bytes(orjson.dumps(doc))
    return doc


def build(out: Path = DATA) -> dict:
    """Cluster the corpus and write the word table (run offline; needs numpy); task groups are
    built after the process reloads the new areas (``groups``)."""
    import numpy as np

    from .elicitation import default_model
    from .simulation.corpus import load_corpus
    from .text import analyze
    docs = [sorted(analyze(r["text"]).words) for r in load_corpus().rows]
    elicit = {w for w, v in default_model().weights.items() if v > 0}
    df: dict[str, int] = {}
    for d in docs:
        for w in d:
            df[w] = df.get(w, 0) + 1
    n = len(docs)
    vocab = sorted(w for w, c in df.items() if MIN_DF <= c <= MAX_DF * n and w not in elicit
                   and len(w) > 2 and not w.isdigit() and w != "0")
    col = {w: i for i, w in enumerate(vocab)}
    idf = np.array([np.log(n / df[w]) for w in vocab], dtype=np.float32)
    x = np.zeros((n, len(vocab)), dtype=np.float32)
    for i, d in enumerate(docs):
        for w in d:
            j = col.get(w)
            if j is not None:
                x[i, j] = idf[j]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    keep = norms[:, 0] > 0
    x = x[keep] / norms[keep]
    rng = np.random.default_rng(SEED)
    # k-means++ seeding on cosine distance, then spherical k-means
    centers = [x[rng.integers(len(x))]]
    for _ in range(K - 1):
        sim = np.max(x @ np.array(centers).T, axis=1)
        p = np.clip(1.0 - sim, 0, None) ** 2
        centers.append(x[rng.choice(len(x), p=p / p.sum())])
    c = np.array(centers)
    for _ in range(25):
        assign = np.argmax(x @ c.T, axis=1)
        for k in range(K):
            members = x[assign == k]
            if len(members):
                v = members.sum(axis=0)
                c[k] = v / (np.linalg.norm(v) or 1.0)
    areas = []
    for k in range(K):
        top = np.argsort(-c[k])[:TOP_WORDS]
        areas.append([[vocab[j], round(float(c[k, j]), 4)] for j in top if c[k, j] > 0])
    doc = {"about": "Capability areas: spherical k-means (k=%d) over TF-IDF words of the bundled corpus "
                    "(models/simulation/data); per area its %d heaviest words. Built by "
                    "`python -m distillguard.models.capability_space build`." % (K, TOP_WORDS),
           "areas": areas}
    out.write_bytes(orjson.dumps(doc))
    return doc


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        d = build()
        print(f"wrote {DATA} ({len(d['areas'])} areas); now run `... groups` for the task groups")
    elif sys.argv[1:] == ["groups"]:
        d = build_tasks()
        print(f"wrote {DATA} ({len(d['areas'])} areas in {max(d['tasks']) + 1} task groups)")
    else:
        print("usage: python -m distillguard.models.capability_space build|groups", file=sys.stderr)
        sys.exit(2)
