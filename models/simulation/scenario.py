"""Scenario files (TOML) and the Simulation object."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Iterator

from .cohorts import KINDS, Ctx, Stream, expected_events
from .corpus import load_corpus
from .timing import HOUR

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


class ScenarioError(ValueError):
    """Unknown scenario name, unreadable file or invalid content."""


@dataclass
class Scenario:
    name: str
    path: str
    start_ms: int
    duration_ms: int
    models: list[str]
    model_weights: list[float]
    flagship: str
    new_model: str | None
    release_ms: int | None
    adoption: float
    reasoning_models: list[str]
    cohorts: dict[str, dict] = field(default_factory=dict)   # name -> cfg (with "kind")
    corpus_path: str | None = None
    description: str = ""

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms

    def kinds(self) -> set[str]:
        return {c["kind"] for c in self.cohorts.values()}

    def expected_events(self) -> dict[str, float]:
        """Planned requests per cohort (the time window may cut a few)."""
        return {n: expected_events(c["kind"], c) for n, c in self.cohorts.items()}


def available_scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    s = str(name_or_path)
    if s.endswith(".toml") or "/" in s or Path(s).is_file():
        path = Path(s)
    else:
        path = SCENARIO_DIR / f"{s}.toml"
        if not path.is_file():
            raise ScenarioError(f"unknown scenario {s!r} (bundled: {', '.join(available_scenarios())})")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ScenarioError(f"cannot read scenario {path}: {e}") from None
    return _parse(raw, path)


def _parse(raw: dict, path: Path) -> Scenario:
    def need(d, k, where):
        if k not in d:
            raise ScenarioError(f"{path}: missing {where}{k}")
        return d[k]
    start_ms = int(need(raw, "start_ms", ""))
    dur_ms = int(float(need(raw, "duration_h", "")) * HOUR)
    m = raw.get("models", {})
    models = list(m.get("available", ["atlas-2", "atlas-2-mini", "atlas-2-code"]))
    weights = list(m.get("weights", [1.0] * len(models)))
    if len(weights) != len(models):
        raise ScenarioError(f"{path}: models.weights must match models.available")
    new_model = m.get("new_release")
    rel = m.get("release_offset_h")
    release_ms = start_ms + int(float(rel) * HOUR) if new_model and rel is not None else None
    if release_ms is not None and not (start_ms < release_ms < start_ms + dur_ms):
        raise ScenarioError(f"{path}: models.release_offset_h lies outside the scenario window")
    cohorts = raw.get("cohorts", {})
    if not cohorts:
        raise ScenarioError(f"{path}: no [cohorts.*] sections")
    for cname, cfg in cohorts.items():
        kind = cfg.get("kind")
        if kind not in KINDS:
            raise ScenarioError(f"{path}: cohort {cname!r} has unknown kind {kind!r} "
                                f"(known: {', '.join(sorted(KINDS))})")
    return Scenario(
        name=str(raw.get("name", path.stem)), path=str(path), start_ms=start_ms,
        duration_ms=dur_ms, models=models, model_weights=weights,
        flagship=str(m.get("flagship", models[0])), new_model=new_model, release_ms=release_ms,
        adoption=float(m.get("new_model_adoption", 0.1)),
        reasoning_models=list(m.get("reasoning", [])), cohorts=dict(cohorts),
        corpus_path=raw.get("corpus"), description=str(raw.get("description", "")))


class Simulation:
    """Labelled traffic of one scenario and seed.

    ``labels`` is filled at construction; ``events()`` can be called several
    times and always yields the same sequence.
    """

    def __init__(self, scenario: Scenario, seed: int = 1):
        self.scenario = scenario
        self.seed = int(seed)
        corpus = load_corpus(scenario.corpus_path)
        self.ctx = Ctx(seed=self.seed, start_ms=scenario.start_ms, end_ms=scenario.end_ms,
                       corpus=corpus, models=scenario.models, model_weights=scenario.model_weights,
                       new_model=scenario.new_model, release_ms=scenario.release_ms,
                       adoption=scenario.adoption,
                       reasoning_models=frozenset(scenario.reasoning_models),
                       flagship=scenario.flagship)
        self.streams: list[Stream] = []
        for cname, cfg in scenario.cohorts.items():
            try:
                self.streams.extend(KINDS[cfg["kind"]](self.ctx, cname, cfg))
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise ScenarioError(f"{scenario.path}: cohort {cname!r}: {e}") from None
        self.labels: dict[str, dict] = {}
        self.accounts = {}
        for st in self.streams:
            for acc in st.accounts:
                if acc.account_id in self.labels:      # 48-bit ids: practically never
                    raise ScenarioError(f"duplicate account id {acc.account_id}")
                self.accounts[acc.account_id] = acc
                self.labels[acc.account_id] = {
                    "label": acc.label, "cohort": acc.cohort, "kind": acc.kind,
                    "first_attack_ts_ms": acc.first_attack_ts_ms if acc.label == "attack" else None,
                }
                if acc.extra.get("extracting_users"):   # the end users an alert should name
                    self.labels[acc.account_id]["end_user_ids"] = sorted(acc.extra["extracting_users"])

    def events(self) -> Iterator[dict]:
        """All request events in non-decreasing ``ts_ms`` (ties: stream order).

        Equivalent to ``heapq.merge`` of the per-account streams, but merged a
        time slice at a time: each stream is drained up to the slice end and
        the slice is sorted (stable).  Far fewer generator switches than a
        heap merge; memory stays bounded by one slice of events.
        """
        return self._sliced_merge(self.SLICE_MS)

    SLICE_MS = 30 * 60_000

    def _sliced_merge(self, slice_ms: int) -> Iterator[dict]:
        key = itemgetter("ts_ms")
        live = []
        for st in self.streams:
            it = st.factory()
            ev = next(it, None)
            if ev is not None:
                live.append([ev, it])
        if not live:
            return
        t_hi = min(s[0]["ts_ms"] for s in live)
        while live:
            t_hi += slice_ms
            batch: list[dict] = []
            add = batch.append
            done = False
            for s in live:
                ev = s[0]
                if ev["ts_ms"] >= t_hi:
                    continue
                it = s[1]
                while ev is not None and ev["ts_ms"] < t_hi:
                    add(ev)
                    ev = next(it, None)
                s[0] = ev
                if ev is None:
                    done = True
            if done:
                live = [s for s in live if s[0] is not None]
            if batch:
                batch.sort(key=key)
                yield from batch
            elif live:        # skip empty stretches
                nxt = min(s[0]["ts_ms"] for s in live)
                t_hi = max(t_hi, nxt - nxt % slice_ms)

    def accounts_per_cohort(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lab in self.labels.values():
            out[lab["cohort"]] = out.get(lab["cohort"], 0) + 1
        return out


def simulate(scenario: Scenario | str, seed: int = 1) -> Simulation:
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    return Simulation(scenario, seed)
