"""RaftLogStore over the node's RocksDB, in its own column family "raftlog".

Rules of this file: every mutation is buffered into one pending rocksdict WriteBatch; `sync()`
swaps it out and writes it with sync=True (fsync) as a single batch, the group commit. Because
the database (and its write-ahead log) is shared with the state store, that synced write also
makes every earlier state write durable.

Key layout (all big-endian, so keys sort by group, then kind, then index):

    group u32 | kind u8 [| index u64]

    kind 0x00 hard state       value: term u64, vote u64, commit u64
    kind 0x01 snapshot meta    value: index u64, term u64, conf bytes
    kind 0x02 snapshot data    value: bytes
    kind 0x03 first index      value: u64, the first index not compacted away
    kind 0x10 entry + index    value: term u64, kind u8, data bytes

Threads: the buffering methods run on the event loop thread and `sync()` in an executor thread;
a lock guards the pending batch and the per-group bounds. At most one `sync()` at a time.
After a failed `sync()` the store refuses further use (the buffered writes are lost, so its
view of the log no longer matches the disk): the node must restart and `load()`.
"""

from __future__ import annotations

import bisect
import logging
import struct
import threading
from collections.abc import Sequence
from typing import Any

from rocksdict import ReadOptions, WriteBatch

from wukongim.store.interfaces import GroupLogState, HardState, LogEntry, SnapshotMeta
from wukongim.store.memory import check_append, keeps_suffix
from wukongim.store.rocks import RocksKVStore

__all__ = ["LOG_CF", "RocksRaftLogStore", "StoreFailedError"]

logger = logging.getLogger(__name__)

LOG_CF = "raftlog"

_HARD_STATE, _SNAPSHOT_META, _SNAPSHOT_DATA, _FIRST_INDEX, _ENTRY = 0x00, 0x01, 0x02, 0x03, 0x10

_GROUP_KEY = struct.Struct(">IB")
_ENTRY_KEY = struct.Struct(">IBQ")
_ENTRY_HEADER = struct.Struct(">QB")
_HARD_STATE_VALUE = struct.Struct(">QQQ")
_SNAPSHOT_VALUE = struct.Struct(">QQ")
_U64 = struct.Struct(">Q")
_GROUP_MAX = 0xFFFFFFFF


class StoreFailedError(RuntimeError):
    """A sync failed earlier (or the store was closed); the store must be reopened."""


def _entry_key(group: int, index: int) -> bytes:
    return _ENTRY_KEY.pack(group, _ENTRY, index)


class _Bounds:
    """A group's log as buffered: first and last index, and the terms of the entries appended
    since the bounds were read from disk, as runs (`starts[k]` is the first index of a run of
    `terms[k]`; the runs reach `last`). Terms only grow in a Raft log, so runs are few."""

    __slots__ = ("first", "last", "starts", "terms")

    def __init__(self, first: int, last: int) -> None:
        self.first = first
        self.last = last
        self.starts: list[int] = []
        self.terms: list[int] = []

    def appended(self, entries: Sequence[LogEntry]) -> None:
        index = entries[0].index
        starts, terms = self.starts, self.terms
        k = bisect.bisect_left(starts, index)
        del starts[k:], terms[k:]
        term = entries[0].term
        if not terms or terms[-1] != term:
            starts.append(index)
            terms.append(term)
        if entries[-1].term != term:
            for entry in entries:
                if entry.term != terms[-1]:
                    starts.append(entry.index)
                    terms.append(entry.term)
        self.last = entries[-1].index

    def compacted(self, upto_index: int) -> None:
        self.first = upto_index + 1
        self.last = max(self.last, upto_index)
        starts, terms = self.starts, self.terms
        k = bisect.bisect_right(starts, self.first) - 1
        if k > 0:
            del starts[:k], terms[:k]
        if starts and starts[0] < self.first:
            starts[0] = self.first
        if self.last < self.first:
            starts.clear()
            terms.clear()

    def term(self, index: int) -> int | None:
        """The term at `index` if it was appended since the bounds were read."""
        starts = self.starts
        if not starts or index < starts[0] or index > self.last:
            return None
        return self.terms[bisect.bisect_right(starts, index) - 1]


class RocksRaftLogStore:
    """RaftLogStore in column family "raftlog" of the node's database.

    `fsync=False` writes each batch without fsync: it survives a process crash but not a power
    loss. Only for benchmarks."""

    def __init__(self, kv: RocksKVStore, *, fsync: bool = True) -> None:
        self._kv = kv
        self._fsync = fsync
        self._table: Any = kv.table(LOG_CF)  # raw mode: bytes keys and values
        self._cf = kv.handle(LOG_CF)
        self._lock = threading.Lock()
        self._batch = WriteBatch(raw_mode=True)
        self._bounds: dict[int, _Bounds] = {}  # per group touched since open
        self._failed = False
        self.sync_count = 0

    # -- buffering (event loop thread) -----------------------------------------------------

    def _group_bounds(self, group: int) -> _Bounds:
        bounds = self._bounds.get(group)
        if bounds is None:
            bounds = self._bounds[group] = self._read_bounds(group)
        return bounds

    def _read_bounds(self, group: int) -> _Bounds:
        """First and last index from disk; only for a group with nothing buffered."""
        first = 1
        marker = self._table.get(_GROUP_KEY.pack(group, _FIRST_INDEX))
        if marker is not None:
            first = _U64.unpack(marker)[0]
        read_options = ReadOptions()
        read_options.set_iterate_upper_bound(_GROUP_KEY.pack(group, _ENTRY + 1))
        for key in self._table.keys(backwards=True, read_opt=read_options):
            if key[:5] == _GROUP_KEY.pack(group, _ENTRY):
                return _Bounds(first, max(first - 1, _ENTRY_KEY.unpack(key)[2]))
            break
        return _Bounds(first, first - 1)

    def _term(self, group: int, bounds: _Bounds, index: int) -> int | None:
        """The term of the entry at `index` (buffered or on disk), None if not stored."""
        if not bounds.first <= index <= bounds.last:
            return None
        term = bounds.term(index)
        if term is not None:
            return term
        # Not appended since the bounds were read: on disk, and no sync in flight touches it.
        value = self._table.get(_entry_key(group, index))
        return None if value is None else int(_ENTRY_HEADER.unpack_from(value)[0])

    def _check(self) -> None:
        if self._failed:
            raise StoreFailedError("raft log store failed a sync or was closed; reopen it")

    def append(self, group: int, entries: Sequence[LogEntry]) -> None:
        if not entries:
            return
        index = entries[0].index
        last = entries[-1].index
        if last != index + len(entries) - 1:
            raise ValueError(f"group {group}: entries {index}..{last} are not contiguous")
        with self._lock:
            self._check()
            bounds = self._group_bounds(group)
            check_append(group, bounds.first, bounds.last, index)
            batch = self._batch
            cf = self._cf
            if index <= bounds.last:
                batch.delete_range(_entry_key(group, index), _entry_key(group, bounds.last + 1), cf)
            put = batch.put
            pack_key = _ENTRY_KEY.pack
            pack_header = _ENTRY_HEADER.pack
            for entry in entries:
                put(
                    pack_key(group, _ENTRY, entry.index),
                    pack_header(entry.term, entry.kind) + entry.data,
                    cf,
                )
            bounds.appended(entries)

    def set_hard_state(self, group: int, hard_state: HardState) -> None:
        value = _HARD_STATE_VALUE.pack(hard_state.term, hard_state.vote, hard_state.commit)
        with self._lock:
            self._check()
            self._group_bounds(group)
            self._batch.put(_GROUP_KEY.pack(group, _HARD_STATE), value, self._cf)

    def apply_snapshot(self, group: int, meta: SnapshotMeta, data: bytes) -> None:
        meta_value = _SNAPSHOT_VALUE.pack(meta.index, meta.term) + meta.conf
        with self._lock:
            self._check()
            bounds = self._group_bounds(group)
            batch = self._batch
            batch.put(_GROUP_KEY.pack(group, _SNAPSHOT_META), meta_value, self._cf)
            batch.put(_GROUP_KEY.pack(group, _SNAPSHOT_DATA), data, self._cf)
            term = self._term(group, bounds, meta.index)
            if keeps_suffix(meta, bounds.first, bounds.last, term):
                self._compact_locked(group, meta.index)
                return
            # The snapshot replaces the whole log (Raft §7).
            batch.delete_range(
                _GROUP_KEY.pack(group, _ENTRY), _GROUP_KEY.pack(group, _ENTRY + 1), self._cf
            )
            batch.put(_GROUP_KEY.pack(group, _FIRST_INDEX), _U64.pack(meta.index + 1), self._cf)
            self._bounds[group] = _Bounds(meta.index + 1, meta.index)

    def compact(self, group: int, upto_index: int) -> None:
        with self._lock:
            self._check()
            self._compact_locked(group, upto_index)

    def _compact_locked(self, group: int, upto_index: int) -> None:
        bounds = self._group_bounds(group)
        if upto_index < bounds.first:
            return
        self._batch.delete_range(
            _entry_key(group, bounds.first), _entry_key(group, upto_index + 1), self._cf
        )
        self._batch.put(_GROUP_KEY.pack(group, _FIRST_INDEX), _U64.pack(upto_index + 1), self._cf)
        bounds.compacted(upto_index)

    def drop_group(self, group: int) -> None:
        """Forget everything of a group (its replica left this node), buffered like the rest:
        after the sync it is unknown (empty state, not in `groups()`). Not in the Protocol."""
        with self._lock:
            self._check()
            self._batch.delete_range(
                _GROUP_KEY.pack(group, 0), _GROUP_KEY.pack(group, 0xFF), self._cf
            )
            self._bounds[group] = _Bounds(1, 0)

    # -- group commit (executor thread) ----------------------------------------------------

    def sync(self) -> None:
        with self._lock:
            self._check()
            batch = self._batch
            if batch.is_empty():
                return
            self._batch = WriteBatch(raw_mode=True)
        try:
            self._kv.write_raw(batch, sync=self._fsync)
        except BaseException:
            self._failed = True
            logger.exception("raft log sync failed; the store must be reopened")
            raise
        self.sync_count += 1

    # -- recovery --------------------------------------------------------------------------

    def load(self, group: int) -> GroupLogState:
        table = self._table
        hard_state = HardState()
        raw = table.get(_GROUP_KEY.pack(group, _HARD_STATE))
        if raw is not None:
            hard_state = HardState(*_HARD_STATE_VALUE.unpack(raw))
        snapshot = SnapshotMeta()
        raw = table.get(_GROUP_KEY.pack(group, _SNAPSHOT_META))
        if raw is not None:
            index, term = _SNAPSHOT_VALUE.unpack_from(raw)
            snapshot = SnapshotMeta(index, term, raw[_SNAPSHOT_VALUE.size :])
        snapshot_data = table.get(_GROUP_KEY.pack(group, _SNAPSHOT_DATA)) or b""
        return GroupLogState(hard_state, snapshot, snapshot_data, self.entries(group))

    def entries(self, group: int, low: int = 0, high: int = 2**64 - 1) -> list[LogEntry]:
        """Durable entries of `group` with low <= index < high, in order (a range read)."""
        read_options = ReadOptions()
        read_options.set_iterate_upper_bound(_entry_key(group, high))
        items = list(self._table.items(from_key=_entry_key(group, low), read_opt=read_options))
        if not items:
            return []
        # Stored entries are contiguous (append enforces it): decode the first and last keys only.
        first = _ENTRY_KEY.unpack(items[0][0])[2]
        last = _ENTRY_KEY.unpack(items[-1][0])[2]
        if last - first + 1 != len(items):
            raise RuntimeError(f"group {group}: stored log has a gap in [{first}, {last}]")
        unpack_header = _ENTRY_HEADER.unpack_from
        header_size = _ENTRY_HEADER.size
        entries = []
        index = first
        for _, value in items:
            term, kind = unpack_header(value)
            entries.append(LogEntry(index, term, kind, value[header_size:]))
            index += 1
        return entries

    def groups(self) -> list[int]:
        found: list[int] = []
        group = 0
        while True:
            keys = self._table.keys(from_key=_GROUP_KEY.pack(group, 0))
            key = next(iter(keys), None)
            if key is None:
                return found
            group = _GROUP_KEY.unpack_from(key)[0]
            found.append(group)
            if group == _GROUP_MAX:
                return found
            group += 1

    def close(self) -> None:
        """Drop the unsynced buffer (as a crash would) and release the database, which the
        KVStore owns: close that one last."""
        with self._lock:
            self._failed = True  # any later use raises StoreFailedError
            self._batch = WriteBatch(raw_mode=True)
            self._bounds.clear()
            del self._table, self._cf
