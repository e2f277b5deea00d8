"""The start-up wait's schedule: capped exponential backoff, one line per attempt, one-line give-up."""
import itertools
import logging

import pytest

from distillguard.streams.startup import StartupTimeout, backoff_delays, wait_until_up


def test_backoff_doubles_and_is_capped():
    assert list(itertools.islice(backoff_delays(0.5, 15.0), 8)) == [0.5, 1, 2, 4, 8, 15, 15, 15]


def test_waits_with_one_line_per_attempt_then_gives_up_naming_the_fix(caplog):
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(s)
        now[0] += s

    def probe(timeout):
        raise ConnectionRefusedError("connection refused")

    with caplog.at_level(logging.INFO, logger="distillguard.startup"), pytest.raises(StartupTimeout) as err:
        wait_until_up("the broker", probe, "Start it.", deadline=20.0, clock=lambda: now[0], sleep=sleep)
    assert slept == [0.5, 1, 2, 4, 8, 4.5]           # the last wait ends at the deadline
    assert len(caplog.records) == len(slept) and all("retrying in" in r.message for r in caplog.records)
    assert str(err.value) == "gave up waiting for the broker after 7 attempts: connection refused. Start it."


def test_a_probe_that_answers_ends_the_wait():
    answers = iter([OSError("no"), OSError("no"), None])

    def probe(timeout):
        result = next(answers)
        if result:
            raise result

    assert wait_until_up("x", probe, "", deadline=100.0, clock=lambda: 0.0, sleep=lambda s: None) == 3
