"""The learned reasoning-elicitation classifier: styles it never saw, other languages, no false alarms
on ordinary requests, and wording it was not trained on (the simulator's, written separately)."""
import pytest

from distillguard.models.elicitation import ElicitationModel, default_model, load_phrases
from distillguard.models.simulation import evasive_text as E

PHRASES = load_phrases()
NEGATIVES = [t for group in PHRASES["negative"].values() for t in group]
ENGLISH_STYLES = sorted(s for s in PHRASES["positive"] if s != "non_english")


def test_held_out_english_styles_are_still_recognised():
    hits = total = 0
    for style in ENGLISH_STYLES:
        model = ElicitationModel.trained(exclude_styles=(style,))
        texts = PHRASES["positive"][style]
        got = sum(model.is_elicitation(t) for t in texts)
        assert got / len(texts) >= 0.5, style       # measured: 0.56 (show_work) .. 1.0
        hits += got
        total += len(texts)
        assert not any(model.is_elicitation(t) for t in NEGATIVES), style
    assert hits / total >= 0.75                     # measured: 0.80


def test_unseen_wording_in_other_languages_and_system_prompts():
    model = default_model()
    foreign = [w.replace("{p}", "") for _, w in E.FOREIGN_WRAPPERS]
    assert sum(map(model.is_elicitation, foreign)) / len(foreign) >= 0.9
    assert all(map(model.is_elicitation, E.SYSTEM_ELICITORS))
    assert not any(map(model.is_elicitation, E.JUDGE_SYSTEMS + E.AGENT_PLATFORM_SYSTEMS))


def test_unknown_style_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown elicitation style"):
        ElicitationModel.trained(exclude_styles=("klingon",))
