"""Detection core: plain Python, no Kafka, Faust or ClickHouse imports.

The stream workers (``distillguard.streams``) and ``distillguard replay`` both
run this code, so what a replay finds is what the stream finds.
"""
from .config import DetectorConfig, load_config
from .detector import Detector

__all__ = ["Detector", "DetectorConfig", "load_config"]
