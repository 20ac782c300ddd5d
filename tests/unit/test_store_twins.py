"""The memory twin and RocksDB, driven by the same random operations, stay identical."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.unit.test_store_support import MemoryHarness, RocksHarness, StoreHarness
from wukongim.store.interfaces import HardState, LogEntry, SnapshotMeta
from wukongim.store.memory import MemoryRaftLogStore

GROUPS = (1, 2, 70000)


def bounds(memory: MemoryRaftLogStore, group: int) -> tuple[int, int, dict[int, int]]:
    """First and last buffered index and the terms, read from the twin's current view."""
    log = memory._current.get(group)
    if log is None:
        return 1, 0, {}
    return log.first_index, log.last_index, {e.index: e.term for e in log.entries}


def random_op(
    rng: random.Random, memory: MemoryRaftLogStore, term: int
) -> tuple[str, tuple[object, ...]]:
    group = rng.choice(GROUPS)
    first, last, terms = bounds(memory, group)
    term = max(term, *terms.values(), 1)
    roll = rng.random()
    if roll < 0.5:
        start = rng.randint(max(first, last - 3), last + 1)
        term += rng.random() < 0.2
        entries = [
            LogEntry(i, term, rng.randint(0, 1), rng.randbytes(rng.randint(0, 40)))
            for i in range(start, start + rng.randint(1, 8))
        ]
        return "append", (group, entries)
    if roll < 0.65:
        return "set_hard_state", (group, HardState(term, rng.randint(0, 3), last))
    if roll < 0.75 and last >= first:
        return "compact", (group, rng.randint(first, last))
    if roll < 0.85:
        index = rng.randint(max(0, first - 2), last + 3)
        snapshot_term = terms.get(index, term) + (rng.random() < 0.3)
        return "apply_snapshot", (group, SnapshotMeta(index, snapshot_term, rng.randbytes(3)), b"s")
    if roll < 0.88:
        return "drop_group", (group,)
    return "sync", ()


def apply(harness: StoreHarness, name: str, args: tuple[object, ...]) -> None:
    getattr(harness.log, name)(*args)


@pytest.mark.parametrize("seed", range(12))
def test_twins_agree_on_random_operations(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    memory = MemoryHarness()
    rocks = RocksHarness(tmp_path / "db")
    term = 1
    try:
        for _ in range(150):
            name, args = random_op(rng, memory._log, term)
            if name == "append":
                term = args[1][-1].term  # type: ignore[index]
            apply(memory, name, args)
            apply(rocks, name, args)
            if name == "sync" and rng.random() < 0.3:
                memory.restart()
                rocks.restart()
            if name == "sync":
                assert memory.log.groups() == rocks.log.groups()
                for group in GROUPS:
                    assert memory.log.load(group) == rocks.log.load(group), (seed, group)
    finally:
        memory.close()
        rocks.close()
