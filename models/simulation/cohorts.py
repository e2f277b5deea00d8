"""Cohort generators.

A cohort *kind* is a function ``build(ctx, name, cfg) -> list[Stream]``.  A
``Stream`` owns one or more accounts and a ``factory`` that returns a fresh
iterator of contract-v1 events for them in non-decreasing ``ts_ms`` order.
Calling the factory again replays exactly the same events (all randomness
comes from ``random.Random`` instances seeded from the scenario seed and the
cohort/account position).

Every knob read here has a default, so a TOML cohort section only needs
``kind`` and ``accounts``; see scenarios/default.toml for the documented knobs.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Iterator

from . import text as T
from .corpus import Corpus, family
from .timing import DAY, HOUR, bursty, cron_runs, human_sessions, lognorm, steady

HISTORY_CAP = 8  # gateway keeps at most this many earlier messages


# ------------------------------------------------------------------ context

@dataclass
class Ctx:
    seed: int
    start_ms: int
    end_ms: int
    corpus: Corpus
    models: list[str]
    model_weights: list[float]
    new_model: str | None
    release_ms: int | None
    adoption: float          # share of benign requests moving to the new model after release
    reasoning_models: frozenset[str]
    flagship: str

    def rng(self, *parts) -> random.Random:
        return random.Random("/".join(str(p) for p in (self.seed, *parts)))


@dataclass
class Identity:
    account_id: str
    cohort: str
    kind: str
    label: str
    tier: str
    created_ms: int
    payment_fingerprint: str | None
    api_keys: list[str]
    ips: list[str]
    uas: list[str]
    users: list[str | None]
    first_attack_ts_ms: int | None = None
    tz_h: float = 0.0
    extra: dict = field(default_factory=dict)


@dataclass
class Stream:
    accounts: list[Identity]
    factory: Callable[[], Iterator[dict]]


# ---------------------------------------------------------------- helpers

def _range(cfg: dict, key: str, default):
    v = cfg.get(key, default)
    if isinstance(v, (int, float)):
        return (v, v)
    return (v[0], v[1])


def _ri(rng: random.Random, r) -> int:
    return rng.randint(int(r[0]), int(r[1]))


def _rf(rng: random.Random, r) -> float:
    return rng.uniform(float(r[0]), float(r[1]))


def _pick(rng: random.Random, v):
    return rng.choice(v) if isinstance(v, list) else v


def _c(rng: random.Random, seq):
    """Fast uniform choice (random.choice is slow in hot loops)."""
    return seq[int(rng.random() * len(seq))]


def _hex(rng: random.Random, bits: int) -> str:
    return format(rng.getrandbits(bits), "0%dx" % (bits // 4))


_RES_FIRST = [24, 50, 67, 71, 73, 76, 81, 86, 92, 98, 108, 151, 174, 177, 187, 189, 201, 213, 217]
_CLOUD = ["3.{}.{}.{}", "18.{}.{}.{}", "34.{}.{}.{}", "35.{}.{}.{}", "52.{}.{}.{}",
          "54.{}.{}.{}", "13.{}.{}.{}", "20.{}.{}.{}", "40.{}.{}.{}", "104.{}.{}.{}"]
_PROXY_FIRST = [5, 31, 45, 89, 91, 103, 146, 185, 193, 194]


def residential_ip(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return "2a02:%x:%x:%x::%x" % (rng.getrandbits(16), rng.getrandbits(16),
                                       rng.getrandbits(16), rng.getrandbits(16))
    return "%d.%d.%d.%d" % (rng.choice(_RES_FIRST), rng.randint(0, 255),
                            rng.randint(0, 255), rng.randint(1, 254))


def cloud_ip(rng: random.Random) -> str:
    return rng.choice(_CLOUD).format(rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254))


def subnet24(rng: random.Random, firsts=None) -> str:
    return "%d.%d.%d" % (rng.choice(firsts or _RES_FIRST), rng.randint(0, 255), rng.randint(0, 255))


def new_identity(ctx: Ctx, rng: random.Random, name: str, kind: str, label: str, cfg: dict,
                 *, tier_default, age_days_default, ip_kind: str, ua_bank: list[str],
                 n_users=(1, 1), keys=(1, 2), pf_prob: float = 0.95) -> Identity:
    tier = _pick(rng, cfg.get("tier", tier_default))
    age = _rf(rng, _range(cfg, "account_age_days", age_days_default))
    nips = 1 if ip_kind == "residential" and rng.random() < 0.7 else rng.randint(1, 3)
    mk = residential_ip if ip_kind == "residential" else cloud_ip
    nu = _ri(rng, _range(cfg, "users_per_account", n_users))
    users: list[str | None] = [f"u_{_hex(rng, 40)}" for _ in range(nu)] if nu > 0 else [None]
    return Identity(
        account_id=f"acct_{_hex(rng, 48)}",
        cohort=name, kind=kind, label=label, tier=tier,
        created_ms=ctx.start_ms - int(age * DAY),
        payment_fingerprint=(f"pf_{_hex(rng, 64)}"
                             if tier != "free" or rng.random() < pf_prob * 0.3 else None),
        api_keys=[f"key_{_hex(rng, 48)}" for _ in range(_ri(rng, keys))],
        ips=[mk(rng) for _ in range(nips)],
        uas=[rng.choice(ua_bank) for _ in range(rng.randint(1, 2))],
        users=users,
        tz_h=_pick(rng, cfg.get("tz_offsets_h", [-8, -5, 0, 1, 2, 5.5, 8, 9])),
    )


class Emitter:
    """Builds contract-v1 request events for one account."""

    __slots__ = ("acc", "rng", "ctx", "err_p", "rl_p", "ip_change_p", "ip")

    def __init__(self, ctx: Ctx, acc: Identity, rng: random.Random, *,
                 err_p: float = 0.004, rl_p: float = 0.0, ip_change_p: float = 0.02):
        self.ctx, self.acc, self.rng = ctx, acc, rng
        self.err_p, self.rl_p, self.ip_change_p = err_p, rl_p, ip_change_p
        self.ip = acc.ips[0] if acc.ips else None

    def event(self, ts: int, model: str, messages: list, params: dict, *,
              operation: str = "chat", session_id: str | None = None,
              user_id: str | None = None, ip: str | None = None,
              out_tokens: int | None = None, tool: bool = False, chars: int = -1) -> dict:
        rng = self.rng
        acc = self.acc
        if ip is None:
            if len(acc.ips) > 1 and rng.random() < self.ip_change_p:
                self.ip = rng.choice(acc.ips)
            ip = self.ip
        if chars < 0:
            chars = 0
            for m in messages:
                chars += len(m["content"])
        in_tok = chars // 4 + 4 * len(messages) + 3
        max_tok = params.get("max_tokens", 1024)
        r = rng.random()
        if r < self.rl_p:
            status, out, reason, lat, fin = "rate_limited", 0, 0, rng.randint(5, 40), None
        elif r < self.rl_p + self.err_p:
            status, out, reason, lat, fin = "error", 0, 0, rng.randint(50, 30000), None
        else:
            status = "ok"
            if out_tokens is None:
                out_tokens = int(lognorm(rng, 5.3, 0.8))
            out = max(1, min(max_tok, out_tokens))
            if tool and rng.random() < 0.35:
                fin = "tool_use"
            else:
                fin = "length" if out >= max_tok else "stop"
            reason = int(out * (1.5 + 4.5 * rng.random())) if model in self.ctx.reasoning_models else 0
            lat = int(200 + in_tok * 0.05 + (out + reason) * (8.0 + 17.0 * rng.random()))
        return {
            "schema_version": "1",
            "event_id": "req_" + format(rng.getrandbits(96), "024x"),
            "ts_ms": ts,
            "account_id": acc.account_id,
            "api_key_id": acc.api_keys[0] if len(acc.api_keys) == 1 else _c(rng, acc.api_keys),
            "user_id": user_id,
            "client_ip": ip,
            "user_agent": acc.uas[0] if len(acc.uas) == 1 else _c(rng, acc.uas),
            "session_id": session_id,
            "payment_fingerprint": acc.payment_fingerprint,
            "account_created_ms": acc.created_ms,
            "access_tier": acc.tier,
            "model": model,
            "operation": operation,
            "messages": messages,
            "params": params,
            "usage": {"input_tokens": in_tok, "output_tokens": out, "reasoning_tokens": reason},
            "status": status,
            "latency_ms": lat,
            "finish_reason": fin,
        }


class TopicPicker:
    """Draws corpus prompts from a fixed set of areas (narrow interests)."""

    def __init__(self, corpus: Corpus, areas: list[str], rng: random.Random):
        self.lists = [corpus.by_area[a] for a in areas]
        self.rng = rng

    def __call__(self) -> str:
        r = self.rng.random
        lst = self.lists[int(r() * len(self.lists))]
        return lst[int(r() * len(lst))]


class SweepPicker:
    """Broad coverage: family uniformly, then area, then a not-yet-used row."""

    def __init__(self, corpus: Corpus, rng: random.Random):
        self.rng = rng
        self.fams = sorted(corpus.areas_by_family)
        self.areas = {f: corpus.areas_by_family[f] for f in self.fams}
        self.pool = {a: corpus.by_area[a] for fa in self.fams for a in self.areas[fa]}
        self.order: dict[str, list[int]] = {}
        self.pos: dict[str, int] = {}

    def __call__(self) -> str:
        rng = self.rng
        a = _c(rng, self.areas[_c(rng, self.fams)])
        lst = self.pool[a]
        o = self.order.get(a)
        if o is None:
            o = list(range(len(lst)))
            rng.shuffle(o)
            self.order[a] = o
            self.pos[a] = 0
        i = self.pos[a]
        self.pos[a] = i + 1
        return lst[o[i % len(o)]]


def choose_areas(ctx: Ctx, rng: random.Random, k: int, families: list[str] | None = None,
                 must: list[str] | None = None) -> list[str]:
    areas: list[str] = list(must or [])
    fams = families or sorted(ctx.corpus.areas_by_family)
    guard = 0
    while len(areas) < k and guard < 100:
        guard += 1
        fam = rng.choice(fams)
        a = rng.choice(ctx.corpus.areas_by_family[fam])
        if a not in areas:
            areas.append(a)
    return areas


def benign_model(ctx: Ctx, rng: random.Random, ts: int, pref: str) -> str:
    if ctx.new_model and ctx.release_ms is not None and ts >= ctx.release_ms \
            and rng.random() < ctx.adoption:
        return ctx.new_model
    return pref


def _fill(tmpl: str, p: str) -> str:
    return tmpl.replace("{p}", p)


# ----------------------------------------------------- human chat sessions

def human_chat(ctx: Ctx, em: Emitter, rng: random.Random, t0: int, t_end: int, n: int, *,
               cfg: dict, areas: list[str], systems: list, model_pref: str,
               profile: str, tools: tuple[int, int] | None = None,
               followup_p: float = 0.45) -> Iterator[dict]:
    """Multi-turn human chat: later turns carry earlier user/assistant turns."""
    acc = em.acc
    pick = TopicPicker(ctx.corpus, areas, rng)
    turns = _range(cfg, "turns", (1, 6))
    think = _rf(rng, _range(cfg, "think_s", (20, 120)))
    temp = round(rng.choice([0.2, 0.5, 0.7, 0.7, 1.0]), 2)
    max_tok = rng.choice([None, 512, 1024, 2048, 4096])
    stream = rng.random() < 0.6
    system = rng.choice(systems)
    hist: list[dict] = []
    sess_id = None
    user = None
    for ts, sess, turn in human_sessions(rng, t0, t_end, n, tz_h=acc.tz_h, profile=profile,
                                         turns=turns, think_s=think):
        if turn == 0:
            hist = [{"role": "system", "content": system}] if system else []
            sess_id = f"sess_{_hex(rng, 64)}"
            user = _c(rng, acc.users)
        if turn > 0 and rng.random() < followup_p:
            content = _c(rng, T.FOLLOW_UPS)
        else:
            content = pick()
        msgs = hist + [{"role": "user", "content": content}]
        params = {"temperature": temp, "stream": stream}
        if max_tok:
            params["max_tokens"] = max_tok
        if tools:
            params["tools_count"] = _ri(rng, tools)
        model = benign_model(ctx, rng, ts, model_pref)
        yield em.event(ts, model, msgs, params, session_id=sess_id, user_id=user,
                       tool=bool(tools))
        hist = msgs + [{"role": "assistant", "content": _c(rng, T.REPLIES)}]
        if len(hist) > HISTORY_CAP:
            keep = hist[-HISTORY_CAP:]
            hist = ([hist[0]] + keep) if system and hist[0]["role"] == "system" else keep
            if hist and hist[0]["role"] == "assistant":
                hist = hist[1:]


def _account_window(ctx: Ctx, rng: random.Random, cfg: dict) -> int:
    off = _rf(rng, _range(cfg, "start_offset_h", (0, 0)))
    return min(ctx.start_ms + int(off * HOUR), ctx.end_ms - 60_000)


def _pref_model(ctx: Ctx, rng: random.Random, cfg: dict) -> str:
    ms = cfg.get("models")
    if ms:
        return rng.choice(ms)
    return rng.choices(ctx.models, weights=ctx.model_weights)[0]


# ------------------------------------------------------------ benign kinds

def _human_kind(ctx: Ctx, name: str, cfg: dict, *, kind: str, tier, age, ip_kind, uas,
                areas_default, families=None, must=None, systems, profile,
                tools=None, users=(1, 1)) -> list[Stream]:
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = new_identity(ctx, srng, name, kind, "benign", cfg, tier_default=tier,
                           age_days_default=age, ip_kind=ip_kind, ua_bank=uas, n_users=users)
        k = _ri(srng, _range(cfg, "areas_per_account", areas_default))
        areas = choose_areas(ctx, srng, k, cfg.get("families", families), must)
        t0 = _account_window(ctx, srng, cfg)
        n = _ri(srng, _range(cfg, "volume", (20, 100)))
        model = _pref_model(ctx, srng, cfg)
        prof = cfg.get("profile", profile)
        tl = _range(cfg, "tools_count", tools) if tools else None

        def factory(acc=acc, i=i, areas=areas, t0=t0, n=n, model=model, prof=prof, tl=tl):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)
            return human_chat(ctx, em, rng, t0, ctx.end_ms, n, cfg=cfg, areas=areas,
                              systems=systems, model_pref=model, profile=prof, tools=tl)
        out.append(Stream([acc], factory))
    return out


def build_casual(ctx, name, cfg):
    return _human_kind(ctx, name, cfg, kind="casual", tier=["free", "free", "pro"],
                       age=(5, 900), ip_kind="residential", uas=T.BROWSER_UAS,
                       areas_default=(1, 2), families=["math", "general", "apps", "nlp", "code"],
                       systems=T.CASUAL_SYSTEM, profile="home")


def build_developer(ctx, name, cfg):
    return _human_kind(ctx, name, cfg, kind="developer", tier=["pro", "startup", "pro"],
                       age=(20, 1200), ip_kind="cloud", uas=T.SDK_UAS,
                       areas_default=(2, 3), families=["apps", "general", "nlp"], must=["code"],
                       systems=T.DEV_SYSTEM, profile="office", tools=(0, 8), users=(0, 5))


def build_power_user(ctx, name, cfg):
    return _human_kind(ctx, name, cfg, kind="power_user", tier="pro",
                       age=(60, 1200), ip_kind="residential", uas=T.BROWSER_UAS + T.SDK_UAS[:2],
                       areas_default=(3, 5), systems=T.CASUAL_SYSTEM, profile="home")


def build_enterprise_team(ctx, name, cfg):
    srng = ctx.rng(name, "setup")
    out = []
    idx = 0
    for team in range(int(cfg.get("teams", 1))):
        pf = f"pf_{_hex(srng, 64)}"
        net = subnet24(srng, [12, 38, 63, 128, 129, 144, 155, 192, 198, 204])
        tz = _pick(srng, cfg.get("tz_offsets_h", [-5, 0, 1, 9]))
        age_team = _range(cfg, "account_age_days", (200, 1500))
        for _ in range(_ri(srng, _range(cfg, "accounts_per_team", (10, 30)))):
            acc = new_identity(ctx, srng, name, "enterprise_team", "benign", cfg,
                               tier_default="enterprise", age_days_default=age_team,
                               ip_kind="cloud", ua_bank=T.BROWSER_UAS + T.SDK_UAS[:3],
                               n_users=(1, 3))
            acc.payment_fingerprint = pf
            acc.tz_h = tz
            acc.ips = ["%s.%d" % (net, h) for h in srng.sample(range(2, 254), srng.randint(1, 4))]
            acc.extra["team"] = team
            areas = choose_areas(ctx, srng, _ri(srng, _range(cfg, "areas_per_account", (1, 2))))
            t0 = _account_window(ctx, srng, cfg)
            n = _ri(srng, _range(cfg, "volume", (20, 100)))
            model = _pref_model(ctx, srng, cfg)

            def factory(acc=acc, i=idx, areas=areas, t0=t0, n=n, model=model):
                rng = ctx.rng(name, i, "events")
                em = Emitter(ctx, acc, rng, ip_change_p=0.3)
                return human_chat(ctx, em, rng, t0, ctx.end_ms, n, cfg=cfg, areas=areas,
                                  systems=T.ENTERPRISE_SYSTEM, model_pref=model,
                                  profile=cfg.get("profile", "office"))
            out.append(Stream([acc], factory))
            idx += 1
    return out


def build_batch_job(ctx, name, cfg):
    """Legit templated job: one PromptSource template over thousands of inputs."""
    srng = ctx.rng(name, "setup")
    corpus = ctx.corpus
    names = [t for t, v in sorted(corpus.templates.items())
             if len(v.prefix.strip()) + len(v.suffix.strip()) >= 12 and len(v.middles) >= 8]
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = new_identity(ctx, srng, name, "batch_job", "benign", cfg,
                           tier_default=["pro", "startup", "enterprise"], age_days_default=(60, 1500),
                           ip_kind="cloud", ua_bank=T.SCRIPT_UAS + T.SDK_UAS, n_users=(0, 0),
                           keys=(1, 1))
        acc.uas = acc.uas[:1]
        acc.ips = acc.ips[:1]
        tname = srng.choice(names)
        acc.extra["template"] = tname
        t0 = _account_window(ctx, srng, cfg)
        n = _ri(srng, _range(cfg, "volume", (1000, 4000)))
        iv = _rf(srng, _range(cfg, "interval_s", (0.3, 2.0)))
        hours = sorted(srng.sample(range(24), _ri(srng, _range(cfg, "runs_per_day", (1, 3)))))
        max_tok = _ri(srng, _range(cfg, "max_tokens", (5, 64)))
        op = _pick(srng, cfg.get("operation", ["chat", "batch", "text_completion"]))
        model = _pick(srng, cfg.get("models", ctx.models))

        def factory(acc=acc, i=i, tname=tname, t0=t0, n=n, iv=iv, hours=hours,
                    max_tok=max_tok, op=op, model=model):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng, err_p=0.002)
            tp = corpus.templates[tname]
            # the template's own dataset first, then inputs of other datasets
            inputs = list(corpus.middles_by_area.get(tp.area) or tp.middles)
            rng.shuffle(inputs)
            if len(inputs) < n:
                more = [m for a in sorted(corpus.middles_by_area) if a != tp.area
                        for m in corpus.middles_by_area[a]]
                rng.shuffle(more)
                inputs += more[: n - len(inputs)]
            params = {"temperature": 0, "max_tokens": max_tok}
            for j, ts in enumerate(cron_runs(rng, t0, ctx.end_ms, n, tz_h=acc.tz_h,
                                             run_hours=hours, interval_s=iv)):
                body = tp.prefix + inputs[j % len(inputs)] + tp.suffix
                yield em.event(ts, model, [{"role": "user", "content": body}], params,
                               operation=op, out_tokens=rng.randint(1, max_tok))
        out.append(Stream([acc], factory))
    return out


def build_eval_harness(ctx, name, cfg):
    """Legit benchmark run: the whole benchmark with a fixed CoT instruction."""
    srng = ctx.rng(name, "setup")
    benches = cfg.get("benchmarks", ["gsm8k-test", "humaneval"])
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = new_identity(ctx, srng, name, "eval_harness", "benign", cfg,
                           tier_default=["education", "pro", "enterprise"],
                           age_days_default=(30, 1000), ip_kind="cloud", ua_bank=T.EVAL_UAS,
                           n_users=(0, 0), keys=(1, 1))
        acc.uas = acc.uas[:1]
        bench = benches[i % len(benches)]
        acc.extra["benchmark"] = bench
        items = ctx.corpus.by_source[bench]
        instr = srng.choice(T.CODE_EVAL_INSTRUCTIONS if bench == "humaneval"
                            else T.EVAL_INSTRUCTIONS)
        runs = _ri(srng, _range(cfg, "runs", (1, 2)))
        run_models = [srng.choice(ctx.models + ([ctx.flagship] * 2)) for _ in range(runs)]
        t0 = _account_window(ctx, srng, cfg)
        iv = _rf(srng, _range(cfg, "interval_s", (0.2, 1.0)))
        gap_h = _rf(srng, _range(cfg, "run_gap_h", (1, 8)))
        seed_v = srng.randint(0, 9999)

        def factory(acc=acc, i=i, items=items, instr=instr, run_models=run_models, t0=t0,
                    iv=iv, gap_h=gap_h, seed_v=seed_v):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng, err_p=0.003)
            params = {"temperature": 0, "max_tokens": 512, "seed": seed_v}
            t = t0
            for model in run_models:
                last = t
                for ts, item in zip(steady(rng, t, ctx.end_ms, len(items), interval_s=iv,
                                           jitter=0.5), items):
                    body = _fill(instr, item) if "{p}" in instr else instr + item
                    yield em.event(ts, model, [{"role": "user", "content": body}], params,
                                   out_tokens=int(rng.uniform(60, 400)))
                    last = ts
                t = last + int(gap_h * HOUR)
                if t >= ctx.end_ms:
                    return
        out.append(Stream([acc], factory))
    return out


# ------------------------------------------------------------ attack kinds

def _attack_accounts(ctx: Ctx, name: str, kind: str, cfg: dict, srng: random.Random, *,
                     tier, age, ip_kind="cloud", uas=None):
    acc = new_identity(ctx, srng, name, kind, "attack", cfg, tier_default=tier,
                       age_days_default=age, ip_kind=ip_kind, ua_bank=uas or T.SCRIPT_UAS,
                       n_users=(0, 0))
    t0 = _account_window(ctx, srng, cfg)
    pre_n = _ri(srng, _range(cfg, "prelude", (0, 0)))
    attack_t = t0
    if pre_n > 0:
        span_h = _rf(srng, _range(cfg, "prelude_h", (4, 12)))
        attack_t = min(t0 + int(span_h * HOUR), ctx.end_ms - 3_600_000)
    acc.first_attack_ts_ms = attack_t
    return acc, t0, pre_n, attack_t


def _with_prelude(ctx, em, rng, cfg, t0, pre_n, attack_t, attack_iter):
    if pre_n > 0 and attack_t > t0:
        areas = choose_areas(ctx, rng, 2)
        yield from human_chat(ctx, em, rng, t0, attack_t, pre_n, cfg={}, areas=areas,
                              systems=T.CASUAL_SYSTEM, model_pref=ctx.models[0],
                              profile="home")
    yield from attack_iter


def _sweep_kind(ctx, name, cfg, kind, make_body, timing, *, tier=("pro", "startup"),
                age=(10, 300), rl_p=0.0, params_fn=None, uas=None) -> list[Stream]:
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc, t0, pre_n, attack_t = _attack_accounts(ctx, name, kind, cfg, srng,
                                                    tier=list(tier), age=age, uas=uas)
        n = _ri(srng, _range(cfg, "volume", (500, 2000)))
        knobs = {"tmpl": srng.randrange(1 << 30), "iv": srng.random(), "model":
                 _pick(srng, cfg.get("models", [ctx.flagship]))}

        def factory(acc=acc, i=i, t0=t0, pre_n=pre_n, attack_t=attack_t, n=n, knobs=knobs):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng, rl_p=float(cfg.get("rate_limited_prob", rl_p)))
            state = {"seen": set()}
            kr = random.Random(knobs["tmpl"])

            def attack():
                pick = SweepPicker(ctx.corpus, rng)
                params = params_fn(kr, cfg) if params_fn else {
                    "temperature": round(kr.choice([0.0, 0.0, 0.3, 0.7]), 1),
                    "max_tokens": kr.choice([2048, 4096, 8192])}
                for ts in timing(rng, attack_t, ctx.end_ms, n, cfg, knobs):
                    body = make_body(rng, kr, pick, state)
                    yield em.event(ts, knobs["model"], [{"role": "user", "content": body}],
                                   dict(params), out_tokens=int(lognorm(rng, 6.3, 0.6)))
            return _with_prelude(ctx, em, rng, cfg, t0, pre_n, attack_t, attack())
        out.append(Stream([acc], factory))
    return out


def _steady_timing(default_iv):
    def timing(rng, t0, t_end, n, cfg, knobs):
        lo, hi = _range(cfg, "interval_s", default_iv)
        iv = lo + (hi - lo) * knobs["iv"]
        return steady(rng, t0, t_end, n, interval_s=iv, jitter=float(cfg.get("jitter", 0.3)))
    return timing


def build_capability_sweep(ctx, name, cfg):
    def body(rng, kr, pick, st):
        return _fill(_c(rng, T.REASONING_WRAPPERS), pick())
    return _sweep_kind(ctx, name, cfg, "capability_sweep", body, _steady_timing((1.0, 5.0)))


def build_templated_burst(ctx, name, cfg):
    def body(rng, kr, pick, st):
        tmpl = st.get("t")
        if tmpl is None:
            tmpl = st["t"] = kr.choice(T.BURST_TEMPLATES)
        return _fill(tmpl, pick())

    def timing(rng, t0, t_end, n, cfg, knobs):
        return bursty(rng, t0, t_end, n, burst=_range(cfg, "burst", (20, 100)),
                      intra_s=_rf(rng, _range(cfg, "intra_s", (0.05, 0.3))),
                      pause_s=_range(cfg, "pause_s", (20, 300)))
    return _sweep_kind(ctx, name, cfg, "templated_burst", body, timing, rl_p=0.04)


def build_paraphrased_sweep(ctx, name, cfg):
    def body(rng, kr, pick, st):
        seen = st["seen"]
        for _ in range(50):
            w, before = T.paraphrased_wrapper(rng)
            if w not in seen:
                break
        seen.add(w)
        p = pick()
        return w + p if before else p + "\n\n" + w.rstrip()
    return _sweep_kind(ctx, name, cfg, "paraphrased_sweep", body, _steady_timing((2.0, 8.0)))


def build_grader_abuse(ctx, name, cfg):
    def body(rng, kr, pick, st):
        return (f"{rng.choice(T.RUBRICS)}\n\nQuestion:\n{pick()}\n\nAnswer to grade:\n{pick()}")

    def params(kr, cfg):
        return {"temperature": 0, "max_tokens": kr.choice([512, 1024, 2048])}
    return _sweep_kind(ctx, name, cfg, "grader_abuse", body, _steady_timing((1.0, 4.0)),
                       params_fn=params)


def build_low_and_slow(ctx, name, cfg):
    """A sweep spread over the whole window at low rate with human-like timing."""
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc, t0, pre_n, attack_t = _attack_accounts(ctx, name, "low_and_slow", cfg, srng,
                                                    tier=["pro", "free", "education"],
                                                    age=(30, 600), ip_kind="residential",
                                                    uas=T.BROWSER_UAS + T.SDK_UAS)
        n = _ri(srng, _range(cfg, "volume", (150, 400)))
        model = _pick(srng, cfg.get("models", [ctx.flagship]))

        def factory(acc=acc, i=i, t0=t0, pre_n=pre_n, attack_t=attack_t, n=n, model=model):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)

            def attack():
                pick = SweepPicker(ctx.corpus, rng)
                first = True
                for ts, sess, turn in human_sessions(
                        rng, attack_t, ctx.end_ms, n, tz_h=acc.tz_h, profile="home",
                        turns=_range(cfg, "turns", (1, 3)), think_s=90.0, fill=0.95):
                    if first:       # the planned first attack request
                        ts, first = attack_t, False
                    if rng.random() < 0.5:
                        body = _fill(_c(rng, T.REASONING_WRAPPERS), pick())
                    else:
                        w, before = T.paraphrased_wrapper(rng)
                        p = pick()
                        body = w + p if before else p + "\n\n" + w.rstrip()
                    yield em.event(ts, model, [{"role": "user", "content": body}],
                                   {"temperature": 0.7, "max_tokens": 4096},
                                   out_tokens=int(lognorm(rng, 6.3, 0.6)))
            return _with_prelude(ctx, em, rng, cfg, t0, pre_n, attack_t, attack())
        out.append(Stream([acc], factory))
    return out


def build_logprob_probe(ctx, name, cfg):
    srng = ctx.rng(name, "setup")
    corpus = ctx.corpus
    short = [r["text"] for r in corpus.rows if len(r["text"]) < 300]
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc, t0, pre_n, attack_t = _attack_accounts(ctx, name, "logprob_probe", cfg, srng,
                                                    tier=["pro", "startup"], age=(5, 200))
        n = _ri(srng, _range(cfg, "volume", (800, 2000)))
        prompts = srng.sample(short, _ri(srng, _range(cfg, "prompts_per_account", (1, 3))))
        iv = _rf(srng, _range(cfg, "interval_s", (0.5, 2.0)))
        model = _pick(srng, cfg.get("models", [ctx.flagship]))
        tl = _range(cfg, "top_logprobs", (5, 20))
        bs = _range(cfg, "bias_size", (50, 300))
        vocab = int(cfg.get("vocab_size", 100_000))

        def factory(acc=acc, i=i, t0=t0, pre_n=pre_n, attack_t=attack_t, n=n, prompts=prompts,
                    iv=iv, model=model):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)

            def attack():
                base = rng.randrange(vocab)
                for ts in steady(rng, attack_t, ctx.end_ms, n, interval_s=iv):
                    k = _ri(rng, bs)
                    if rng.random() < 0.6:      # walk blocks of consecutive token ids
                        ids = [(base + j) % vocab for j in range(k)]
                        base = (base + k) % vocab
                    else:
                        ids = rng.sample(range(vocab), k)
                    bias = {str(t): (100 if rng.random() < 0.5 else -100) for t in ids}
                    params = {"temperature": 0, "max_tokens": 1, "logprobs": True,
                              "top_logprobs": _ri(rng, tl), "logit_bias": bias}
                    yield em.event(ts, model, [{"role": "user", "content": rng.choice(prompts)}],
                                   params, out_tokens=1)
            return _with_prelude(ctx, em, rng, cfg, t0, pre_n, attack_t, attack())
        out.append(Stream([acc], factory))
    return out


def build_hydra(ctx, name, cfg):
    """Coordinated campaign of many new, low-volume accounts bursting together."""
    srng = ctx.rng(name, "setup")
    out = []
    for c in range(int(cfg.get("campaigns", 1))):
        n_acc = _ri(srng, _range(cfg, "accounts_per_campaign", (30, 50)))
        nets = [subnet24(srng, _PROXY_FIRST) for _ in range(_ri(srng, _range(cfg, "subnets", (3, 6))))]
        pfs = [f"pf_{_hex(srng, 64)}" for _ in range(_ri(srng, _range(cfg, "payment_fingerprints", (2, 4))))]
        ua = srng.choice(T.SCRIPT_UAS + T.SDK_UAS)
        t_begin = _account_window(ctx, srng, cfg)
        n_bursts = _ri(srng, _range(cfg, "bursts", (40, 80)))
        gap_min = _range(cfg, "burst_gap_min", (5, 30))
        spread = float(cfg.get("burst_spread_s", 6.0)) * 1000.0
        bursts = []
        t = t_begin
        for _ in range(n_bursts):
            if t >= ctx.end_ms - 60_000:
                break
            bursts.append(t)
            t += int(_rf(srng, gap_min) * 60_000)
        sched = []  # (ts, account index)
        accs = []
        for a in range(n_acc):
            vol = _ri(srng, _range(cfg, "volume", (20, 80)))
            # each account joins a subset of the bursts, 1-3 requests per burst
            for b in sorted(srng.choices(range(len(bursts)), k=vol)):
                sched.append((bursts[b] + int(srng.random() * spread), a))
        sched.sort()
        first: dict[int, int] = {}
        for ts, a in sched:
            first.setdefault(a, ts)
        for a in range(n_acc):
            acc = Identity(
                account_id=f"acct_{_hex(srng, 48)}", cohort=name, kind="hydra", label="attack",
                tier=srng.choice(cfg.get("tier", ["free", "free", "startup"])),
                created_ms=first.get(a, t_begin) - int(_rf(srng, _range(cfg, "account_age_days", (0.05, 3))) * DAY),
                payment_fingerprint=srng.choice(pfs), api_keys=[f"key_{_hex(srng, 48)}"],
                ips=[], uas=[ua], users=[None], first_attack_ts_ms=first.get(a),
                extra={"campaign": c})
            accs.append(acc)
        model = _pick(srng, cfg.get("models", [ctx.flagship]))

        def factory(c=c, accs=accs, sched=sched, nets=nets, model=model):
            rng = ctx.rng(name, c, "events")
            ems = [Emitter(ctx, a, rng) for a in accs]
            pick = SweepPicker(ctx.corpus, rng)
            for j, (ts, a) in enumerate(sched):
                skel = T.HYDRA_SKELETONS[rng.random() < 0.3]
                body = skel.replace("{tag}", rng.choice(T.HYDRA_TAGS)).replace(
                    "{n}", str(j + 1)).replace("{p}", pick())
                ip = "%s.%d" % (rng.choice(nets), rng.randint(2, 254))
                yield ems[a].event(ts, model, [{"role": "user", "content": body}],
                                   {"temperature": 0.0, "max_tokens": 2048}, ip=ip,
                                   out_tokens=int(lognorm(rng, 6.3, 0.6)))
        out.append(Stream(accs, factory))
    return out


def build_model_pivot(ctx, name, cfg):
    """Normal-looking usage, then a sweep on the newly released model."""
    if not ctx.new_model or ctx.release_ms is None:
        raise ValueError(f"cohort {name!r} (model_pivot) needs [models] new_release and release_offset_h")
    srng = ctx.rng(name, "setup")
    out = []
    for i in range(int(cfg.get("accounts", 1))):
        acc = new_identity(ctx, srng, name, "model_pivot", "attack", cfg,
                           tier_default=["pro", "startup"], age_days_default=(90, 900),
                           ip_kind="cloud", ua_bank=T.SDK_UAS, n_users=(0, 3))
        t0 = _account_window(ctx, srng, cfg)
        pivot = ctx.release_ms + int(_rf(srng, _range(cfg, "pivot_delay_h", (0.1, 3))) * HOUR)
        pivot = min(max(pivot, t0 + 60_000), ctx.end_ms - 60_000)
        acc.first_attack_ts_ms = pivot
        pre_n = _ri(srng, _range(cfg, "prelude", (60, 200)))
        n = _ri(srng, _range(cfg, "volume", (800, 2000)))
        iv = _rf(srng, _range(cfg, "interval_s", (1.0, 4.0)))
        areas = choose_areas(ctx, srng, 2, must=["code"])
        model = _pref_model(ctx, srng, cfg)

        def factory(acc=acc, i=i, t0=t0, pivot=pivot, pre_n=pre_n, n=n, iv=iv, areas=areas,
                    model=model):
            rng = ctx.rng(name, i, "events")
            em = Emitter(ctx, acc, rng)
            yield from human_chat(ctx, em, rng, t0, pivot, pre_n, cfg={}, areas=areas,
                                  systems=T.DEV_SYSTEM, model_pref=model, profile="office",
                                  tools=(0, 4))
            pick = SweepPicker(ctx.corpus, rng)
            for ts in steady(rng, pivot, ctx.end_ms, n, interval_s=iv):
                body = _fill(_c(rng, T.REASONING_WRAPPERS), pick())
                yield em.event(ts, ctx.new_model, [{"role": "user", "content": body}],
                               {"temperature": 0.0, "max_tokens": 4096},
                               out_tokens=int(lognorm(rng, 6.3, 0.6)))
        out.append(Stream([acc], factory))
    return out


KINDS: dict[str, Callable[[Ctx, str, dict], list[Stream]]] = {
    "casual": build_casual,
    "developer": build_developer,
    "power_user": build_power_user,
    "batch_job": build_batch_job,
    "eval_harness": build_eval_harness,
    "enterprise_team": build_enterprise_team,
    "capability_sweep": build_capability_sweep,
    "templated_burst": build_templated_burst,
    "paraphrased_sweep": build_paraphrased_sweep,
    "low_and_slow": build_low_and_slow,
    "logprob_probe": build_logprob_probe,
    "grader_abuse": build_grader_abuse,
    "hydra": build_hydra,
    "model_pivot": build_model_pivot,
}
BENIGN_KINDS = ("casual", "developer", "power_user", "batch_job", "eval_harness", "enterprise_team")
ATTACK_KINDS = ("capability_sweep", "templated_burst", "paraphrased_sweep", "low_and_slow",
                "logprob_probe", "grader_abuse", "hydra", "model_pivot")


# the evasive styles and look-alike customers (#12) live in their own module
from .evasive import EVASIVE_KINDS, LOOKALIKE_KINDS, expected_events as _evasive_expected  # noqa: E402

KINDS.update(EVASIVE_KINDS)
KINDS.update(LOOKALIKE_KINDS)
CLASSIC_KINDS = BENIGN_KINDS + ATTACK_KINDS
BENIGN_KINDS += tuple(LOOKALIKE_KINDS)
ATTACK_KINDS += tuple(EVASIVE_KINDS)


def expected_events(kind: str, cfg: dict, corpus: Corpus | None = None) -> float:
    """Planned request count of a cohort (upper bound: the window may cut it)."""
    if kind in EVASIVE_KINDS or kind in LOOKALIKE_KINDS:
        return _evasive_expected(kind, cfg)
    def mean(key, d):
        lo, hi = _range(cfg, key, d)
        return (lo + hi) / 2.0
    if kind == "enterprise_team":
        return cfg.get("teams", 1) * mean("accounts_per_team", (10, 30)) * mean("volume", (20, 100))
    if kind == "hydra":
        return cfg.get("campaigns", 1) * mean("accounts_per_campaign", (30, 50)) * mean("volume", (20, 80))
    if kind == "eval_harness":
        benches = cfg.get("benchmarks", ["gsm8k-test", "humaneval"])
        sizes = {"gsm8k-test": 1319, "humaneval": 164}
        if corpus is not None:
            sizes = {b: len(corpus.by_source.get(b, [])) for b in benches}
        n = int(cfg.get("accounts", 1))
        return sum(sizes.get(benches[i % len(benches)], 0) for i in range(n)) * mean("runs", (1, 2))
    per = {"batch_job": (1000, 4000), "logprob_probe": (800, 2000), "low_and_slow": (150, 400),
           "model_pivot": (800, 2000)}.get(kind, (20, 100) if kind in CLASSIC_KINDS[:6] else (500, 2000))
    v = mean("volume", per) + mean("prelude", (60, 200) if kind == "model_pivot" else (0, 0))
    return int(cfg.get("accounts", 1)) * v
