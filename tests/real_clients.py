"""Records captured from real producers (``shared/data/real-clients``, see its README), mapped
the way the product maps them, and the table of contract fields that arrive per producer.

``python -m tests.real_clients`` prints the table (Markdown) for the issue's closing note.
"""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from distillguard.schemas import BadEvent
from distillguard.schemas.adapter_stream import StreamAdapter

REPO = Path(__file__).resolve().parent.parent
# CI lays shared/ beside the clone; a worktree of /work/wt/<name> has it two levels up; the copy in
# tests/fixtures is the fallback (none is needed while one of the others is there)
_CANDIDATES = (REPO.parent / "shared" / "data" / "real-clients",
               REPO.parent.parent / "shared" / "data" / "real-clients",
               REPO / "tests" / "fixtures" / "real-clients")

# producer -> (source, capture files, in the order a receiver would see them)
PRODUCERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "LiteLLM SDK": ("litellm", ("litellm/ll_sdk.jsonl",)),
    "LiteLLM SDK, message logging off": ("litellm", ("litellm/ll_redact.jsonl",)),
    "LiteLLM proxy": ("litellm", ("litellm/ll_proxy.jsonl",)),
    "openai-v2, content on spans": ("otel", ("otel/exp_span.traces.jsonl",)),
    "openai-v2, content in log events": ("otel", ("otel/exp_event.traces.jsonl", "otel/exp_event.logs.jsonl")),
    "openai-v2, no content (spans only)": ("otel", ("otel/exp_event.traces.jsonl",)),
    "openai-v2, legacy mode": ("otel", ("otel/legacy2.traces.jsonl", "otel/legacy2.logs.jsonl")),
    "OpenLLMetry (traceloop)": ("otel", ("otel/tl.traces.jsonl",)),
}
FIELDS = ("event_id", "ts_ms", "account_id", "api_key_id", "user_id", "client_ip", "user_agent", "session_id",
          "model", "operation", "messages", "params.max_tokens", "params.temperature", "params.top_p", "params.n",
          "params.seed", "params.stream", "params.logprobs", "params.top_logprobs", "params.logit_bias",
          "params.tools_count", "usage.input_tokens", "usage.output_tokens", "usage.reasoning_tokens", "status",
          "latency_ms", "finish_reason", "content_redacted")


def captures_dir() -> Path | None:
    return next((p for p in _CANDIDATES if (p / "README.md").is_file()), None)


def adapt(producer: str) -> tuple[list[dict], list[BadEvent], Counter]:
    """(events, bad records, adapter counts) of one producer's captures, joined and deduplicated."""
    source, files = PRODUCERS[producer]
    root = captures_dir()
    adapter = StreamAdapter(source)
    items = []
    for name in files:
        for line in (root / name).read_bytes().splitlines():
            if line.strip():
                items += adapter.feed(line, now=0.0)
    items += adapter.flush()
    events = [i for i in items if not isinstance(i, BadEvent)]
    return events, [i for i in items if isinstance(i, BadEvent)], adapter.stats


def has(event: dict, name: str) -> bool:
    """Does the field arrive (non-empty) in this event?"""
    if name == "messages":
        return bool(event["messages"])
    if "." in name:
        outer, inner = name.split(".")
        return (event.get(outer) or {}).get(inner) is not None
    return event.get(name) not in (None, "", [], {})


def field_table() -> str:
    """Markdown: per producer, in how many of its mapped events each contract field arrives."""
    results = {p: adapt(p) for p in PRODUCERS}
    head = "| field | " + " | ".join(results) + " |"
    lines = [head, "|" + "---|" * (len(results) + 1)]
    for name in FIELDS:
        cells = []
        for events, _bad, _stats in results.values():
            n = sum(has(e, name) for e in events)
            cells.append(f"{n}/{len(events)}" if n else "–")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    lines.append("| records unmapped (DLQ) | " + " | ".join(str(len(b)) for _e, b, _s in results.values()) + " |")
    lines.append("| duplicates dropped | " + " | ".join(str(s["duplicate"]) for _e, _b, s in results.values()) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if captures_dir() is None:
        sys.exit("no real-client captures found (shared/data/real-clients)")
    print(field_table())
