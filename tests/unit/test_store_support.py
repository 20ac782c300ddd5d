"""A node's two stores behind one restart operation, for the memory twin and for RocksDB.

`restart()` models a process death: the raft log loses its unsynced buffer in both twins (it
lives in process memory until `sync()`). KV writes not followed by a synced write are lost in the
memory twin; RocksDB keeps them across a clean close (they reached the OS), so behavioural tests
only assert what both guarantee.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from wukongim.store.interfaces import KVStore, RaftLogStore
from wukongim.store.memory import MemoryKVStore, MemoryRaftLogStore
from wukongim.store.raftlog import RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore


class StoreHarness(Protocol):
    name: str
    log: RaftLogStore
    kv: KVStore

    def restart(self) -> None: ...

    def close(self) -> None: ...


class MemoryHarness:
    name = "memory"

    def __init__(self) -> None:
        self._kv = MemoryKVStore()
        self._log = MemoryRaftLogStore(kv=self._kv)
        self.log: RaftLogStore = self._log
        self.kv: KVStore = self._kv

    def restart(self) -> None:
        self._log.crash()
        self._kv.crash()

    def close(self) -> None:
        self._log.close()
        self._kv.close()


class RocksHarness:
    name = "rocks"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._open()

    def _open(self) -> None:
        self._kv = RocksKVStore.open(self._path)
        self._log = RocksRaftLogStore(self._kv)
        self.log: RaftLogStore = self._log
        self.kv: KVStore = self._kv

    def restart(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        self._log.close()
        self._kv.close()


def make_harness(kind: str, path: Path) -> StoreHarness:
    if kind == "memory":
        return MemoryHarness()
    return RocksHarness(path)
