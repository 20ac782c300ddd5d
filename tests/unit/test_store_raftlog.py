"""RaftLogStore behaviour, run against the memory twin and RocksDB alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.test_store_support import StoreHarness, make_harness
from wukongim.store.interfaces import GroupLogState, HardState, LogEntry, SnapshotMeta


@pytest.fixture(params=["memory", "rocks"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreHarness]:
    harness = make_harness(request.param, tmp_path / "db")
    yield harness
    harness.close()


def entries(first: int, last: int, term: int = 1, tag: bytes = b"") -> list[LogEntry]:
    return [LogEntry(i, term, i % 2, b"payload-%d" % i + tag) for i in range(first, last + 1)]


def indexes(state: GroupLogState) -> list[int]:
    return [e.index for e in state.entries]


def test_unknown_group_loads_empty(stores: StoreHarness) -> None:
    state = stores.log.load(7)
    assert state == GroupLogState(HardState(), SnapshotMeta(), b"", [])
    assert stores.log.groups() == []


def test_round_trip_after_sync(stores: StoreHarness) -> None:
    log = stores.log
    written = entries(1, 50)
    written.append(LogEntry(51, 2, 1, b""))
    written.append(LogEntry(52, 2**40, 0, bytes(range(256)) * 10))
    log.append(3, written)
    log.set_hard_state(3, HardState(term=2**40, vote=5, commit=40))
    log.append(2**32 - 1, entries(1, 2))
    log.sync()
    for _ in range(2):  # before and after a restart
        state = log.load(3)
        assert state.entries == written
        assert state.hard_state == HardState(term=2**40, vote=5, commit=40)
        assert state.snapshot == SnapshotMeta()
        assert log.load(2**32 - 1).entries == entries(1, 2)
        assert log.groups() == [3, 2**32 - 1]
        stores.restart()
        log = stores.log


def test_unsynced_writes_are_lost_on_restart(stores: StoreHarness) -> None:
    stores.log.append(1, entries(1, 3))
    stores.log.set_hard_state(1, HardState(1, 1, 1))
    stores.log.sync()
    stores.log.append(1, entries(4, 6))
    stores.log.set_hard_state(1, HardState(2, 2, 2))
    stores.log.append(9, entries(1, 1))
    assert indexes(stores.log.load(1)) == [1, 2, 3]  # load returns the durable state only
    stores.restart()
    state = stores.log.load(1)
    assert indexes(state) == [1, 2, 3]
    assert state.hard_state == HardState(1, 1, 1)
    assert stores.log.groups() == [1]
    # The store goes on from the durable state: appending 4 is allowed again.
    stores.log.append(1, entries(4, 4, term=3))
    stores.log.sync()
    assert stores.log.load(1).entries[-1] == LogEntry(4, 3, 0, b"payload-4")


def test_append_truncates_conflicting_suffix(stores: StoreHarness) -> None:
    log = stores.log
    log.append(1, entries(1, 10))
    log.sync()
    log.append(1, entries(6, 7, term=2, tag=b"-new"))
    log.sync()
    state = log.load(1)
    assert indexes(state) == [1, 2, 3, 4, 5, 6, 7]
    assert state.entries[5:] == entries(6, 7, term=2, tag=b"-new")
    stores.restart()
    assert stores.log.load(1).entries == entries(1, 5) + entries(6, 7, term=2, tag=b"-new")


def test_truncation_within_one_unsynced_buffer(stores: StoreHarness) -> None:
    log = stores.log
    log.append(1, entries(1, 5))
    log.append(1, entries(3, 4, term=2))
    log.append(1, entries(5, 5, term=3))
    log.append(1, entries(1, 1, term=4))  # rewrite everything
    log.append(1, entries(2, 3, term=4))
    log.sync()
    assert log.load(1).entries == entries(1, 3, term=4)
    stores.restart()
    assert stores.log.load(1).entries == entries(1, 3, term=4)


def test_append_with_a_gap_is_rejected(stores: StoreHarness) -> None:
    stores.log.append(1, entries(1, 3))
    with pytest.raises(ValueError, match="outside"):
        stores.log.append(1, entries(5, 6))
    with pytest.raises(ValueError, match="outside"):
        stores.log.append(2, entries(2, 2))


def test_compact_drops_prefix(stores: StoreHarness) -> None:
    log = stores.log
    log.append(1, entries(1, 20))
    log.append(2, entries(1, 20))
    log.sync()
    log.compact(1, 12)
    log.compact(1, 5)  # already compacted: no-op
    log.sync()
    assert indexes(log.load(1)) == list(range(13, 21))
    assert indexes(log.load(2)) == list(range(1, 21))  # other groups untouched
    with pytest.raises(ValueError, match="outside"):
        log.append(1, entries(12, 12))
    log.append(1, entries(13, 14, term=2))
    log.sync()
    stores.restart()
    assert stores.log.load(1).entries == entries(13, 14, term=2)
    stores.log.compact(1, 14)
    stores.log.sync()
    stores.restart()
    assert stores.log.load(1).entries == []
    stores.log.append(1, entries(15, 15))  # compaction point survives restart
    stores.log.sync()
    assert indexes(stores.log.load(1)) == [15]


def test_snapshot_replaces_covered_entries(stores: StoreHarness) -> None:
    log = stores.log
    log.append(4, entries(1, 10))
    log.set_hard_state(4, HardState(1, 2, 8))
    log.sync()
    meta = SnapshotMeta(index=7, term=1, conf=b"\x01\x02\x03")
    log.apply_snapshot(4, meta, b"state-bytes" * 100)
    log.sync()
    for _ in range(2):
        state = stores.log.load(4)
        assert state.snapshot == meta
        assert state.snapshot_data == b"state-bytes" * 100
        assert indexes(state) == [8, 9, 10]
        assert state.hard_state == HardState(1, 2, 8)
        stores.restart()
    # A snapshot past the end of the log empties it; appends go on after the snapshot.
    meta2 = SnapshotMeta(index=100, term=5, conf=b"")
    stores.log.apply_snapshot(4, meta2, b"")
    stores.log.append(4, entries(101, 102, term=5))
    stores.log.sync()
    stores.restart()
    state = stores.log.load(4)
    assert state.snapshot == meta2
    assert state.snapshot_data == b""
    assert indexes(state) == [101, 102]


def test_many_groups_listed(stores: StoreHarness) -> None:
    for group in (0, 1, 255, 256, 70000):
        stores.log.set_hard_state(group, HardState(term=group + 1))
    stores.log.sync()
    stores.restart()
    assert stores.log.groups() == [0, 1, 255, 256, 70000]
    assert stores.log.load(256).hard_state == HardState(term=257)


def test_empty_sync_is_harmless(stores: StoreHarness) -> None:
    stores.log.sync()
    stores.log.append(1, [])
    stores.log.sync()
    assert stores.log.groups() == []


def terms_log(stores: StoreHarness, group: int) -> None:
    """Entries 1-10 in term 1, 11-20 in term 2, 21-25 in term 4."""
    stores.log.append(group, entries(1, 10, term=1))
    stores.log.append(group, entries(11, 20, term=2))
    stores.log.append(group, entries(21, 22, term=3) + entries(23, 25, term=4))
    stores.log.append(group, entries(21, 25, term=4))  # truncates and rewrites 21-25


@pytest.mark.parametrize("synced_first", [False, True])
def test_snapshot_matching_term_keeps_suffix(stores: StoreHarness, synced_first: bool) -> None:
    terms_log(stores, 1)
    if synced_first:  # the term lookup then reads the disk instead of the buffer
        stores.log.sync()
        stores.restart()
    stores.log.apply_snapshot(1, SnapshotMeta(15, 2, b""), b"s")
    stores.log.sync()
    stores.restart()
    state = stores.log.load(1)
    assert state.entries == entries(16, 20, term=2) + entries(21, 25, term=4)
    assert state.snapshot == SnapshotMeta(15, 2, b"")


@pytest.mark.parametrize("synced_first", [False, True])
@pytest.mark.parametrize(("index", "term"), [(15, 3), (21, 3), (30, 4)])
def test_snapshot_replacing_the_log_drops_every_entry(
    stores: StoreHarness, synced_first: bool, index: int, term: int
) -> None:
    terms_log(stores, 1)
    if synced_first:
        stores.log.sync()
        stores.restart()
    stores.log.apply_snapshot(1, SnapshotMeta(index, term, b"c"), b"s")
    with pytest.raises(ValueError, match="outside"):
        stores.log.append(1, entries(index + 2, index + 2))
    stores.log.append(1, entries(index + 1, index + 1, term=term))
    stores.log.sync()
    stores.restart()
    state = stores.log.load(1)
    assert state.snapshot == SnapshotMeta(index, term, b"c")
    assert state.entries == entries(index + 1, index + 1, term=term)


def test_snapshot_behind_compaction_point_keeps_entries(stores: StoreHarness) -> None:
    stores.log.append(1, entries(1, 10))
    stores.log.compact(1, 5)
    stores.log.apply_snapshot(1, SnapshotMeta(5, 1, b""), b"again")  # at the compaction point
    stores.log.sync()
    stores.restart()
    assert indexes(stores.log.load(1)) == list(range(6, 11))
    assert stores.log.load(1).snapshot_data == b"again"


def test_drop_group(stores: StoreHarness) -> None:
    log = stores.log
    log.append(1, entries(1, 10))
    log.append(2, entries(1, 3))
    log.set_hard_state(1, HardState(3, 1, 2))
    log.apply_snapshot(1, SnapshotMeta(4, 1, b""), b"data")
    log.sync()
    log.drop_group(1)  # type: ignore[attr-defined]
    log.sync()
    stores.restart()
    assert stores.log.groups() == [2]
    assert stores.log.load(1) == GroupLogState(HardState(), SnapshotMeta(), b"", [])
    stores.log.drop_group(1)  # type: ignore[attr-defined]
    stores.log.append(1, entries(1, 2, term=9))  # the group can start over from index 1
    stores.log.sync()
    stores.restart()
    assert stores.log.load(1).entries == entries(1, 2, term=9)
    assert indexes(stores.log.load(2)) == [1, 2, 3]


def test_drop_then_reuse_in_one_buffer(stores: StoreHarness) -> None:
    stores.log.append(1, entries(1, 10))
    stores.log.sync()
    stores.log.drop_group(1)  # type: ignore[attr-defined]
    stores.log.append(1, entries(1, 3, term=5))
    stores.log.apply_snapshot(1, SnapshotMeta(2, 5, b""), b"")  # term lookup in the buffer
    stores.log.sync()
    stores.restart()
    assert stores.log.load(1).entries == entries(3, 3, term=5)
