"""In-memory twins of the storage Protocols, for the simulator and unit tests.

Rules of this file: no I/O, deterministic, and faithful to the RocksDB stores (`rocks.py`,
`raftlog.py`); the same behavioural tests run against both.

Crash model (what `crash()` keeps), as RocksDB with one shared write-ahead log behaves:

* `MemoryRaftLogStore`: writes are buffered until `sync()`, which makes them durable together.
  `crash()` drops the buffer and returns to the last synced state.
* `MemoryKVStore`: `write(batch)` is visible at once but durable only once a later (or the same)
  write is synced: `write(sync=True)` makes every earlier write durable too. `crash()` drops
  every write not followed by a synced one.
* Pass the KV store to `MemoryRaftLogStore(kv=...)` to model the node's single RocksDB: a
  raft-log `sync()` then also makes every earlier KV write durable. A node crash is then
  `log.crash()` and `kv.crash()`.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from wukongim.store.interfaces import (
    GroupLogState,
    HardState,
    LogEntry,
    SnapshotMeta,
    WriteBatch,
)

__all__ = [
    "MemoryKVStore",
    "MemoryRaftLogStore",
    "MemoryWriteBatch",
    "check_append",
    "keeps_suffix",
]


def check_append(group: int, first_index: int, last_index: int, index: int) -> None:
    """Entries are contiguous: a new first index must lie in [first_index, last_index + 1].

    `first_index` is one past the compaction point; `last_index` is first_index - 1 for an
    empty log. A violation is a bug in the caller (the Raft core), so it raises ValueError."""
    if index < first_index or index > last_index + 1:
        raise ValueError(
            f"group {group}: append at index {index} outside [{first_index}, {last_index + 1}]"
        )


def keeps_suffix(meta: SnapshotMeta, first_index: int, last_index: int, term: int | None) -> bool:
    """Raft §7: on a snapshot, keep the entries after it only if the log holds the snapshot's
    last entry (same index and term); otherwise the whole log goes. `term` is the stored term
    at meta.index (None if not stored). A snapshot at or behind the compaction point keeps
    everything."""
    if meta.index < first_index:
        return True
    return meta.index <= last_index and term == meta.term


# --------------------------------------------------------------------------------------------
# Raft log


@dataclass(slots=True)
class _GroupLog:
    """One group's log: entries[i].index == first_index + i."""

    hard_state: HardState = field(default_factory=HardState)
    snapshot: SnapshotMeta = field(default_factory=SnapshotMeta)
    snapshot_data: bytes = b""
    first_index: int = 1
    entries: list[LogEntry] = field(default_factory=list)

    def copy(self) -> _GroupLog:
        return _GroupLog(
            self.hard_state, self.snapshot, self.snapshot_data, self.first_index, self.entries[:]
        )

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.entries) - 1

    def append(self, group: int, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        index = entries[0].index
        check_append(group, self.first_index, self.last_index, index)
        del self.entries[index - self.first_index :]
        self.entries.extend(entries)

    def compact(self, upto_index: int) -> None:
        if upto_index < self.first_index:
            return
        del self.entries[: upto_index + 1 - self.first_index]
        self.first_index = upto_index + 1

    def term(self, index: int) -> int | None:
        k = index - self.first_index
        return self.entries[k].term if 0 <= k < len(self.entries) else None

    def apply_snapshot(self, meta: SnapshotMeta, data: bytes) -> None:
        self.snapshot = meta
        self.snapshot_data = data
        if keeps_suffix(meta, self.first_index, self.last_index, self.term(meta.index)):
            self.compact(meta.index)
        else:
            self.entries.clear()
            self.first_index = meta.index + 1


_LogOp = Callable[[_GroupLog], None]


class MemoryRaftLogStore:
    """RaftLogStore in memory. `crash()` returns it to the last synced state."""

    def __init__(self, kv: MemoryKVStore | None = None) -> None:
        self._kv = kv
        self._current: dict[int, _GroupLog] = {}  # durable + buffered, for validation
        self._durable: dict[int, _GroupLog] = {}
        self._pending: list[tuple[int, _LogOp | None]] = []  # None: drop the group
        self._lock = threading.Lock()
        self.sync_count = 0  # how many syncs wrote something (tests, group commit)

    def _group(self, group: int) -> _GroupLog:
        log = self._current.get(group)
        if log is None:
            log = self._current[group] = _GroupLog()
        return log

    def append(self, group: int, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        index = entries[0].index
        if entries[-1].index != index + len(entries) - 1:
            raise ValueError(f"group {group}: entries from {index} are not contiguous")
        batch = list(entries)
        with self._lock:
            self._group(group).append(group, batch)
            self._pending.append((group, lambda log: log.append(group, batch)))

    def set_hard_state(self, group: int, hard_state: HardState) -> None:
        def op(log: _GroupLog) -> None:
            log.hard_state = hard_state

        with self._lock:
            op(self._group(group))
            self._pending.append((group, op))

    def apply_snapshot(self, group: int, meta: SnapshotMeta, data: bytes) -> None:
        with self._lock:
            self._group(group).apply_snapshot(meta, data)
            self._pending.append((group, lambda log: log.apply_snapshot(meta, data)))

    def compact(self, group: int, upto_index: int) -> None:
        with self._lock:
            self._group(group).compact(upto_index)
            self._pending.append((group, lambda log: log.compact(upto_index)))

    def drop_group(self, group: int) -> None:
        """Forget everything of a group (its replica left this node), buffered like the rest:
        after the sync it is unknown (empty state, not in `groups()`)."""
        with self._lock:
            self._current.pop(group, None)
            self._pending.append((group, None))

    def sync(self) -> None:
        with self._lock:  # the shell may call this from an executor thread
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            if self._kv is not None:
                self._kv.make_durable()
        for group, op in pending:
            if op is None:
                self._durable.pop(group, None)
                continue
            log = self._durable.get(group)
            if log is None:
                log = self._durable[group] = _GroupLog()
            op(log)
        self.sync_count += 1

    def load(self, group: int) -> GroupLogState:
        log = self._durable.get(group)
        if log is None:
            return GroupLogState(HardState(), SnapshotMeta(), b"", [])
        return GroupLogState(log.hard_state, log.snapshot, log.snapshot_data, log.entries[:])

    def groups(self) -> list[int]:
        return sorted(self._durable)

    def close(self) -> None:
        """Closing does not sync: unsynced writes stay pending and a `crash()` drops them."""

    # -- simulator hooks -------------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def crash(self) -> None:
        """Lose every write not yet synced (power loss / kill -9)."""
        self._pending = []
        self._current = {group: log.copy() for group, log in self._durable.items()}


# --------------------------------------------------------------------------------------------
# Ordered key-value store


class _SortedMap:
    """An ordered bytes -> bytes map: a dict plus a sorted key list."""

    __slots__ = ("keys", "values")

    def __init__(self) -> None:
        self.values: dict[bytes, bytes] = {}
        self.keys: list[bytes] = []

    def copy(self) -> _SortedMap:
        other = _SortedMap()
        other.values = dict(self.values)
        other.keys = self.keys[:]
        return other

    def put(self, key: bytes, value: bytes) -> None:
        if key not in self.values:
            bisect.insort(self.keys, key)
        self.values[key] = value

    def delete(self, key: bytes) -> None:
        if self.values.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]

    def delete_range(self, start: bytes, end: bytes) -> None:
        lo = bisect.bisect_left(self.keys, start)
        hi = bisect.bisect_left(self.keys, end)
        if lo >= hi:
            return
        for key in self.keys[lo:hi]:
            del self.values[key]
        del self.keys[lo:hi]

    def scan(
        self, start: bytes, end: bytes, reverse: bool, limit: int | None
    ) -> list[tuple[bytes, bytes]]:
        lo = bisect.bisect_left(self.keys, start)
        hi = bisect.bisect_left(self.keys, end)
        if lo >= hi:
            return []
        if reverse:
            lo = hi - limit if limit is not None and hi - lo > limit else lo
            keys = self.keys[lo:hi]
            keys.reverse()
        else:
            hi = lo + limit if limit is not None and hi - lo > limit else hi
            keys = self.keys[lo:hi]
        values = self.values
        return [(key, values[key]) for key in keys]


# One op of a write batch: (kind, cf, key or start, value or end); kind 0 put, 1 delete,
# 2 delete_range.
_KVOp = tuple[int, str, bytes, bytes]
_PUT, _DELETE, _DELETE_RANGE = 0, 1, 2


class MemoryWriteBatch:
    """Buffered puts and deletes, applied in order by `MemoryKVStore.write`."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[_KVOp] = []

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        self.ops.append((_PUT, cf, key, value))

    def delete(self, cf: str, key: bytes) -> None:
        self.ops.append((_DELETE, cf, key, b""))

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        self.ops.append((_DELETE_RANGE, cf, start, end))

    def __len__(self) -> int:
        return len(self.ops)


def _apply_ops(cfs: dict[str, _SortedMap], ops: Sequence[_KVOp]) -> None:
    for kind, cf, a, b in ops:
        table = cfs.get(cf)
        if table is None:
            table = cfs[cf] = _SortedMap()
        if kind == _PUT:
            table.put(a, b)
        elif kind == _DELETE:
            table.delete(a)
        else:
            table.delete_range(a, b)


class MemoryKVStore:
    """KVStore in memory, column families created on first use."""

    def __init__(self) -> None:
        self._current: dict[str, _SortedMap] = {}
        self._durable: dict[str, _SortedMap] = {}
        self._unsynced: list[list[_KVOp]] = []  # batches written since the last synced write
        self._closed = False

    def batch(self) -> MemoryWriteBatch:
        return MemoryWriteBatch()

    def write(self, batch: WriteBatch, *, sync: bool = False) -> None:
        if not isinstance(batch, MemoryWriteBatch):
            raise TypeError(f"expected a MemoryWriteBatch, got {type(batch).__name__}")
        if self._closed:
            raise RuntimeError("store is closed")
        if not batch.ops:
            if sync:
                self.make_durable()
            return
        ops = batch.ops[:]
        _apply_ops(self._current, ops)
        self._unsynced.append(ops)
        if sync:
            self.make_durable()

    def get(self, cf: str, key: bytes) -> bytes | None:
        table = self._current.get(cf)
        return None if table is None else table.values.get(key)

    def scan(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        table = self._current.get(cf)
        if table is None or (limit is not None and limit <= 0):
            return iter(())
        # A list snapshot: writes during iteration do not disturb it (as a RocksDB iterator).
        return iter(table.scan(start, end, reverse, limit))

    def close(self) -> None:
        self._closed = True

    # -- simulator hooks -------------------------------------------------------------------

    def make_durable(self) -> None:
        """Every write so far is durable (a synced write went through the shared WAL)."""
        for ops in self._unsynced:
            _apply_ops(self._durable, ops)
        self._unsynced.clear()

    def crash(self) -> None:
        """Lose every write not followed by a synced one; the store is usable again."""
        self._unsynced.clear()
        self._current = {cf: table.copy() for cf, table in self._durable.items()}
        self._closed = False
