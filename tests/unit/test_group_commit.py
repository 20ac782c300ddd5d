"""GroupCommitter on a real event loop, over the memory twin with a gate on sync()."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from wukongim.server.group_commit import GroupCommitter
from wukongim.store.interfaces import LogEntry
from wukongim.store.memory import MemoryRaftLogStore

_WAIT_S = 10.0  # deadline for conditions; never reached when things work


class GatedStore(MemoryRaftLogStore):
    """Counts sync() calls; each blocks until the test opens the gate (open by default)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.error: Exception | None = None
        self.threads: set[int] = set()

    def sync(self) -> None:
        self.calls += 1
        self.threads.add(threading.get_ident())
        self.entered.set()
        assert self.gate.wait(_WAIT_S)
        if self.error is not None:
            raise self.error
        super().sync()


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raft-sync")
    yield pool
    pool.shutdown(wait=True)


def entry(index: int) -> list[LogEntry]:
    return [LogEntry(index, 1, 0, b"%d" % index)]


def durable(store: MemoryRaftLogStore, group: int) -> list[int]:
    return [e.index for e in store.load(group).entries]


async def wait_for(condition: threading.Event) -> None:
    assert await asyncio.to_thread(condition.wait, _WAIT_S)


async def test_concurrent_commits_in_one_turn_share_one_sync(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)

    async def writer(group: int) -> None:
        store.append(group, entry(1))
        await committer.commit()
        assert durable(store, group) == [1]  # durable when commit returns

    async with asyncio.TaskGroup() as tasks:
        for group in range(100):
            tasks.create_task(writer(group))
    assert store.calls == 1
    assert committer.sync_count == 1
    assert store.threads != {threading.get_ident()}  # ran off the event loop thread
    assert len(store.groups()) == 100


async def test_writes_during_a_sync_go_in_the_next(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    store.gate.clear()
    store.append(1, entry(1))
    first = asyncio.create_task(committer.commit())
    await wait_for(store.entered)  # sync 1 is running and blocked
    store.append(1, entry(2))  # buffered while sync 1 is in flight
    second = asyncio.create_task(committer.commit())
    third = asyncio.create_task(committer.commit())
    await asyncio.sleep(0)
    assert store.calls == 1  # at most one sync in flight
    assert not first.done()
    store.gate.set()
    await first
    await asyncio.gather(second, third)
    assert durable(store, 1) == [1, 2]
    assert store.calls == 2  # second and third shared the next sync


async def test_sync_error_reaches_every_waiter(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    store.error = OSError("disk on fire")
    committer = GroupCommitter(store, executor)
    store.append(1, entry(1))
    results = await asyncio.gather(*(committer.commit() for _ in range(5)), return_exceptions=True)
    assert len(results) == 5
    assert all(isinstance(r, OSError) and str(r) == "disk on fire" for r in results)
    assert store.calls == 1
    # The next commit starts a new sync (which fails the same way here).
    with pytest.raises(OSError, match="disk on fire"):
        await committer.commit()


async def test_cancelled_waiter_does_not_cancel_the_sync(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    store.gate.clear()
    store.append(1, entry(1))
    impatient = asyncio.create_task(committer.commit())
    patient = asyncio.create_task(committer.commit())
    await wait_for(store.entered)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    store.gate.set()
    await patient
    assert durable(store, 1) == [1]


async def test_drain_waits_for_buffered_and_in_flight(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    await committer.drain()  # nothing to do
    store.gate.clear()
    store.append(1, entry(1))
    waiter = asyncio.create_task(committer.commit())
    await wait_for(store.entered)
    store.append(1, entry(2))
    waiter2 = asyncio.create_task(committer.commit())
    await asyncio.sleep(0)
    drained = asyncio.create_task(committer.drain())
    await asyncio.sleep(0)
    assert not drained.done()
    store.gate.set()
    await drained
    assert durable(store, 1) == [1, 2]
    await asyncio.gather(waiter, waiter2)


async def test_unsafe_mode_does_not_wait_but_still_drains(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor, fsync=False)
    store.gate.clear()
    store.append(1, entry(1))
    await committer.commit()  # returns although the sync cannot finish
    assert durable(store, 1) == []
    store.gate.set()
    await committer.drain()
    assert durable(store, 1) == [1]


async def test_shut_down_executor_fails_waiters() -> None:
    store = GatedStore()
    pool = ThreadPoolExecutor(max_workers=1)
    committer = GroupCommitter(store, pool)
    pool.shutdown()
    store.append(1, entry(1))
    with pytest.raises(RuntimeError, match="shutdown"):
        await committer.commit()
    assert store.calls == 0
