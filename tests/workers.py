"""Real worker processes for integration tests: the shared helper of streams/processes.py."""
from distillguard.streams.processes import WorkerProcess  # noqa: F401
