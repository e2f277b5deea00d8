"""Where a worker's memory is: the process, the C allocator, Python's heap, the embedded ClickHouse.

The status page (``/distillguard/``, key ``memory``) shows :func:`process_memory`
next to the bounded structures' sizes (key ``bounds``, ``models.memo.Bounds``), so a
soak can tell a structure that fills from allocator fragmentation or from chDB:

* ``rss_mb``: resident set (``VmRSS``), split into anonymous and file-backed pages;
* ``malloc_in_use_mb`` / ``malloc_free_mb``: glibc ``mallinfo2`` -- bytes handed out
  by malloc (Python's large objects and arenas, chDB, librdkafka all allocate here) and
  bytes malloc holds free (fragmentation: RSS that no object uses);
* ``malloc_trimmed_mb``: what :func:`trim_malloc` (every ``TRIM_EVERY_S`` in a worker) gave
  back to the system so far: glibc returns freed memory in the middle of its heaps and in
  its per-thread arenas (chDB's and librdkafka's threads each get one) only when asked;
* ``python_blocks``: objects in Python's small-object allocator (``sys.getallocatedblocks``);
* with ``DG_TRACEMALLOC=1`` (slow, diagnosis only): Python's traced heap in total and
  the largest source files (``python_top_files_mb``);
* ``clickhouse``: the embedded ClickHouse's own accounting (``system.metrics``
  ``MemoryTracking`` and its caches), sampled by the sink thread that owns the store
  (:func:`clickhouse_memory`), so a page request never waits for an insert; and
  ``jemalloc_purged_mb``, what :func:`purge_clickhouse` (every ``TRIM_EVERY_S`` in the sink)
  gave back so far;
* ``sink_process``: the same figures of the sink's own process (``DG_SINK_PROCESS=1``).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys
import time
import tracemalloc
from pathlib import Path

from .settings import load_memory_settings

_MB = 1024 * 1024
TRIM_EVERY_S = 60.0   # seconds between trim_malloc calls in a worker
TRACE_TOP = 12     # source files listed under python_top_files_mb
TRACE_EVERY_S = 30.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _mallinfo2():
    """glibc's ``mallinfo2`` (2.33+), or None on another libc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    fn.restype = _MallInfo2
    return fn


_MALLINFO2 = _mallinfo2()


def _malloc_trim():
    """glibc's ``malloc_trim``, or None on another libc."""
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


_MALLOC_TRIM = _malloc_trim()
_TRIMMED = {"mb": 0.0}


def trim_malloc() -> float:
    """Give malloc's free pages back to the system (``malloc_trim(0)``: every arena, the
    middle of the heaps too, by ``madvise``); the MB it gave back:
    anonymous RSS before minus after (other threads allocate meanwhile: an estimate). Without
    it freed memory stays resident and RSS creeps with fragmentation."""
    if _MALLOC_TRIM is None:
        return 0.0
    released = _anon_released_by(lambda: _MALLOC_TRIM(0))
    _TRIMMED["mb"] += released
    return released


def _anon_released_by(call) -> float:
    """MB of anonymous RSS that ``call()`` gave back (before minus after: an estimate, since
    other threads allocate meanwhile)."""
    before = _status_kb("RssAnon").get("RssAnon", 0)
    call()
    return max(0, before - _status_kb("RssAnon").get("RssAnon", 0)) / 1024


def purge_clickhouse(store) -> float:
    """Make the embedded ClickHouse's allocator give its free pages back (``SYSTEM JEMALLOC
    PURGE``): chDB is built with jemalloc (``system.build_options`` ``USE_JEMALLOC``), whose
    pages neither ``mallinfo2`` nor ``malloc_trim`` reach, and which keeps freed ones resident
    (issue #18: the sink process's anonymous RSS climbed ~25 MB per 100k events while chDB's
    own ``MemoryTracking`` stayed at 18-37 MB). The MB it gave back (an estimate)."""
    return _anon_released_by(lambda: store.client.command("SYSTEM JEMALLOC PURGE"))


def start_tracing() -> bool:
    """Start tracemalloc if ``DG_TRACEMALLOC=1`` (one frame per allocation: by file is enough)."""
    if not load_memory_settings().tracemalloc:
        return False
    tracemalloc.start(1)
    return True


def _status_kb(*names: str) -> dict[str, int]:
    out = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in names:
                out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def process_memory(clickhouse: dict | None = None) -> dict:
    """The worker's memory by component (see the module docstring); ``clickhouse`` is the
    sink's latest :func:`clickhouse_memory` sample, if this worker runs the sink."""
    kb = _status_kb("VmRSS", "RssAnon", "RssFile")
    out: dict = {"rss_mb": round(kb.get("VmRSS", 0) / 1024, 1), "rss_anon_mb": round(kb.get("RssAnon", 0) / 1024, 1),
                 "rss_file_mb": round(kb.get("RssFile", 0) / 1024, 1)}
    if _MALLINFO2 is not None:
        m = _MALLINFO2()
        out["malloc_in_use_mb"] = round((m.uordblks + m.hblkhd) / _MB, 1)
        out["malloc_free_mb"] = round(m.fordblks / _MB, 1)
        out["malloc_trimmed_mb"] = round(_TRIMMED["mb"], 1)
    out["python_blocks"] = sys.getallocatedblocks()
    if tracemalloc.is_tracing():
        out["python_traced_mb"] = round(tracemalloc.get_traced_memory()[0] / _MB, 1)
        out["python_top_files_mb"] = _top_files()
    if clickhouse is not None:
        out["clickhouse"] = clickhouse
    return out


_TOP = {"at": -TRACE_EVERY_S, "files": {}}


def _top_files() -> dict[str, float]:
    """The largest source files of the traced heap, MB; a snapshot costs about a second per
    million blocks, so it is taken at most every TRACE_EVERY_S and reused in between."""
    now = time.monotonic()
    if now - _TOP["at"] >= TRACE_EVERY_S:
        stats = tracemalloc.take_snapshot().statistics("filename")[:TRACE_TOP]
        _TOP.update(at=now, files={_short(s.traceback[0].filename): round(s.size / _MB, 2) for s in stats})
    return _TOP["files"]


def _short(path: str) -> str:
    """A source path from its package on (site-packages/ or the repository)."""
    for marker in ("site-packages/", "distillguard/", "/wt/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


CLICKHOUSE_METRICS = ("MemoryTracking", "MarkCacheBytes", "PrimaryIndexCacheBytes", "UncompressedCacheBytes",
                      "QueryCacheBytes", "MMappedFileBytes")


def clickhouse_memory(store) -> dict:
    """The embedded ClickHouse's own memory accounting in MB (``system.metrics``): what its
    allocations tracker holds (``MemoryTracking``, all of it) and its caches."""
    names = ", ".join(f"'{m}'" for m in CLICKHOUSE_METRICS)
    rows = store.query(f"SELECT metric, value FROM system.metrics WHERE metric IN ({names})").result_rows
    return {metric: round(value / _MB, 1) for metric, value in sorted(rows)}
