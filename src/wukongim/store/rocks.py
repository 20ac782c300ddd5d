"""The node's one RocksDB (through rocksdict), as a KVStore over named column families.

Rules of this file: everything is bytes (rocksdict raw mode); column families are created on
first use and reopened automatically; the raft log (`raftlog.py`) shares this database, so one
write-ahead log orders every write of the node: a synced write makes all earlier writes durable.

Threads: RocksDB is thread-safe and rocksdict releases the GIL while writing, so the raft-log
`sync()` may run in an executor thread while the event loop thread writes state batches here.
Creating a column family is guarded by a lock.

CPU priority: RocksDB's flush and compaction threads ("rocksdb:*") get the lowest priority
(nice 19, Linux) when the database opens. A memtable flush costs 0.1-0.3 s of CPU at once; at
the same priority it takes half of the event loop's core for that long while messages wait (at
window 16 with the server on one core: +9% msg/s with nice 19, docs/benchmarks.md session 3).
At nice 19 the flush runs in the loop's idle time; should it fall behind, RocksDB's own write
stall throttles the writers, which frees the CPU for it.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from rocksdict import (
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from wukongim.store.interfaces import WriteBatch as WriteBatchProtocol

__all__ = ["RocksKVStore", "RocksWriteBatch"]

logger = logging.getLogger(__name__)

_Items = Iterator[tuple[bytes, bytes]]  # rocksdict's stubs type keys loosely; raw mode is bytes

_WRITE_BUFFER_BYTES = 64 * 1024 * 1024
_BLOCK_CACHE_BYTES = 128 * 1024 * 1024  # shared by all column families
_LOG_CFS = frozenset({"raftlog"})  # append-mostly, short-lived: no compression


def _db_options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    options.set_max_background_jobs(2)
    options.set_max_total_wal_size(256 * 1024 * 1024)
    options.set_keep_log_file_num(4)
    return options


def _cf_options(name: str, cache: Cache) -> Options:
    table = BlockBasedOptions()
    table.set_block_cache(cache)
    if name not in _LOG_CFS:
        table.set_bloom_filter(10, False)  # point lookups (tokens, users, channels)
    options = Options(raw_mode=True)
    options.set_block_based_table_factory(table)
    options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(4)
    options.set_level_zero_file_num_compaction_trigger(4)
    options.set_target_file_size_base(_WRITE_BUFFER_BYTES)
    if name in _LOG_CFS:
        options.set_compression_type(DBCompressionType.none())
    else:
        options.set_compression_type(DBCompressionType.lz4())
    return options


class RocksWriteBatch:
    """A rocksdict WriteBatch whose column families are named. Write it once."""

    __slots__ = ("_handles", "_store", "raw")

    def __init__(self, store: RocksKVStore) -> None:
        self._store = store
        self._handles = store._handles  # name -> ColumnFamily, filled on demand
        self.raw = WriteBatch(raw_mode=True)

    def put(self, cf: str, key: bytes, value: bytes) -> None:
        handle = self._handles.get(cf) or self._store.handle(cf)
        self.raw.put(key, value, handle)

    def delete(self, cf: str, key: bytes) -> None:
        handle = self._handles.get(cf) or self._store.handle(cf)
        self.raw.delete(key, handle)

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        if start >= end:
            return  # RocksDB rejects an empty or inverted range; it deletes nothing anyway
        handle = self._handles.get(cf) or self._store.handle(cf)
        self.raw.delete_range(start, end, handle)

    def __len__(self) -> int:
        return int(self.raw.len())


BACKGROUND_NICE = 19
_TASKS = Path("/proc/self/task")


def lower_background_priority(nice: int = BACKGROUND_NICE) -> int:
    """Set RocksDB's background threads of this process ("rocksdb:*") to `nice` (see the module
    docstring); returns how many it set. Where /proc is missing (not Linux) it does nothing."""
    try:
        tids = os.listdir(_TASKS)
    except OSError:
        return 0
    lowered = 0
    for tid in tids:
        try:
            name = (_TASKS / tid / "comm").read_text().strip()
            if name.startswith("rocksdb:"):
                os.setpriority(os.PRIO_PROCESS, int(tid), nice)
                lowered += 1
        except OSError:  # the thread ended meanwhile, or we may not renice it
            continue
    return lowered


class RocksKVStore:
    """KVStore over one RocksDB. Open it with `RocksKVStore.open(data_dir)`."""

    def __init__(self, db: Rdict, path: Path, cf_names: Iterable[str], cache: Cache) -> None:
        self.db = db
        self.path = path
        self._cache = cache  # must outlive the database
        self._lock = threading.Lock()
        self._handles: dict[str, Any] = {}  # name -> rocksdict ColumnFamily
        self._tables: dict[str, Rdict] = {}  # name -> column-family view, for reads
        for name in cf_names:
            self._handles[name] = db.get_column_family_handle(name)
            self._tables[name] = db.get_column_family(name)
        self._sync_options = WriteOptions()
        self._sync_options.sync = True
        self._async_options = WriteOptions()
        self._closed = False

    @classmethod
    def open(cls, path: Path | str, column_families: Iterable[str] = ()) -> RocksKVStore:
        """Open (or create) the node's database under `path`, with every column family it
        already has plus `column_families`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        names = set(column_families) | {"default"}
        if (path / "CURRENT").exists():
            names |= set(Rdict.list_cf(str(path), _db_options()))
        cache = Cache(_BLOCK_CACHE_BYTES)
        cfs = {name: _cf_options(name, cache) for name in sorted(names) if name != "default"}
        db = Rdict(str(path), _db_options(), column_families=cfs)
        lowered = lower_background_priority()
        logger.info(
            "opened RocksDB at %s with column families %s (%d background threads at nice %d)",
            path,
            sorted(names),
            lowered,
            BACKGROUND_NICE,
        )
        return cls(db, path, sorted(names), cache)

    def handle(self, cf: str) -> Any:
        """The rocksdict ColumnFamily handle of `cf`, created if it does not exist yet."""
        handle = self._handles.get(cf)
        if handle is None:
            with self._lock:
                handle = self._handles.get(cf)
                if handle is None:
                    self._tables[cf] = self.db.create_column_family(
                        cf, _cf_options(cf, self._cache)
                    )
                    handle = self._handles[cf] = self.db.get_column_family_handle(cf)
                    logger.info("created column family %s", cf)
        return handle

    def table(self, cf: str) -> Rdict:
        """A read view of column family `cf` (created if needed)."""
        table = self._tables.get(cf)
        if table is None:
            self.handle(cf)
            table = self._tables[cf]
        return table

    def batch(self) -> RocksWriteBatch:
        return RocksWriteBatch(self)

    def write(self, batch: WriteBatchProtocol, *, sync: bool = False) -> None:
        if not isinstance(batch, RocksWriteBatch):
            raise TypeError(f"expected a RocksWriteBatch, got {type(batch).__name__}")
        self.write_raw(batch.raw, sync=sync)

    def write_raw(self, raw: WriteBatch, *, sync: bool) -> None:
        """Write a rocksdict WriteBatch (consumed). Blocking; releases the GIL."""
        if raw.is_empty():
            return
        self.db.write(raw, self._sync_options if sync else self._async_options)

    def get(self, cf: str, key: bytes) -> bytes | None:
        table = self._tables.get(cf)
        if table is None:
            return None  # a column family never written: nothing to read (and none created)
        value: bytes | None = table.get(key)
        return value

    def scan(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        if start >= end or (limit is not None and limit <= 0):
            return iter(())
        table = self._tables.get(cf)
        if table is None:
            return iter(())
        read_options = ReadOptions()
        read_options.set_iterate_upper_bound(end)
        items: Iterator[tuple[bytes, bytes]]
        if reverse:
            # rocksdict does not honour the lower bound: stop at `start` ourselves.
            backwards = cast(_Items, table.items(backwards=True, read_opt=read_options))
            items = itertools.takewhile(lambda item: item[0] >= start, backwards)
        else:
            items = cast(_Items, table.items(from_key=start, read_opt=read_options))
        return items if limit is None else itertools.islice(items, limit)

    def close(self) -> None:
        """Close the database (without a sync: durability comes from synced writes)."""
        if self._closed:
            return
        self._closed = True
        self._tables.clear()
        self._handles.clear()
        self.db.close()
