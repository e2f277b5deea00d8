"""Where the detect agent writes account states (streams/app.py ``_save_states``).

Faust's table sends a write to the changelog partition of ``faust.streams.current_event()``;
the recording table below reads that same function, so these tests see the partition each
state would be written to. A state changed without an event of its own in the batch (an alert
closed by the batch's clock) must still reach the changelog, or a restarted worker would hold
the alert open and close it a second time."""
from types import SimpleNamespace

from faust.streams import current_event

from distillguard.models.state import AccountState
from distillguard.streams.app import StateCache, _save_states


class RecordingTable(dict):
    """A table that remembers the changelog partition of each write and deletion."""

    def __init__(self):
        super().__init__()
        self.writes: list[tuple[str, int]] = []

    def __setitem__(self, key, value):
        self.writes.append((key, current_event().message.partition))
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.writes.append((f"-{key}", current_event().message.partition))
        super().__delitem__(key)


class _Event:
    """What ``_save_states`` and Faust's table read of an event: its message's partition
    (weakly referenced, as Faust holds the current event)."""

    def __init__(self, partition: int):
        self.message = SimpleNamespace(partition=partition)


_event = _Event


def _cache_with(table, **partition_of):
    cache = StateCache(table)
    for account, partition in partition_of.items():
        cache.local[account] = AccountState()
        cache.partition[account] = partition
    return cache


def test_each_account_with_an_event_is_written_under_its_own_event():
    table = RecordingTable()
    cache = _cache_with(table)
    cache["a"] = AccountState()
    cache["b"] = AccountState()
    _save_states(cache, table, {"a": _event(0), "b": _event(3)})
    assert sorted(table.writes) == [("a", 0), ("b", 3)]
    assert not cache.dirty and cache.partition == {"a": 0, "b": 3}


def test_a_state_changed_without_its_own_event_is_written_to_its_partition():
    table = RecordingTable()
    cache = _cache_with(table, closed=2)
    cache["closed"] = cache.local["closed"]   # as ``advance`` closing its alert writes it back
    cache["busy"] = AccountState()
    _save_states(cache, table, {"busy": _event(2)})
    assert sorted(table.writes) == [("busy", 2), ("closed", 2)]
    assert not cache.dirty


def test_a_state_whose_partition_has_no_event_waits_for_a_batch_that_has_one():
    table = RecordingTable()
    cache = _cache_with(table, closed=1)
    cache["closed"] = cache.local["closed"]
    cache["busy"] = AccountState()
    _save_states(cache, table, {"busy": _event(0)})
    assert table.writes == [("busy", 0)]
    assert cache.dirty == {"closed"}            # kept, not dropped
    _save_states(cache, table, {"other": _event(1)})
    assert table.writes[-1] == ("closed", 1)
    assert not cache.dirty


def test_a_deletion_waits_for_an_event_of_its_partition():
    table = RecordingTable()
    dict.__setitem__(table, "gone", b"old")
    cache = _cache_with(table, gone=4)
    del cache["gone"]
    _save_states(cache, table, {"x": _event(0)})
    assert table.writes == [] and cache.to_delete == {"gone": 4}
    _save_states(cache, table, {"y": _event(4)})
    assert table.writes == [("-gone", 4)] and "gone" not in table and not cache.to_delete


def test_an_account_back_before_its_tombstone_is_written_keeps_its_state():
    table = RecordingTable()
    dict.__setitem__(table, "back", b"old")
    cache = _cache_with(table, back=4)
    del cache["back"]                      # expired; no event of partition 4 in this batch
    _save_states(cache, table, {"x": _event(0)})
    cache["back"] = AccountState()         # its next event, before the tombstone went out
    _save_states(cache, table, {"back": _event(4)})
    assert table.writes == [("back", 4)] and "back" in table and not cache.to_delete
