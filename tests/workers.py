"""Real worker processes for integration tests: the shared helper of streams/processes.py,
with ``DG_DEV=1`` unless a test says otherwise (test workers may use the development
fingerprint key, which a real worker refuses)."""
from distillguard.streams import processes


class WorkerProcess(processes.WorkerProcess):
    def __init__(self, env, log_path, *args, **extra_env):
        super().__init__({"DG_DEV": "1", **env}, log_path, *args, **extra_env)


wait_all = processes.wait_all
