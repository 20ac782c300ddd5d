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
_THREAD_PREFIX = "raft-sync"


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
        self._counted = threading.Condition()

    def sync(self) -> None:
        with self._counted:
            self.calls += 1
            self._counted.notify_all()
        self.threads.add(threading.get_ident())
        self.entered.set()
        assert self.gate.wait(_WAIT_S)
        if self.error is not None:
            raise self.error
        super().sync()

    def wait_calls(self, calls: int) -> bool:
        """Block the calling thread until sync() was entered `calls` times (or the deadline)."""
        with self._counted:
            return self._counted.wait_for(lambda: self.calls >= calls, _WAIT_S)


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=_THREAD_PREFIX)
    yield pool
    pool.shutdown(wait=True)
    assert not [t for t in threading.enumerate() if t.name.startswith(_THREAD_PREFIX)]


def entry(index: int) -> list[LogEntry]:
    return [LogEntry(index, 1, 0, b"%d" % index)]


def durable(store: MemoryRaftLogStore, group: int) -> list[int]:
    return [e.index for e in store.load(group).entries]


async def wait_for(condition: threading.Event) -> None:
    assert await asyncio.to_thread(condition.wait, _WAIT_S)


async def hold_a_sync(store: GatedStore, committer: GroupCommitter) -> asyncio.Future[None]:
    """Close the gate and start a sync that blocks in it: the worker is busy from now on."""
    store.gate.clear()
    held = committer.commit_future()
    await wait_for(store.entered)
    return held


async def test_concurrent_commits_share_one_sync(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    held = await hold_a_sync(store, committer)  # the 100 commits all come before the next sync

    async def writer(group: int) -> None:
        store.append(group, entry(1))
        await committer.commit()
        assert durable(store, group) == [1]  # durable when commit returns

    async with asyncio.TaskGroup() as tasks:
        for group in range(100):
            tasks.create_task(writer(group))
        await asyncio.sleep(0)  # every writer has buffered and asked
        store.gate.set()
    await held
    assert store.calls == 2
    assert committer.sync_count == 2
    assert store.threads != {threading.get_ident()}  # ran off the event loop thread
    assert len(store.groups()) == 100
    await committer.drain()


async def test_sync_starts_at_the_call_without_the_loop(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    store.append(1, entry(1))
    done = committer.commit_future()
    # The loop thread blocks here, so no callback or task of the loop can start the sync.
    assert store.entered.wait(_WAIT_S)
    await done
    assert durable(store, 1) == [1]
    coroutine = committer.commit()  # the coroutine form asks at the call too
    assert store.wait_calls(2)
    await coroutine
    await committer.drain()


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
    await committer.drain()


async def test_next_sync_starts_without_the_loop(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    held = await hold_a_sync(store, committer)
    store.append(1, entry(1))
    queued = committer.commit_future()
    store.gate.set()
    # The loop thread blocks: the worker goes from sync 1 to sync 2 on its own.
    assert store.wait_calls(2)
    await asyncio.gather(held, queued)
    assert durable(store, 1) == [1]
    await committer.drain()


async def test_one_threadsafe_callback_per_sync(
    executor: ThreadPoolExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    callbacks: list[object] = []
    original = loop.call_soon_threadsafe

    def counting(callback: object, *args: object) -> object:
        callbacks.append(callback)
        return original(callback, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    held = await hold_a_sync(store, committer)
    waiters = [committer.commit_future() for _ in range(50)]
    store.gate.set()
    await asyncio.gather(held, *waiters)
    assert store.calls == 2
    ours = [c for c in callbacks if getattr(c, "__self__", None) is committer]
    assert len(ours) == 2  # one per sync, not one per waiter
    monkeypatch.undo()
    await committer.drain()


async def test_sync_error_reaches_every_waiter(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    held = await hold_a_sync(store, committer)
    store.error = OSError("disk on fire")
    store.append(1, entry(1))
    commits = [committer.commit() for _ in range(5)]
    store.gate.set()
    with pytest.raises(OSError, match="disk on fire"):
        await held
    results = await asyncio.gather(*commits, return_exceptions=True)
    assert len(results) == 5
    assert all(isinstance(r, OSError) and str(r) == "disk on fire" for r in results)
    assert store.calls == 2  # the five shared one sync
    # The next commit starts a new sync (which fails the same way here).
    with pytest.raises(OSError, match="disk on fire"):
        await committer.commit()
    with pytest.raises(OSError, match="disk on fire"):
        await committer.commit_future()
    store.error = None
    await committer.drain()


async def test_cancelled_waiter_does_not_cancel_the_sync(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    store.gate.clear()
    store.append(1, entry(1))
    impatient = asyncio.create_task(committer.commit())
    patient = asyncio.create_task(committer.commit())
    cancelled_future = committer.commit_future()
    patient_future = committer.commit_future()
    await wait_for(store.entered)
    impatient.cancel()
    cancelled_future.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    store.gate.set()
    await patient
    await patient_future
    assert cancelled_future.cancelled()
    assert durable(store, 1) == [1]
    await committer.drain()


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


async def test_drain_frees_the_executor_thread_and_commit_restarts(
    executor: ThreadPoolExecutor,
) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor, idle_s=_WAIT_S * 10)  # never idles out here
    store.append(1, entry(1))
    await committer.commit()
    await committer.drain()
    # The single executor thread is free again: other work runs on it at once.
    assert executor.submit(threading.get_ident).result(_WAIT_S) in store.threads
    store.append(1, entry(2))
    await committer.commit()  # starts the worker again
    assert durable(store, 1) == [1, 2]
    await committer.drain()
    assert executor.submit(lambda: 42).result(_WAIT_S) == 42


async def test_idle_worker_returns_its_thread(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor, idle_s=0.01)
    store.append(1, entry(1))
    await committer.commit()
    # No drain: the worker leaves the executor's only thread after idling.
    assert executor.submit(lambda: 42).result(_WAIT_S) == 42
    store.append(1, entry(2))
    await committer.commit()
    assert durable(store, 1) == [1, 2]


async def test_unsafe_mode_does_not_wait_but_still_drains(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor, fsync=False)
    store.gate.clear()
    store.append(1, entry(1))
    await committer.commit()  # returns although the sync cannot finish
    assert committer.commit_future().done()
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
    await committer.drain()  # nothing in flight: returns


async def test_commit_then_calls_back_once_durable_before_awaiters_resume(
    executor: ThreadPoolExecutor,
) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    held = await hold_a_sync(store, committer)
    store.append(1, entry(1))
    order: list[str] = []
    seen: list[tuple[BaseException | None, list[int]]] = []

    async def awaiter() -> None:
        await committer.commit()  # shares the sync with the callback
        order.append("awaiter")

    task = asyncio.create_task(awaiter())
    await asyncio.sleep(0)  # the awaiter has asked

    def synced(error: BaseException | None) -> None:
        order.append("callback")
        seen.append((error, durable(store, 1)))

    committer.commit_then(synced)
    assert seen == []  # nothing before the sync
    store.gate.set()
    await held
    await task
    assert seen == [(None, [1])]
    assert order == ["callback", "awaiter"]  # called directly, not one loop turn later
    await committer.drain()


async def test_commit_then_gets_the_sync_error(executor: ThreadPoolExecutor) -> None:
    store = GatedStore()
    committer = GroupCommitter(store, executor)
    held = await hold_a_sync(store, committer)
    store.error = OSError("disk on fire")
    store.append(1, entry(1))
    errors: list[BaseException | None] = []
    committer.commit_then(errors.append)
    later = committer.commit_future()  # a callback that raises must not strand other waiters

    def broken(_: BaseException | None) -> None:
        raise ZeroDivisionError

    committer.commit_then(broken)
    store.gate.set()
    with pytest.raises(OSError, match="disk on fire"):
        await held
    with pytest.raises(OSError, match="disk on fire"):
        await later
    assert len(errors) == 1
    assert isinstance(errors[0], OSError)
    store.error = None
    await committer.drain()
