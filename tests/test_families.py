"""Per-family tables and leave-one-family-out fitting (models/evaluation/families.py)."""
import doctest

from distillguard.models.evaluation import families
from distillguard.models.evaluation.families import family_table, fit_threshold, format_family_table
from distillguard.models.evaluation.metrics import AccountResult


def test_docstring_examples():
    assert doctest.testmod(families).failed == 0


def test_table_per_family_and_seed_and_lofo_cut_ignores_the_held_out_family():
    labels = {"a1": {"label": "attack", "cohort": "fast"}, "a2": {"label": "attack", "cohort": "slow"},
              "b1": {"label": "benign", "cohort": "casual"}, "b2": {"label": "benign", "cohort": "judge"}}
    runs = {1: (labels, {"a1": AccountResult(0.95, 10, 40, "critical"), "a2": AccountResult(0.55, 20, 300, "medium"),
                         "b1": AccountResult(0.1), "b2": AccountResult(0.3, None, None, "low")}),
            2: (labels, {"a1": AccountResult(0.9, 10, 60, "critical"), "a2": AccountResult(0.4),
                         "b1": AccountResult(0.0), "b2": AccountResult(0.2)})}
    table = family_table(runs)
    assert list(table) == ["fast", "slow", "casual", "judge"]
    assert table["fast"]["all"]["alerted"] == 2 and table["fast"]["all"]["requests_before_median"] == 50
    assert table["slow"]["seeds"][2]["alerted"] == 0
    # without "slow" the cut can rise to where "fast" is still caught; with it, it must stay low
    assert fit_threshold(list(runs.values()), exclude="slow", floor=0.5) > 0.5
    assert fit_threshold(list(runs.values()), exclude="fast", floor=0.5) == 0.5
    text = format_family_table(table, {"fast": {"cut": 0.7, "recall": 1.0}})
    assert "fast" in text and "2/2 (50)" in text
