"""The memory twin's crash model (the parts RocksDB cannot show in-process)."""

from __future__ import annotations

import pytest

from wukongim.store.interfaces import HardState, KVStore, LogEntry, RaftLogStore, SnapshotMeta
from wukongim.store.memory import MemoryKVStore, MemoryRaftLogStore


def test_twins_satisfy_the_protocols() -> None:
    kv: KVStore = MemoryKVStore()
    log: RaftLogStore = MemoryRaftLogStore()
    assert kv.get("x", b"y") is None
    assert log.groups() == []


def put(kv: MemoryKVStore, key: bytes, *, sync: bool = False) -> None:
    batch = kv.batch()
    batch.put("state", key, key)
    kv.write(batch, sync=sync)


def keys(kv: MemoryKVStore) -> list[bytes]:
    return [k for k, _ in kv.scan("state", b"", b"\xff")]


def test_kv_crash_keeps_writes_up_to_the_last_synced_one() -> None:
    kv = MemoryKVStore()
    put(kv, b"a")
    put(kv, b"b", sync=True)  # makes a durable too (shared WAL)
    put(kv, b"c")
    batch = kv.batch()
    batch.delete("state", b"a")
    kv.write(batch)
    assert keys(kv) == [b"b", b"c"]  # visible before the crash
    kv.crash()
    assert keys(kv) == [b"a", b"b"]
    put(kv, b"d")
    kv.crash()
    assert keys(kv) == [b"a", b"b"]


def test_kv_without_sync_loses_everything() -> None:
    kv = MemoryKVStore()
    put(kv, b"a")
    kv.crash()
    assert keys(kv) == []


def test_raft_sync_makes_shared_kv_durable_but_not_later_writes() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv=kv)
    put(kv, b"a")
    log.append(1, [LogEntry(1, 1, 0, b"")])
    log.sync()
    put(kv, b"b")
    log.crash()
    kv.crash()
    assert keys(kv) == [b"a"]
    assert [e.index for e in log.load(1).entries] == [1]


def pending(log: MemoryRaftLogStore) -> bool:
    return log.has_pending  # through a call, so mypy does not narrow it across crash()


def test_raft_crash_returns_to_last_synced_state() -> None:
    log = MemoryRaftLogStore()
    log.append(1, [LogEntry(i, 1, 0, b"") for i in range(1, 6)])
    log.set_hard_state(1, HardState(1, 0, 0))
    log.sync()
    assert log.sync_count == 1
    log.append(1, [LogEntry(3, 2, 0, b"new")])
    log.apply_snapshot(1, SnapshotMeta(2, 1, b""), b"snap")
    log.set_hard_state(1, HardState(2, 0, 0))
    assert pending(log)
    log.crash()
    assert not pending(log)
    state = log.load(1)
    assert [e.index for e in state.entries] == [1, 2, 3, 4, 5]
    assert state.hard_state == HardState(1, 0, 0)
    assert state.snapshot == SnapshotMeta()
    # Validation follows the durable state again: index 7 would leave a gap after 5.
    with pytest.raises(ValueError, match="outside"):
        log.append(1, [LogEntry(7, 2, 0, b"")])
    log.append(1, [LogEntry(6, 2, 0, b"")])
    log.sync()
    assert log.sync_count == 2
    log.sync()  # nothing pending: not counted
    assert log.sync_count == 2


def test_loaded_entries_are_a_copy() -> None:
    log = MemoryRaftLogStore()
    log.append(1, [LogEntry(1, 1, 0, b"")])
    log.sync()
    log.load(1).entries.clear()
    assert len(log.load(1).entries) == 1
