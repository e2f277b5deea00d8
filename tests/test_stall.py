"""The stall watch (models/stall.py): the cases the sink relies on."""
from distillguard.models.stall import StallWatch


def test_progress_of_any_kind_starts_the_count_again():
    w = StallWatch(after_s=10)
    assert not w.check(0, waiting=5, committed=100, read=0)
    assert not w.check(9, waiting=5, committed=100, read=1)      # a record read
    assert not w.check(18, waiting=5, committed=100, read=0)
    assert not w.check(27, waiting=5, committed=120, read=0)     # another member committed
    assert not w.check(36, waiting=5, committed=120, read=0)
    assert w.check(46, waiting=5, committed=120, read=0)
    assert w.stalls == 1


def test_an_unanswered_check_is_no_evidence():
    w = StallWatch(after_s=10)
    assert not w.check(0, waiting=5, committed=100, read=0)
    assert not w.check(20, waiting=None, committed=None, read=0)   # broker away
    assert not w.check(21, waiting=5, committed=100, read=0)       # the count starts here
    assert not w.check(30, waiting=5, committed=100, read=0)
    assert w.check(31, waiting=5, committed=100, read=0)


def test_off_and_nothing_waiting():
    off = StallWatch(after_s=0)
    assert not any(off.check(t, waiting=5, committed=0, read=0) for t in range(0, 1000, 10))
    idle = StallWatch(after_s=10)
    assert not any(idle.check(t, waiting=0, committed=7, read=0) for t in range(0, 1000, 10))
