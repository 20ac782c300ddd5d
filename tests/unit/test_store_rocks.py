"""RocksDB-only behaviour: recovery after kill -9, column families, encoding details."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from wukongim.store.interfaces import HardState, LogEntry
from wukongim.store.memory import MemoryWriteBatch
from wukongim.store.raftlog import RocksRaftLogStore, StoreFailedError
from wukongim.store.rocks import BACKGROUND_NICE, RocksKVStore

_CHILD = textwrap.dedent(
    """
    import sys
    from wukongim.store.interfaces import HardState, LogEntry
    from wukongim.store.raftlog import RocksRaftLogStore
    from wukongim.store.rocks import RocksKVStore

    kv = RocksKVStore.open(sys.argv[1])
    log = RocksRaftLogStore(kv)
    index = 0
    while True:
        # A state write without sync, carried to disk by the next raft-log sync (one WAL).
        batch = kv.batch()
        batch.put("state", b"applied", b"%d" % index)
        kv.write(batch)
        entries = [LogEntry(index + i, 7, 0, b"x" * 150) for i in range(1, 51)]
        log.append(1, entries)
        log.append(2, entries)
        log.set_hard_state(1, HardState(7, 1, index))
        log.sync()
        index += 50
        print(index, flush=True)
        # Buffered but never synced before the kill: must not reappear.
        if index >= 2000:
            log.append(3, [LogEntry(1, 1, 0, b"lost")])
            print("done", flush=True)
            sys.stdin.read()
    """
)


def test_recovers_every_synced_write_after_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    last_synced = 0
    try:
        for line in child.stdout:
            if line.strip() == "done":
                break
            last_synced = int(line)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert child.stdin is not None
        child.stdin.close()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert last_synced == 2000

    kv = RocksKVStore.open(path)
    log = RocksRaftLogStore(kv)
    try:
        state = log.load(1)
        assert [e.index for e in state.entries] == list(range(1, last_synced + 1))
        assert state.entries[-1] == LogEntry(last_synced, 7, 0, b"x" * 150)
        assert state.hard_state == HardState(7, 1, last_synced - 50)
        assert kv.get("state", b"applied") == b"%d" % (last_synced - 50)
        assert log.groups() == [1, 2]  # group 3 was never synced
        # The reopened store continues the log where it was.
        log.append(1, [LogEntry(last_synced + 1, 8, 0, b"after")])
        with pytest.raises(ValueError, match="outside"):
            log.append(2, [LogEntry(last_synced + 100, 8, 0, b"gap")])
        log.sync()
        assert log.load(1).entries[-1].data == b"after"
    finally:
        log.close()
        kv.close()


def test_column_families_created_on_demand_and_reopened(tmp_path: Path) -> None:
    kv = RocksKVStore.open(tmp_path / "db", column_families=["state"])
    batch = kv.batch()
    batch.put("controller", b"k", b"v")
    batch.put("state", b"k", b"s")
    assert len(batch) == 2
    kv.write(batch, sync=True)
    kv.close()
    kv.close()  # idempotent
    kv = RocksKVStore.open(tmp_path / "db")
    assert kv.get("controller", b"k") == b"v"
    assert kv.get("state", b"k") == b"s"
    assert kv.get("fresh", b"k") is None
    kv.close()


def test_foreign_batch_rejected(tmp_path: Path) -> None:
    kv = RocksKVStore.open(tmp_path / "db")
    try:
        with pytest.raises(TypeError):
            kv.write(MemoryWriteBatch())
    finally:
        kv.close()


def test_closed_log_refuses_use(tmp_path: Path) -> None:
    kv = RocksKVStore.open(tmp_path / "db")
    log = RocksRaftLogStore(kv)
    log.close()
    with pytest.raises(StoreFailedError):
        log.append(1, [LogEntry(1, 1, 0, b"")])
    with pytest.raises(StoreFailedError):
        log.sync()
    kv.close()


def test_non_contiguous_batch_rejected(tmp_path: Path) -> None:
    kv = RocksKVStore.open(tmp_path / "db")
    log = RocksRaftLogStore(kv)
    with pytest.raises(ValueError, match="contiguous"):
        log.append(1, [LogEntry(1, 1, 0, b""), LogEntry(3, 1, 0, b"")])
    log.close()
    kv.close()


def test_range_read_of_entries(tmp_path: Path) -> None:
    kv = RocksKVStore.open(tmp_path / "db")
    log = RocksRaftLogStore(kv)
    log.append(5, [LogEntry(i, 1, 0, b"%d" % i) for i in range(1, 101)])
    log.append(6, [LogEntry(1, 1, 0, b"")])
    log.sync()
    assert [e.index for e in log.entries(5, 40, 45)] == [40, 41, 42, 43, 44]
    assert len(log.entries(5)) == 100
    assert log.entries(5, 200) == []
    log.close()
    kv.close()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_background_threads_run_at_the_lowest_priority(tmp_path: Path) -> None:
    kv = RocksKVStore.open(tmp_path / "db")
    try:
        tasks = Path("/proc/self/task")
        niceness = {
            int(tid.name): os.getpriority(os.PRIO_PROCESS, int(tid.name))
            for tid in tasks.iterdir()
            if (tid / "comm").read_text().strip().startswith("rocksdb:")
        }
        assert niceness  # RocksDB starts its flush and compaction threads at open
        assert set(niceness.values()) == {BACKGROUND_NICE}
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0  # not ours
    finally:
        kv.close()
