"""A simulated disk: the in-memory Raft log store plus the simulator's fault hooks.

Rules of this file: deterministic; `crash()` loses every write not yet synced.

`lying_sync` is a deliberately broken disk (an fsync that reports success and keeps nothing
until the next honest sync): only negative tests use it, to show the checkers catch data loss.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from wukongim.store.interfaces import GroupLogState, HardState, LogEntry, SnapshotMeta
from wukongim.store.memory import MemoryRaftLogStore


class SimDisk:
    """A `RaftLogStore` with crash and fault injection."""

    def __init__(self, rng: random.Random, *, lying_sync: float = 0.0) -> None:
        self._store = MemoryRaftLogStore()
        self._rng = rng
        self.lying_sync = lying_sync
        self.syncs = 0
        self.crashes = 0

    def append(self, group: int, entries: Sequence[LogEntry]) -> None:
        self._store.append(group, entries)

    def set_hard_state(self, group: int, hard_state: HardState) -> None:
        self._store.set_hard_state(group, hard_state)

    def apply_snapshot(self, group: int, meta: SnapshotMeta, data: bytes) -> None:
        self._store.apply_snapshot(group, meta, data)

    def compact(self, group: int, upto_index: int) -> None:
        self._store.compact(group, upto_index)

    def sync(self) -> None:
        self.syncs += 1
        if self.lying_sync and self._rng.random() < self.lying_sync:
            return
        self._store.sync()

    def load(self, group: int) -> GroupLogState:
        return self._store.load(group)

    def groups(self) -> list[int]:
        return self._store.groups()

    def close(self) -> None:
        self._store.close()

    @property
    def has_pending(self) -> bool:
        return self._store.has_pending

    def crash(self) -> None:
        """Power loss: everything not synced is gone."""
        self.crashes += 1
        self._store.crash()
