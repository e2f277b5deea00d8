"""Detection core: plain Python, no Kafka, Faust or ClickHouse imports.

The stream workers (``distillguard.streams``) and ``distillguard replay`` both
drive the stages of ``pipeline.py``, so what a replay finds is what the stream finds.
"""
from .config import DetectorConfig, load_config
from .detector import AccountDetector, Detector
from .pipeline import Pipeline

__all__ = ["AccountDetector", "Detector", "DetectorConfig", "Pipeline", "load_config"]
