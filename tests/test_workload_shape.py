"""Transformation-shaped workloads (long pasted input, bounded answers) temper breadth findings."""
from distillguard.models import DetectorConfig
from distillguard.models.scoring import account_features, evidence
from distillguard.models.state import AccountState
from distillguard.models.workload_shape import WorkloadShape


def _sweep_features(in_tok: float, out_tok: float) -> dict[str, float]:
    """A full-strength reasoning sweep's features, with the given tokens per request."""
    x = account_features(AccountState())
    x.update(requests_day=500.0, capability_breadth=30.0, task_breadth=10.0, reasoning_share=0.9,
             input_tokens_per_request=in_tok, output_tokens_per_request=out_tok)
    return x


def test_shape_reads_tokens_not_words():
    shape = WorkloadShape()
    assert shape.transformation(534.0, 262.0) == 1.0     # explain a pasted article
    assert shape.transformation(110.0, 830.0) == 0.0     # a breadth sweep: short question, long answer
    assert shape.transformation(110.0, 350.0) == 0.0     # short answers, but still 3x the question
    assert shape.transformation(820.0, 840.0) == 0.0     # pasted padding, long answers kept: no relief
    assert 0.0 < shape.transformation(300.0, 300.0) < 1.0  # in between: partial
    assert shape.transformation(0.0, 0.0) == 0.0         # usage not reported: no relief


def test_transformation_shape_tempers_breadth_findings_only():
    cfg = DetectorConfig()
    sweep = evidence(_sweep_features(110.0, 830.0), cfg)
    product = evidence(_sweep_features(800.0, 260.0), cfg)
    assert sweep["capability_sweep"] == 1.0
    assert product["capability_sweep"] == round(1.0 - cfg.transformation_relief, 6) < cfg.medium
    x = _sweep_features(800.0, 260.0)
    x.update(end_user_extraction=1.0)                    # users' "areas" are what they paste, too
    assert evidence(x, cfg)["end_user_extraction"] == product["capability_sweep"]
    x.update(logprob_share=1.0)
    assert evidence(x, cfg)["logprob_probing"] == 1.0    # crisp findings keep their strength


def test_features_carry_input_tokens_per_request():
    assert account_features(AccountState())["input_tokens_per_request"] == 0.0


def test_answers_at_several_times_the_question_harvest_without_long_answers():
    shape = WorkloadShape()
    assert shape.harvest(110.0, 374.0) > 0.8          # every area, ~350-token answers, no reasoning asked
    assert shape.harvest(220.0, 260.0) == 0.0         # chat: answers about as long as the turn
    assert shape.harvest(89.0, 229.0) == 0.0          # an eval harness: short graded answers
    assert shape.harvest(0.0, 400.0) == 0.0           # usage not reported
    cfg = DetectorConfig()
    x = _sweep_features(110.0, 374.0)
    x.update(reasoning_share=0.0, long_answer_share=0.0)
    assert evidence(x, cfg)["output_harvest"] > cfg.high
    x.update(capability_breadth=18.0, task_breadth=6.0)  # the same shape over a launch day's tries
    assert evidence(x, cfg)["output_harvest"] == 0.0


def test_narrow_harvest_is_medium_at_most_and_needs_long_answers_to_short_questions():
    cfg = DetectorConfig()
    x = _sweep_features(110.0, 820.0)
    x.update(capability_breadth=10.0, task_breadth=3.8, reasoning_share=0.0, long_answer_share=0.65,
             requests_day=200.0)                      # long answers over two areas, no cue word
    ev = evidence(x, cfg)
    assert ev["capability_sweep"] == ev["output_harvest"] == 0.0
    assert cfg.medium <= ev["narrow_harvest"] == cfg.narrow_harvest_cap < cfg.high
    x.update(long_answer_share=0.2)                   # a busy user's share of long answers
    assert evidence(x, cfg)["narrow_harvest"] == 0.0
    x.update(long_answer_share=0.65, input_tokens_per_request=400.0)   # answers ~2x a long prompt
    assert evidence(x, cfg)["narrow_harvest"] == 0.0
    x.update(input_tokens_per_request=110.0, requests_day=40.0)        # a person's day
    assert evidence(x, cfg)["narrow_harvest"] == 0.0
