"""The text scores do not depend on the process's string-hash seed.

A prompt's words are a set, and set order follows ``PYTHONHASHSEED``, which differs between the
stream worker, a replay and a restarted worker. The capability area and the elicitation
probability are sums over those words; with integer weights the sums are exact, so every process
gets the same answers (float sums in set order could break a near-tie differently).
"""
import os
import subprocess
import sys

_SCRIPT = """
import hashlib
from distillguard.models.capability_space import capability_of
from distillguard.models.elicitation import default_model
from distillguard.models.simulation.corpus import load_corpus
from distillguard.models.text import analyze
model = default_model()
h = hashlib.sha256()
for row in load_corpus().rows[:3000]:
    p = analyze(row["text"])
    h.update(repr((capability_of(p.payload), capability_of(p.words), model.probability_of(p.words))).encode())
print(h.hexdigest())
"""


def _digest(seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_capability_and_elicitation_scores_are_the_same_under_any_hash_seed():
    assert _digest("1") == _digest("2")
