"""WindowMin against its definition: min of a deque(maxlen=size)."""
from collections import deque

import pytest
from hypothesis import given, strategies as st

from distillguard.models.window_min import WindowMin


@given(st.integers(1, 300), st.lists(st.integers(-10**15, 10**15), max_size=2000))
def test_the_minimum_of_the_last_values(size, values):
    w, window = WindowMin(size), deque(maxlen=size)
    assert w.min(empty=-1) == -1
    for v in values:
        window.append(v)
        assert w.push(v) == min(window) == w.min(empty=-1)
        assert len(w) == len(window)


def test_a_window_of_nothing_is_refused():
    with pytest.raises(ValueError):
        WindowMin(0)
