"""Group commit: one fsync'd raft-log write at a time, off the event loop, shared by all callers.

Callers buffer their writes into the `RaftLogStore` synchronously (append, set_hard_state, ...)
and then `await committer.commit()`, which returns once everything they buffered is durable.

* A sync worker runs in the given executor (use a single-thread one, dedicated to the store),
  never on the event loop. It calls `store.sync()` and stays there while there is work; after
  `idle_s` without a request it returns its thread to the executor (so `executor.shutdown` never
  hangs, even without `drain()`); the next request starts it again.
* `commit()` asks for a sync at once, at the call (no callback, no task hop): an idle worker
  wakes and starts it while the loop goes on. Every commit made before the worker takes the
  request shares that sync (all the commits of a loop turn, unless the worker gets the GIL in
  the middle of the turn); the sync writes everything buffered when it starts.
* At most one sync runs at a time. Commits made while it runs share the next one, which the
  worker starts as soon as the running one returns, without a round trip through the loop.
* Completion costs the loop ONE `call_soon_threadsafe` per sync, which resolves every waiter of
  that sync (each caller awaits a future of its own: cancelling one cancels nothing else), or
  calls it directly when it is a callback (`commit_then`: no extra loop iteration).
* An error from a sync is raised to every caller waiting on it. The store is then unusable
  (`RocksRaftLogStore` refuses further use): the node must restart and recover from `load()`.

`fsync=False` is UNSAFE and only for benchmarks: `commit()` returns at once without waiting for
anything, so an acknowledged write can be lost in a crash. Buffered writes still reach the store
in the background, so memory stays bounded (pair it with `RocksRaftLogStore(fsync=False)`).

Shutdown: `await drain()` waits for everything asked so far and stops the worker (it leaves the
executor's thread); shut the executor down after it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from concurrent.futures import Future as ThreadFuture
from typing import Any, TypeAlias

from wukongim.store.interfaces import RaftLogStore

__all__ = ["GroupCommitter"]

logger = logging.getLogger(__name__)

IDLE_S = 0.25  # an idle worker gives its thread back to the executor after this long

# A waiter is a future of its own, or a callback called with the sync's error (None if fine).
_Callback: TypeAlias = Callable[[BaseException | None], None]
_Waiter: TypeAlias = "asyncio.Future[None] | _Callback"
_Waiters: TypeAlias = list[_Waiter]


class GroupCommitter:
    """Shares `store.sync()` calls between concurrent `commit()` callers. Create it inside the
    running event loop; call `commit`, `commit_future` and `drain` on the loop's thread only."""

    def __init__(
        self,
        store: RaftLogStore,
        executor: Executor,
        *,
        fsync: bool = True,
        idle_s: float = IDLE_S,
    ) -> None:
        self._store = store
        self._executor = executor
        self._fsync = fsync
        self._idle_s = idle_s
        self._loop = asyncio.get_running_loop()
        self._wake: queue.SimpleQueue[bool] = queue.SimpleQueue()  # True: look, False: stop
        self._worker: ThreadFuture[None] | None = None  # its run in the executor (loop thread)
        # Shared with the worker, under _lock:
        self._lock = threading.Lock()
        self._pending: _Waiters | None = None  # waiters of the next sync (not yet taken)
        self._current: _Waiters | None = None  # waiters of the sync taken, until resolved
        self._running = False  # the worker is submitted and has not returned
        self._idle = False  # the worker waits on _wake
        self.sync_count = 0  # syncs started (metrics, tests)

    # ---- loop thread -----------------------------------------------------------------------

    def commit(self) -> Coroutine[Any, Any, None]:
        """Return once every write buffered into the store before this call is durable.

        The sync is requested at the call, not when the coroutine first runs. Cancelling one
        caller does not cancel the shared sync."""
        if not self._fsync:
            self._request(None)
            return _nothing()
        return _wait(self.commit_future())

    def commit_future(self) -> asyncio.Future[None]:
        """`commit()` as a future of its own (no coroutine, no task): done once every write
        buffered before this call is durable, or failed with the sync's error. Cancelling it
        cancels nothing else."""
        future = self._loop.create_future()
        if self._fsync:
            self._request(future)
        else:
            self._request(None)
            future.set_result(None)
        return future

    def commit_then(self, callback: _Callback) -> None:
        """`commit()` as a plain callback: `callback(error)` is called on the loop, with None
        once every write buffered before this call is durable, or with the sync's error. It
        runs as soon as the sync's completion reaches the loop, without the extra loop
        iteration a future's done callback costs."""
        if self._fsync:
            self._request(callback)
        else:
            self._request(None)
            self._loop.call_soon(callback, None)

    async def drain(self) -> None:
        """Wait until nothing is buffered by earlier callers nor in flight, then stop the
        worker (for shutdown; a later commit starts it again). Raises the error of a failed
        sync."""
        while True:
            future = self._loop.create_future()
            with self._lock:
                waiters = self._pending if self._pending is not None else self._current
                if waiters is not None:
                    waiters.append(future)
            if waiters is None:
                break
            await future
        worker = self._worker
        with self._lock:
            stop = self._running and self._pending is None
        if stop and worker is not None:
            self._wake.put(False)
            await asyncio.wrap_future(worker)

    def _request(self, waiter: _Waiter | None) -> None:
        """Join the next sync (taken by the worker after this call); wake or start the worker."""
        wake = start = False
        with self._lock:
            pending = self._pending
            if pending is None:
                pending = self._pending = []
                if not self._running:
                    self._running = start = True
                elif self._idle:
                    self._idle = False
                    wake = True
            if waiter is not None:
                pending.append(waiter)
        if wake:
            self._wake.put(True)
        elif start:
            self._start_worker()

    def _start_worker(self) -> None:
        try:
            self._worker = self._executor.submit(self._run)
        except RuntimeError as error:  # the executor was shut down: fail the waiters, not hang
            with self._lock:
                waiters, self._pending = self._pending or [], None
                self._running = False
            self._resolve(waiters, error)

    def _finish(self, waiters: _Waiters, error: BaseException | None) -> None:
        """Called on the loop (from the worker) once the sync of `waiters` returned."""
        with self._lock:
            if self._current is waiters:
                self._current = None
        if error is not None:
            logger.error("raft log sync failed", exc_info=error)
        self._resolve(waiters, error)

    @staticmethod
    def _resolve(waiters: _Waiters, error: BaseException | None) -> None:
        for waiter in waiters:
            if not isinstance(waiter, asyncio.Future):
                try:
                    waiter(error)
                except Exception:  # one caller's bug must not keep the others waiting
                    logger.exception("commit callback failed")
                continue
            if waiter.done():  # cancelled by its caller
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
                waiter.exception()  # retrieved here: fine if nobody awaits this one

    # ---- worker thread ---------------------------------------------------------------------

    def _run(self) -> None:
        """The sync worker: take the pending request, sync, report, until idle or stopped."""
        lock = self._lock
        while True:
            with lock:
                waiters = self._pending
                if waiters is None:
                    self._idle = True
                else:
                    self._pending = None
                    self._current = waiters
                    self.sync_count += 1
            if waiters is None:
                if self._wait_for_work():
                    continue
                return
            error: BaseException | None = None
            try:
                self._store.sync()
            except Exception as exc:  # noqa: BLE001 - raised to every waiter, logged on the loop
                error = exc
            try:
                self._loop.call_soon_threadsafe(self._finish, waiters, error)
            except RuntimeError:  # the loop is closed: nobody is left to tell
                logger.warning("event loop closed with a raft log sync in flight")
                with lock:
                    self._running = self._idle = False
                return

    def _wait_for_work(self) -> bool:
        """Idle: wait for a request. False when the worker must return (stop or idle)."""
        try:
            go = self._wake.get(timeout=self._idle_s)
        except queue.Empty:
            go = False
        with self._lock:
            if self._pending is not None:
                self._idle = False  # a request came (its wake token may be stale later)
                return True
            if go:
                return True  # a stale token: the request it announced was already taken
            self._running = self._idle = False
            return False


async def _wait(future: asyncio.Future[None]) -> None:
    await future


async def _nothing() -> None:
    return None
