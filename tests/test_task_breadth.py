"""Capability areas are topics; task groups say how many tasks an account does. A product doing
one or two tasks over diverse topics is not a sweep, whole account or end users; short questions
get an area; the distribution-distance sketch stays small and reads drift."""
from distillguard.models.capability_space import N_CAPABILITIES, N_TASKS, OTHER, TASK_OF, capability_of
from distillguard.models.config import DetectorConfig
from distillguard.models.drift import CohortMix, Drift
from distillguard.models.end_users import EndUsers
from distillguard.models.features import EventFeatures
from distillguard.models.scoring import account_features, evidence
from distillguard.models.state import AccountState
from distillguard.models.text import analyze


def _areas_by_task() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for area, task in enumerate(TASK_OF):
        out.setdefault(task, []).append(area)
    return out


def _feed(state: AccountState, areas: list[int], n: int) -> None:
    for i in range(n):
        state.learn_one(EventFeatures(i * 20_000, f"e{i}", i, i + 1, 3, True, False, False, 0, False, False,
                                      50, 900, False, "m", capability=areas[i % len(areas)], long_answer=True))


def test_task_groups_cover_every_area():
    assert len(TASK_OF) == N_CAPABILITIES and N_TASKS == max(TASK_OF) + 1 > 8
    assert all(0 <= t < N_TASKS for t in TASK_OF)


def test_many_areas_of_two_tasks_are_not_a_sweep_but_many_tasks_are():
    groups = sorted(_areas_by_task().values(), key=len, reverse=True)
    two_tasks = groups[0] + groups[1]             # the two task groups with the most areas
    assert len(two_tasks) >= 12
    product, sweep = AccountState(), AccountState()
    _feed(product, two_tasks, 400)
    _feed(sweep, list(range(N_CAPABILITIES)), 400)
    cfg = DetectorConfig()
    xp, xs = account_features(product), account_features(sweep)
    assert xp["task_breadth"] <= 2.0 < 10 < xs["task_breadth"]
    assert evidence(xp, cfg)["capability_sweep"] == 0.0       # many topics, two tasks: a product
    assert evidence(xs, cfg)["capability_sweep"] == 1.0


def test_end_users_of_a_two_task_product_are_not_an_extracting_population():
    groups = sorted(_areas_by_task().values(), key=len, reverse=True)
    two_tasks = groups[0] + groups[1]
    students, sweepers = EndUsers(), EndUsers()
    for u in range(8):        # each student asks a few different questions of the product's tasks
        for i in range(8):
            students.learn(f"s{u}", u * 100 + i, two_tasks[(u * 3 + i) % len(two_tasks)], True, False)
            sweepers.learn(f"x{u}", u * 100 + i, (u * 8 + i) % N_CAPABILITIES, True, True)
    assert students.flagged()                      # individually they look curious...
    assert students.finding()[0] == 0.0            # ...together they cover two tasks, not everything
    assert sweepers.finding()[0] > 0.5


def test_a_short_question_gets_an_area():
    q = analyze("Why do plants need sunlight to grow?")
    assert q.payload == q.words and capability_of(q.payload) != OTHER
    long = analyze("Please answer the following question. " + "Why do plants need sunlight to grow? " * 3
                   + "Answer in one short paragraph please.")
    assert "please" not in long.payload    # a longer prompt still loses its wrapper


def test_drift_sketch_is_small_and_reads_a_change_of_mix():
    d = Drift()
    for i in range(60):
        d.learn(i * 60_000, TASK_OF[0])
    assert d.distance() < 1e-6
    for i in range(60, 120):
        d.learn(i * 60_000, i % N_TASKS)
    assert d.distance() > 0.02 and len(d.counts) * d.counts.itemsize == 8 * N_TASKS
    d.learn(200 * 3_600_000, 0)                    # days later: rebased, still finite
    assert 0.0 <= d.distance() <= 2.0
    tier = CohortMix()
    for _ in range(500):
        tier.learn(d.day())
    assert d.distance(tier.mix) < d.distance([1.0 / N_TASKS] * N_TASKS)   # the tier's mix is the account's
