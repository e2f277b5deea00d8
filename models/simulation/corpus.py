"""Bundled prompt corpus (data/prompts.jsonl.gz), indexed for the generators.

Rows: {"id", "text", "area", "source", "template"}. Areas are ``math``,
``code``, ``general``, ``apps:<app>`` and ``nlp:<dataset>``; the part before
the colon is the *family*.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import orjson

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_PATH = DATA_DIR / "prompts.jsonl.gz"


@dataclass
class Template:
    name: str
    area: str
    prefix: str
    suffix: str
    middles: list[str]


@dataclass
class Corpus:
    rows: list[dict]
    by_area: dict[str, list[str]] = field(default_factory=dict)
    by_family: dict[str, list[str]] = field(default_factory=dict)
    areas_by_family: dict[str, list[str]] = field(default_factory=dict)
    by_source: dict[str, list[str]] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    middles_by_area: dict[str, list[str]] = field(default_factory=dict)

    @property
    def areas(self) -> list[str]:
        return sorted(self.by_area)

    @property
    def families(self) -> list[str]:
        return sorted(self.by_family)


def family(area: str) -> str:
    return area.split(":", 1)[0]


def _build(rows: list[dict]) -> Corpus:
    c = Corpus(rows=rows)
    tmpl_rows: dict[str, list[dict]] = {}
    for r in rows:
        a = r["area"]
        c.by_area.setdefault(a, []).append(r["text"])
        c.by_family.setdefault(family(a), []).append(r["text"])
        c.by_source.setdefault(r["source"], []).append(r["text"])
        if r.get("template"):
            tmpl_rows.setdefault(r["template"], []).append(r)
    for fam in c.by_family:
        c.areas_by_family[fam] = sorted(a for a in c.by_area if family(a) == fam)
    # A PromptSource template is the text every row of it shares at the start
    # and the end; what lies between is the per-row input.
    for name, trs in sorted(tmpl_rows.items()):
        texts = [r["text"] for r in trs]
        prefix = os.path.commonprefix(texts)
        suffix = os.path.commonprefix([t[len(prefix):][::-1] for t in texts])[::-1]
        middles = [t[len(prefix): len(t) - len(suffix)] for t in texts]
        middles = [m for m in middles if m.strip()]
        area = trs[0]["area"]
        c.templates[name] = Template(name, area, prefix, suffix, middles)
        c.middles_by_area.setdefault(area, []).extend(middles)
    return c


@lru_cache(maxsize=4)
def load_corpus(path: str | None = None) -> Corpus:
    p = Path(path) if path else DEFAULT_PATH
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        rows = [orjson.loads(line) for line in f if line.strip()]
    return _build(rows)
