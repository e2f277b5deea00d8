"""Measuring instrument: detection metrics, literature baselines and the
side-by-side harness behind ``distillguard eval`` (plain Python + numpy/scipy).

    from distillguard.models.evaluation import Harness, default_baselines
    h = Harness(default_baselines(), labels)
    replay(lines, Pipeline(config, key), h.on_alert, on_event=h.on_event)
    metrics = h.evaluate()   # detector name -> cohorts / overall / sweep / auc / accounts
"""
from .baselines import (Baseline, HashedText, MmdBaseline, PradaBaseline, VolumeBaseline, default_baselines,
                        mmd2_unbiased, shapiro_w)
from .harness import DISTILLGUARD, Harness
from .metrics import AccountResult, evaluate_detector, percentile, roc_auc, threshold_sweep

__all__ = [
    "AccountResult", "Baseline", "DISTILLGUARD", "Harness", "HashedText", "MmdBaseline", "PradaBaseline",
    "VolumeBaseline", "default_baselines", "evaluate_detector", "mmd2_unbiased", "percentile", "roc_auc",
    "shapiro_w", "threshold_sweep",
]
