"""Cohorts of the ``evasive`` scenario: attackers one cheap step away from the
classic styles, and legitimate customers that look like extraction.

Attack kinds (label ``attack``):

* ``system_elicitation`` - reasoning elicitation lives in the system prompt, user turns are plain
  questions over every area;
* ``end_user_rotation`` - a genuine app (many end users, narrow areas) inside which a rotating set
  of end-user ids extracts (knob ``extract_share`` of the traffic);
* ``breadth_sweep`` - no reasoning phrasing at all: long "expert" answers over every area, a few
  hundred requests a day, often behind a generic system prompt;
* ``multi_turn_harvest`` - a question, then follow-up turns asking for the steps, the assumptions
  and harder variants;
* ``agent_sweep`` - a tool-using agent whose system prompt makes it think out loud, over every area;
* ``foreign_elicitation`` - reasoning elicitation written in other languages;
* ``padded_elicitation`` - ``system_elicitation`` that pastes a long unrelated passage (corpus
  articles, plots) above every question, so its requests look like a transformation product's
  (long input, question about it); written before the shape tempering was tuned.

Look-alike kinds (label ``benign``): ``llm_judge``, ``benchmark_lab``, ``tutoring_app``,
``agent_platform``, ``class_cluster``, ``launch_day``; and, written after the detector was tuned
to test whether it generalises (scenario ``variants``), ``explainer_app``, ``homework_helper``,
``review_analyst``: one or two tasks over topic-diverse content, reasoning asked in the system prompt;
and ``document_qa`` (long reading passages, questions about them), written after those three were
measured and before the shape tempering was tuned on them.

Every knob has a default; ``scenarios/evasive.toml`` documents them.
"""
from __future__ import annotations

import heapq
import math
import random
from typing import Iterator

from . import evasive_text as E
from . import text as T
from .cohorts import (HISTORY_CAP, Ctx, Emitter, Stream, SweepPicker, TopicPicker, _account_window,
                      _attack_accounts, _c, _fill, _hex, _pick, _pref_model, _range, _rf, _ri, _with_prelude,
                      benign_model, choose_areas, human_chat, new_identity, subnet24)
from .timing import DAY, HOUR, human_sessions, lognorm, steady

_TS = (lambda ev: ev["ts_ms"])


def _long_out(rng: random.Random, median: float | None = None) -> int:
    """Output tokens of an attack answer: median ~735 (lognormal), or ``median`` (knob answer_tokens)."""
    return int(lognorm(rng, 6.6 if median is None else math.log(median), 0.5))


def _spread_interval(ctx: Ctx, t0: int, n: int) -> float:
    """Seconds between requests so that ``n`` of them fill the rest of the window."""
    return max(1.0, (ctx.end_ms - t0) / 1000.0 / max(n, 1) * 0.9)


def _attack_stream(ctx: Ctx, name: str, kind: str, cfg: dict, body_fn, *, tier=("pro", "startup"),
                   age=(10, 300), default_volume=(600, 1500), default_iv=(2.0, 8.0), uas=None,
                   ip_kind="cloud") -> list[Stream]:
    """Single-account attack: ``body_fn(rng, kr, pick, knobs) -> (messages, params)`` per request."""
    srng = ctx.rng(name, "setup")
    answer = cfg.get("answer_tokens")     # knob: median answer length (default ~735 tokens)
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc, t0, pre_n, attack_t = _attack_accounts(ctx, name, kind, cfg, srng, tier=list(tier), age=age,
                                                    uas=uas or T.SDK_UAS, ip_kind=ip_kind)
        n = _ri(srng, _range(cfg, "volume", default_volume))
        knobs = {"kr": srng.randrange(1 << 30), "model": _pick(srng, cfg.get("models", [ctx.flagship])),
                 "iv": _rf(srng, _range(cfg, "interval_s", default_iv))}
        if cfg.get("spread"):      # "a few hundred a day": pace the volume over the whole window
            knobs["iv"] = _spread_interval(ctx, attack_t, n)

        def factory(acc=acc, i=i, t0=t0, pre_n=pre_n, attack_t=attack_t, n=n, knobs=knobs):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)
            kr = random.Random(knobs["kr"])
            state: dict = {}

            def attack():
                # knob areas: a narrow extraction (corpus areas) instead of a sweep over everything
                pick = TopicPicker(ctx.corpus, cfg["areas"], rng) if cfg.get("areas") else SweepPicker(ctx.corpus, rng)
                for ts in steady(rng, attack_t, ctx.end_ms, n, interval_s=knobs["iv"],
                                 jitter=float(cfg.get("jitter", 0.5))):
                    msgs, params, extra = body_fn(rng, kr, pick, state)
                    yield em.event(ts, knobs["model"], msgs, params, out_tokens=_long_out(rng, answer), **extra)
            return _with_prelude(ctx, em, rng, cfg, t0, pre_n, attack_t, attack())
        out.append(Stream([acc], factory))
    return out


def build_system_elicitation(ctx, name, cfg):
    def body(rng, kr, pick, st):
        if "sys" not in st:
            st["sys"] = kr.choice(E.SYSTEM_ELICITORS)
        params = {"temperature": kr.choice([0.0, 0.3, 0.7]), "max_tokens": kr.choice([4096, 8192])}
        return [{"role": "system", "content": st["sys"]}, {"role": "user", "content": pick()}], params, {}
    return _attack_stream(ctx, name, "system_elicitation", cfg, body)


def build_breadth_sweep(ctx, name, cfg):
    system_p = float(cfg.get("system_prompt_p", 0.6))

    def body(rng, kr, pick, st):
        if "sys" not in st:
            st["sys"] = kr.choice(["You are a helpful assistant.", "You are a knowledgeable expert.",
                                   "Answer accurately."]) if kr.random() < system_p else None
        style = _c(rng, E.EXPERT_STYLES)
        p = pick()
        content = p + ("\n\n" + style if style else "")
        msgs = ([{"role": "system", "content": st["sys"]}] if st["sys"] else []) + \
            [{"role": "user", "content": content}]
        return msgs, {"temperature": 0.7, "max_tokens": kr.choice([4096, 8192])}, {}
    cfg = dict(cfg)
    cfg.setdefault("spread", True)
    return _attack_stream(ctx, name, "breadth_sweep", cfg, body, default_volume=(300, 700),
                          tier=("pro", "pro", "startup"), age=(20, 600))


def build_foreign_elicitation(ctx, name, cfg):
    langs = cfg.get("languages")
    bank = [w for lang, w in E.FOREIGN_WRAPPERS if not langs or lang in langs]
    if not bank:
        raise ValueError(f"no foreign wrappers for languages {langs}")

    def body(rng, kr, pick, st):
        if "bank" not in st:   # each account sticks to a few wrappers of its languages
            st["bank"] = kr.sample(bank, min(len(bank), int(cfg.get("wrappers_per_account", 4))))
        return ([{"role": "user", "content": _fill(_c(rng, st["bank"]), pick())}],
                {"temperature": 0.3, "max_tokens": kr.choice([4096, 8192])}, {})
    return _attack_stream(ctx, name, "foreign_elicitation", cfg, body)


def build_padded_elicitation(ctx, name, cfg):
    pad_pool = cfg.get("padding_areas", ["nlp:cnn", "nlp:xsum", "nlp:duorc", "nlp:wiki"])
    pads = [p for a in pad_pool for p in ctx.corpus.by_area.get(a, [])]
    if not pads:
        raise ValueError(f"cohort {name!r}: no corpus text in padding_areas {pad_pool}")
    passages = _range(cfg, "padding_passages", (1, 2))
    question_first = bool(cfg.get("question_first", False))   # knob: the question above the padding

    def body(rng, kr, pick, st):
        if "sys" not in st:
            st["sys"] = kr.choice(E.SYSTEM_ELICITORS)
        pad = "\n\n".join(_c(rng, pads) for _ in range(_ri(rng, passages)))
        if question_first:
            content = pick().strip() + "\n\n" + _c(rng, E.PADDING_LEADS) + pad
        else:
            content = _c(rng, E.PADDING_LEADS) + pad + "\n\nQuestion: " + pick()
        params = {"temperature": kr.choice([0.0, 0.3, 0.7]), "max_tokens": kr.choice([4096, 8192])}
        return [{"role": "system", "content": st["sys"]}, {"role": "user", "content": content}], params, {}
    return _attack_stream(ctx, name, "padded_elicitation", cfg, body)


def build_agent_sweep(ctx, name, cfg):
    tools = _range(cfg, "tools_count", (3, 12))

    def body(rng, kr, pick, st):
        if "sys" not in st:
            st["sys"] = kr.choice(E.AGENT_SYSTEMS)
        msgs = [{"role": "system", "content": st["sys"]}, {"role": "user", "content": pick()}]
        for _ in range(rng.randint(0, 2)):   # earlier loop iterations of the same task
            msgs.append({"role": "assistant", "content": "Thought: I should look this up first. Action: search"})
            msgs.append({"role": "tool", "content": _c(rng, E.AGENT_TOOL_RESULTS)})
        params = {"temperature": 0.2, "max_tokens": kr.choice([4096, 8192]), "tools_count": _ri(rng, tools)}
        return msgs, params, {"tool": True}
    return _attack_stream(ctx, name, "agent_sweep", cfg, body)


def build_multi_turn_harvest(ctx, name, cfg):
    """Sessions: one sweep question, then follow-ups that pull out steps, assumptions, variants."""
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc, t0, pre_n, attack_t = _attack_accounts(ctx, name, "multi_turn_harvest", cfg, srng,
                                                    tier=["pro", "startup", "free"], age=(10, 400),
                                                    uas=T.SDK_UAS + T.BROWSER_UAS[:2])
        n = _ri(srng, _range(cfg, "volume", (600, 1500)))
        model = _pick(srng, cfg.get("models", [ctx.flagship]))
        follow = _range(cfg, "follow_ups", (2, 4))
        think = _rf(srng, _range(cfg, "think_s", (8, 40)))

        def factory(acc=acc, i=i, t0=t0, pre_n=pre_n, attack_t=attack_t, n=n, model=model, think=think):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)

            def attack():
                pick = SweepPicker(ctx.corpus, rng)
                hist: list[dict] = []
                sess = None
                turns = (follow[0] + 1, follow[1] + 1)
                first = True
                for ts, s, turn in human_sessions(rng, attack_t, ctx.end_ms, n, tz_h=acc.tz_h, profile="flat",
                                                  turns=turns, think_s=think, fill=0.9):
                    if first:
                        ts, first = attack_t, False
                    if turn == 0:
                        hist, sess = [], f"sess_{_hex(rng, 64)}"
                        content = pick()
                    else:
                        content = _c(rng, E.HARVEST_FOLLOW_UPS)
                    msgs = hist + [{"role": "user", "content": content}]
                    yield em.event(ts, model, msgs, {"temperature": 0.5, "max_tokens": 4096}, session_id=sess,
                                   out_tokens=_long_out(rng))
                    hist = (msgs + [{"role": "assistant", "content": _c(rng, T.REPLIES)}])[-HISTORY_CAP:]
            return _with_prelude(ctx, em, rng, cfg, t0, pre_n, attack_t, attack())
        out.append(Stream([acc], factory))
    return out


def build_end_user_rotation(ctx, name, cfg):
    """A real product's traffic; a rotating pool of its end-user ids runs a sweep inside it."""
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = new_identity(ctx, srng, name, "end_user_rotation", "attack", cfg,
                           tier_default=["startup", "pro"], age_days_default=(60, 700), ip_kind="cloud",
                           ua_bank=T.SDK_UAS, n_users=_range(cfg, "app_users", (150, 400)))
        areas = choose_areas(ctx, srng, _ri(srng, _range(cfg, "areas_per_account", (2, 3))))
        t0 = _account_window(ctx, srng, cfg)
        n_app = _ri(srng, _range(cfg, "volume", (1500, 3000)))
        share = _rf(srng, _range(cfg, "extract_share", (0.15, 0.25)))
        n_ex = int(n_app * share / (1 - share))
        pool = [f"u_{_hex(srng, 40)}" for _ in range(_ri(srng, _range(cfg, "extract_users", (15, 40))))]
        per_user = _range(cfg, "requests_per_user", (8, 30))
        ex_t = t0 + int(_rf(srng, _range(cfg, "extract_after_h", (1, 6))) * HOUR)
        ex_t = min(ex_t, ctx.end_ms - 6 * HOUR)
        acc.first_attack_ts_ms = ex_t
        acc.extra["extracting_users"] = pool
        system = srng.choice(T.DEV_SYSTEM[:5])
        elicit_p = float(cfg.get("elicit_p", 0.5))
        model = _pref_model(ctx, srng, cfg)

        def factory(acc=acc, i=i, areas=areas, t0=t0, n_app=n_app, n_ex=n_ex, pool=pool, ex_t=ex_t,
                    system=system, model=model):
            rng = ctx.rng(name, i, "events")
            erng = ctx.rng(name, i, "extract")
            em = Emitter(ctx, acc, rng)
            eem = Emitter(ctx, acc, erng)

            def app():
                return human_chat(ctx, em, rng, t0, ctx.end_ms, n_app, cfg={"turns": (1, 5), "think_s": (15, 90)},
                                  areas=areas, systems=[system], model_pref=model, profile="flat")

            def extract():
                pick = SweepPicker(ctx.corpus, erng)
                iv = _spread_interval(ctx, ex_t, n_ex)
                user, left = None, 0
                for ts in steady(erng, ex_t, ctx.end_ms, n_ex, interval_s=iv, jitter=0.9):
                    if left <= 0:
                        user, left = _c(erng, pool), _ri(erng, per_user)
                    left -= 1
                    p = pick()
                    if erng.random() < elicit_p:
                        w, before = T.paraphrased_wrapper(erng)
                        p = w + p if before else p + "\n\n" + w.rstrip()
                    msgs = [{"role": "system", "content": system}, {"role": "user", "content": p}]
                    yield eem.event(ts, model, msgs, {"temperature": 0.7, "max_tokens": 4096}, user_id=user,
                                    session_id=f"sess_{_hex(erng, 64)}", out_tokens=_long_out(erng))
            return heapq.merge(app(), extract(), key=_TS)
        out.append(Stream([acc], factory))
    return out


# ------------------------------------------------------------------ look-alikes

def _benign_account(ctx, srng, name, kind, cfg, *, tier, age, ip_kind="cloud", uas=None, users=(0, 0)):
    return new_identity(ctx, srng, name, kind, "benign", cfg, tier_default=tier, age_days_default=age,
                        ip_kind=ip_kind, ua_bank=uas or T.SDK_UAS, n_users=users)


def build_llm_judge(ctx, name, cfg):
    """Enterprise LLM-as-judge pipeline: rubric prompts over whatever its product answers, short JSON."""
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = _benign_account(ctx, srng, name, "llm_judge", cfg, tier=["enterprise"], age=(200, 1500))
        t0 = _account_window(ctx, srng, cfg)
        n = _ri(srng, _range(cfg, "volume", (2000, 5000)))
        iv = _rf(srng, _range(cfg, "interval_s", (0.5, 3.0)))
        system = srng.choice(E.JUDGE_SYSTEMS)
        rubric = srng.choice(E.JUDGE_RUBRICS)
        max_tok = _ri(srng, _range(cfg, "max_tokens", (32, 200)))

        def factory(acc=acc, i=i, t0=t0, n=n, iv=iv, system=system, rubric=rubric, max_tok=max_tok):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng, err_p=0.002)
            pick = SweepPicker(ctx.corpus, rng)
            for ts in steady(rng, t0, ctx.end_ms, n, interval_s=iv, jitter=0.4):
                body = f"{rubric}\n\nUser question:\n{pick()}\n\nCandidate reply:\n{_c(rng, T.REPLIES)}"
                yield em.event(ts, ctx.flagship, [{"role": "system", "content": system},
                                                  {"role": "user", "content": body}],
                               {"temperature": 0, "max_tokens": max_tok}, out_tokens=rng.randint(8, max_tok))
        out.append(Stream([acc], factory))
    return out


def build_benchmark_lab(ctx, name, cfg):
    """Public benchmark items, the same item sent to several models, temperature 0, step by step."""
    srng = ctx.rng(name, "setup")
    benches = cfg.get("benchmarks", ["gsm8k-test", "humaneval"])
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = _benign_account(ctx, srng, name, "benchmark_lab", cfg, tier=["enterprise", "education"],
                              age=(100, 1200), uas=T.EVAL_UAS)
        items: list[str] = []
        for b in benches:
            items += ctx.corpus.by_source.get(b, [])
        srng.shuffle(items)
        items = items[: _ri(srng, _range(cfg, "items", (300, 700)))]
        models = cfg.get("models") or ctx.models[:3]
        t0 = _account_window(ctx, srng, cfg)
        iv = _rf(srng, _range(cfg, "interval_s", (0.3, 1.5)))
        instr = srng.choice(T.EVAL_INSTRUCTIONS)

        def factory(acc=acc, i=i, items=items, models=models, t0=t0, iv=iv, instr=instr):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng, err_p=0.003)
            plan = [(item, m) for item in items for m in models]
            for ts, (item, m) in zip(steady(rng, t0, ctx.end_ms, len(plan), interval_s=iv), plan):
                body = _fill(instr, item) if "{p}" in instr else instr + item
                yield em.event(ts, m, [{"role": "user", "content": body}],
                               {"temperature": 0, "max_tokens": 1024, "seed": 1234},
                               out_tokens=int(rng.uniform(80, 500)))
        out.append(Stream([acc], factory))
    return out


def _product_sessions(ctx, em, rng, t0, n, *, users, pick, systems, model, follow_ups, tools=None,
                      profile="home", turns=(1, 5), think=40.0, max_tokens=1024) -> Iterator[dict]:
    """Sessions of a product with many end users (one user per session)."""
    hist: list[dict] = []
    sess = user = None
    system = None
    for ts, s, turn in human_sessions(rng, t0, ctx.end_ms, n, tz_h=em.acc.tz_h, profile=profile,
                                      turns=turns, think_s=think):
        if turn == 0:
            user, sess = _c(rng, users), f"sess_{_hex(rng, 64)}"
            system = _c(rng, systems)
            hist = [{"role": "system", "content": system}]
        content = _c(rng, follow_ups) if turn and rng.random() < 0.5 else pick()
        msgs = hist + [{"role": "user", "content": content}]
        params = {"temperature": 0.5, "max_tokens": max_tokens}
        if tools:
            params["tools_count"] = _ri(rng, tools)
            if rng.random() < 0.5:
                msgs.append({"role": "assistant", "content": "Calling the lookup tool."})
                msgs.append({"role": "tool", "content": _c(rng, E.AGENT_TOOL_RESULTS)})
        yield em.event(ts, benign_model(ctx, rng, ts, model), msgs, params, session_id=sess, user_id=user,
                       tool=bool(tools), out_tokens=int(lognorm(rng, 5.4, 0.6)))
        hist = (msgs + [{"role": "assistant", "content": _c(rng, T.REPLIES)}])
        if len(hist) > HISTORY_CAP:
            hist = [hist[0]] + hist[-(HISTORY_CAP - 1):]


def _product_kind(ctx, name, cfg, kind, *, tier, age, users, areas_fn, systems, follow_ups, tools=None,
                  profile="home", max_tokens=1024, content_fn=None):
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = _benign_account(ctx, srng, name, kind, cfg, tier=tier, age=age, users=users)
        areas = areas_fn(srng)
        t0 = _account_window(ctx, srng, cfg)
        n = _ri(srng, _range(cfg, "volume", (1500, 3000)))
        model = _pref_model(ctx, srng, cfg)

        def factory(acc=acc, i=i, areas=areas, t0=t0, n=n, model=model):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)
            pick = TopicPicker(ctx.corpus, areas, rng)
            if content_fn is not None:
                pick = (lambda base=pick: content_fn(rng, base()))
            return _product_sessions(ctx, em, rng, t0, n, users=acc.users, pick=pick, systems=systems,
                                     model=model, follow_ups=follow_ups, tools=tools, profile=profile,
                                     max_tokens=max_tokens)
        out.append(Stream([acc], factory))
    return out


def build_tutoring_app(ctx, name, cfg):
    return _product_kind(ctx, name, cfg, "tutoring_app", tier=["startup", "education"], age=(100, 900),
                         users=_range(cfg, "app_users", (100, 300)),
                         areas_fn=lambda r: ["math", "nlp:sciq", "nlp:qasc"][: r.randint(1, 3)],
                         systems=E.TUTOR_SYSTEMS, follow_ups=E.STUDENT_FOLLOW_UPS, profile="home",
                         max_tokens=2048)


def build_agent_platform(ctx, name, cfg):
    def areas(r):
        apps = sorted(a for a in ctx.corpus.by_area if a.startswith("apps:"))
        return r.sample(apps, 12) + ["code", "general"]
    return _product_kind(ctx, name, cfg, "agent_platform", tier=["enterprise", "startup"], age=(150, 1200),
                         users=_range(cfg, "app_users", (50, 200)), areas_fn=areas,
                         systems=E.AGENT_PLATFORM_SYSTEMS, follow_ups=T.FOLLOW_UPS,
                         tools=_range(cfg, "tools_count", (4, 15)), profile="office", max_tokens=2048)


def build_class_cluster(ctx, name, cfg):
    """A class: many new free accounts on one campus network, one assignment wrapper, one deadline."""
    srng = ctx.rng(name, "setup")
    out = []
    for c in range(int(cfg.get("classes", 1))):
        net = subnet24(srng, [128, 129, 130, 131, 137, 141, 152, 155, 171])
        wrapper = srng.choice(E.CLASS_WRAPPERS)
        area = srng.choice(["math", "code"])
        questions = srng.sample(ctx.corpus.by_area[area], int(cfg.get("questions", 15)))
        start = _account_window(ctx, srng, cfg)
        for a in range(_ri(srng, _range(cfg, "students", (25, 40)))):
            acc = _benign_account(ctx, srng, name, "class_cluster", cfg, tier=["free"], age=(0.0, 2.0),
                                  ip_kind="residential", uas=T.BROWSER_UAS)
            acc.ips = ["%s.%d" % (net, srng.randint(2, 254))]
            acc.payment_fingerprint = None
            acc.extra["class"] = c
            n = _ri(srng, _range(cfg, "volume", (15, 50)))
            t0 = start + int(srng.uniform(0, 8) * HOUR)

            def factory(acc=acc, a=a, n=n, t0=t0, c=c):
                rng = ctx.rng(name, c, a, "events")
                em = Emitter(ctx, acc, rng)
                hist: list[dict] = []
                for ts, s, turn in human_sessions(rng, t0, min(ctx.end_ms, t0 + DAY), n, tz_h=acc.tz_h,
                                                  profile="flat", turns=(1, 4), think_s=60.0):
                    if turn == 0:
                        hist = []
                        j = rng.randrange(len(questions))
                        content = wrapper.replace("{n}", str(j + 1)).replace("{p}", questions[j])
                    else:
                        content = _c(rng, E.STUDENT_FOLLOW_UPS)
                    msgs = hist + [{"role": "user", "content": content}]
                    yield em.event(ts, ctx.models[1], msgs, {"temperature": 0.7}, out_tokens=int(lognorm(rng, 5.6, 0.5)))
                    hist = (msgs + [{"role": "assistant", "content": _c(rng, T.REPLIES)}])[-HISTORY_CAP:]
            out.append(Stream([acc], factory))
    return out


def build_launch_day(ctx, name, cfg):
    """Developers who spend launch day trying the new model on everything they can think of."""
    if not ctx.new_model or ctx.release_ms is None:
        raise ValueError(f"cohort {name!r} (launch_day) needs [models] new_release and release_offset_h")
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = _benign_account(ctx, srng, name, "launch_day", cfg, tier=["pro", "startup", "pro"], age=(30, 1200),
                              users=(0, 3))
        t0 = _account_window(ctx, srng, cfg)
        pre_n = _ri(srng, _range(cfg, "prelude", (40, 150)))
        n = _ri(srng, _range(cfg, "volume", (60, 250)))
        try_t = min(max(ctx.release_ms + int(_rf(srng, _range(cfg, "delay_h", (0.0, 4.0))) * HOUR), t0 + 60_000),
                    ctx.end_ms - HOUR)
        areas = choose_areas(ctx, srng, 2, must=["code"])
        extra_areas = choose_areas(ctx, srng, _ri(srng, _range(cfg, "curiosity_areas", (3, 6))))
        model = _pref_model(ctx, srng, cfg)

        def factory(acc=acc, i=i, t0=t0, pre_n=pre_n, n=n, try_t=try_t, areas=areas, extra=extra_areas,
                    model=model):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)
            yield from human_chat(ctx, em, rng, t0, try_t, pre_n, cfg={}, areas=areas, systems=T.DEV_SYSTEM,
                                  model_pref=model, profile="flat", tools=(0, 4))
            pick = TopicPicker(ctx.corpus, areas + extra, rng)
            for ts, s, turn in human_sessions(rng, try_t, min(ctx.end_ms, try_t + 8 * HOUR), n, tz_h=acc.tz_h,
                                              profile="flat", turns=(1, 4), think_s=30.0):
                body = _fill(_c(rng, E.LAUNCH_DAY_PROMPTS), pick())
                yield em.event(ts, ctx.new_model if rng.random() < 0.85 else model,
                               [{"role": "user", "content": body}],
                               {"temperature": 0.7, "max_tokens": rng.choice([1024, 2048, 4096])},
                               out_tokens=int(lognorm(rng, 5.8, 0.7)))
        out.append(Stream([acc], factory))
    return out


def build_explainer_app(ctx, name, cfg):
    """A reading product: users paste articles, dialogues or passages (topic-diverse) and get a
    reasoned explanation back. One or two tasks; many topics."""
    pool = ["nlp:xsum", "nlp:cnn", "nlp:gigaword", "nlp:wiki", "nlp:dream", "nlp:samsum"]
    return _product_kind(ctx, name, cfg, "explainer_app", tier=["startup", "pro", "enterprise"], age=(60, 900),
                         users=_range(cfg, "app_users", (100, 400)),
                         areas_fn=lambda r: r.sample(pool, r.randint(2, 3)),
                         systems=E.EXPLAINER_SYSTEMS, follow_ups=E.EXPLAINER_FOLLOW_UPS, profile="office",
                         max_tokens=2048)


def build_homework_helper(ctx, name, cfg):
    """A programming-and-maths homework product whose system prompt asks for worked steps."""
    return _product_kind(ctx, name, cfg, "homework_helper", tier=["education", "startup"], age=(60, 900),
                         users=_range(cfg, "app_users", (100, 400)), areas_fn=lambda r: ["code", "math"],
                         systems=E.HOMEWORK_SYSTEMS, follow_ups=E.STUDENT_FOLLOW_UPS, profile="home",
                         max_tokens=2048)


def build_review_analyst(ctx, name, cfg):
    """A brand-monitoring product that reasons about reviews from many sites (topic-diverse)."""
    pool = ["nlp:yelp", "nlp:amazon", "nlp:imdb", "nlp:rotten"]
    return _product_kind(ctx, name, cfg, "review_analyst", tier=["enterprise", "pro"], age=(100, 1500),
                         users=_range(cfg, "app_users", (5, 20)),
                         areas_fn=lambda r: r.sample(pool, r.randint(2, 4)),
                         systems=E.REVIEW_SYSTEMS, follow_ups=T.FOLLOW_UPS, profile="office", max_tokens=2048)


def build_document_qa(ctx, name, cfg):
    """A document assistant: users paste long passages (plots, multi-paragraph texts) and ask about
    them; the system prompt asks it to reason from the passage."""
    pool = ["nlp:quoref", "nlp:duorc", "nlp:multi", "nlp:ropes", "nlp:cosmos"]
    return _product_kind(ctx, name, cfg, "document_qa", tier=["enterprise", "startup"], age=(90, 1200),
                         users=_range(cfg, "app_users", (20, 120)),
                         areas_fn=lambda r: r.sample(pool, r.randint(2, 4)),
                         systems=E.DOCUMENT_QA_SYSTEMS, follow_ups=E.DOCUMENT_QA_FOLLOW_UPS, profile="office",
                         max_tokens=2048)


def build_paste_action_app(ctx, name, cfg):
    """Held out (scenario ``heldout``): a writing tool; users paste text from anywhere (topic-diverse)
    and pick one of a few actions, whose fixed instruction goes after the paste."""
    pool = ["nlp:cnn", "nlp:xsum", "nlp:wiki", "nlp:duorc", "nlp:quoref", "nlp:amazon", "nlp:imdb"]
    return _product_kind(ctx, name, cfg, "paste_action_app", tier=["startup", "pro", "enterprise"],
                         age=(60, 900), users=_range(cfg, "app_users", (50, 300)),
                         areas_fn=lambda r: r.sample(pool, r.randint(3, 5)),
                         systems=E.PASTE_ACTION_SYSTEMS, follow_ups=T.FOLLOW_UPS, profile="office",
                         max_tokens=2048, content_fn=lambda rng, text: text.strip() + "\n\n" + _c(rng, E.PASTE_ACTIONS))


EVASIVE_KINDS = {
    "system_elicitation": build_system_elicitation,
    "end_user_rotation": build_end_user_rotation,
    "breadth_sweep": build_breadth_sweep,
    "multi_turn_harvest": build_multi_turn_harvest,
    "agent_sweep": build_agent_sweep,
    "foreign_elicitation": build_foreign_elicitation,
    "padded_elicitation": build_padded_elicitation,
}
LOOKALIKE_KINDS = {
    "llm_judge": build_llm_judge,
    "benchmark_lab": build_benchmark_lab,
    "tutoring_app": build_tutoring_app,
    "agent_platform": build_agent_platform,
    "class_cluster": build_class_cluster,
    "launch_day": build_launch_day,
    # variants written after tuning (scenario ``variants``): do the look-alike rules generalise?
    "explainer_app": build_explainer_app,
    "homework_helper": build_homework_helper,
    "review_analyst": build_review_analyst,
    "document_qa": build_document_qa,
    "paste_action_app": build_paste_action_app,
}
VARIANT_KINDS = ("explainer_app", "homework_helper", "review_analyst", "document_qa", "padded_elicitation")   # in scenario `variants` only
HELDOUT_KINDS = ("paste_action_app",)   # in scenario `heldout` only (written after paste.py, not tuned on)


def expected_events(kind: str, cfg: dict) -> float:
    """Planned requests of an evasive or look-alike cohort (upper bound)."""
    def mean(key, d):
        lo, hi = _range(cfg, key, d)
        return (lo + hi) / 2.0
    n = int(cfg.get("accounts", 1))
    if kind == "class_cluster":
        return cfg.get("classes", 1) * mean("students", (25, 40)) * mean("volume", (15, 50))
    if kind == "benchmark_lab":
        return n * mean("items", (300, 700)) * len(cfg.get("models") or [0, 0, 0])
    if kind == "end_user_rotation":
        return n * mean("volume", (1500, 3000)) / (1 - mean("extract_share", (0.15, 0.25)))
    if kind == "launch_day":
        return n * (mean("prelude", (40, 150)) + mean("volume", (60, 250)))
    defaults = {"breadth_sweep": (300, 700), "llm_judge": (2000, 5000), "tutoring_app": (1500, 3000),
                "explainer_app": (1500, 3000), "homework_helper": (1500, 3000), "review_analyst": (1500, 3000),
                "document_qa": (1500, 3000), "paste_action_app": (1500, 3000), "agent_platform": (1500, 3000)}
    return n * mean("volume", defaults.get(kind, (600, 1500)))
