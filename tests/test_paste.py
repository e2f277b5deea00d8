"""Padding (models/paste.py): a question unrelated to the text pasted beside it, new each time."""
from distillguard.models.features import EventFeatures
from distillguard.models.paste import split_ask, unrelated_ask
from distillguard.models.state import C_PADDED, H_DAY, AccountState

ARTICLE = ("The harbour authority said the storm closed the northern pier for three days, and "
           "fishermen moved their boats to the southern basin while engineers inspected the damage. ") * 6


def test_question_about_the_paste_is_related():
    assert unrelated_ask(ARTICLE + "\n\nWhy did the fishermen move their boats to the southern basin?") is None


def test_question_unrelated_to_the_paste_below_or_above_it():
    q = "Question: A train leaves Lyon at noon travelling ninety kilometres per hour; when does it reach Paris?"
    assert unrelated_ask(ARTICLE + "\n\n" + q) == q
    assert unrelated_ask(q + "\n\n" + ARTICLE) == q


def test_no_paste_no_verdict():
    assert split_ask("Short question?\n\nShort context.") is None
    assert unrelated_ask("What is the capital of France?") is None
    assert unrelated_ask(ARTICLE) is None                       # no paragraph break: no ask
    assert unrelated_ask(ARTICLE + "\n\nok thanks") is None     # too few content words to judge


def test_non_ascii_ask_gets_no_verdict():
    assert unrelated_ask(ARTICLE + "\n\nQuestion : combien de kilomètres sépare Lyon de Paris en train ?") is None


def _event(i: int, ask_fp: int) -> EventFeatures:
    return EventFeatures(i * 1000, f"e{i}", i, i + 1, 3, False, False, False, 0, False, False, 900, 250,
                         False, "m", unrelated_ask=ask_fp)


def test_repeated_instruction_is_not_padding_but_new_questions_are():
    fixed, sweep = AccountState(), AccountState()
    for i in range(40):
        fixed.learn_one(_event(i, 7 + i % 3))       # a product's three fixed instructions after the paste
        sweep.learn_one(_event(i, 1000 + i))       # a new unrelated question every time
    assert fixed.share(C_PADDED, H_DAY) < 0.1
    assert sweep.share(C_PADDED, H_DAY) > 0.95


def test_state_round_trip_keeps_the_ask_ring():
    s = AccountState()
    for i in range(5):
        s.learn_one(_event(i, 1000 + i))
    back = AccountState.from_bytes(s.to_bytes())
    back.learn_one(_event(6, 1004))                  # seen before the round trip: not new
    assert round(back.count(C_PADDED, H_DAY)) == 5
