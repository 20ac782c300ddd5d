"""Group commit: one fsync'd raft-log write per loop turn, off the event loop.

Callers buffer their writes into the `RaftLogStore` synchronously (append, set_hard_state, ...)
and then `await committer.commit()`, which returns once everything they buffered is durable.

* Every `commit()` made in one loop turn shares ONE `store.sync()`, started at the next turn.
* The sync runs in the given executor (use a single-thread one), never on the event loop.
* At most one sync is in flight. Writes buffered meanwhile go out in the next sync, which
  starts as soon as the running one finishes (a pipeline of depth one).
* An error from a sync is raised to every caller waiting on it. The store is then unusable
  (`RocksRaftLogStore` refuses further use): the node must restart and recover from `load()`.

`fsync=False` is UNSAFE and only for benchmarks: `commit()` returns at once without waiting for
anything, so an acknowledged write can be lost in a crash. Buffered writes still reach the store
in the background, so memory stays bounded (pair it with `RocksRaftLogStore(fsync=False)`).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor

from wukongim.store.interfaces import RaftLogStore

__all__ = ["GroupCommitter"]

logger = logging.getLogger(__name__)


class GroupCommitter:
    """Shares `store.sync()` calls between concurrent `commit()` callers. Create it inside the
    running event loop."""

    def __init__(self, store: RaftLogStore, executor: Executor, *, fsync: bool = True) -> None:
        self._store = store
        self._executor = executor
        self._fsync = fsync
        self._loop = asyncio.get_running_loop()
        self._next: asyncio.Future[None] | None = None  # the sync the next callers wait for
        self._start_scheduled = False
        self._in_flight: asyncio.Future[None] | None = None
        self.sync_count = 0  # syncs started (metrics, tests)

    async def commit(self) -> None:
        """Return once every write buffered into the store before this call is durable.

        Cancelling one caller does not cancel the shared sync."""
        future = self._next
        if future is None:
            future = self._next = self._loop.create_future()
        if not self._start_scheduled and self._in_flight is None:
            self._start_scheduled = True
            self._loop.call_soon(self._start)
        if self._fsync:
            await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait until nothing is buffered by earlier callers nor in flight (for shutdown).
        Raises the error of a failed sync."""
        while True:
            waiting = self._next if self._next is not None else self._in_flight
            if waiting is None:
                return
            await asyncio.shield(waiting)

    def _start(self) -> None:
        self._start_scheduled = False
        if self._in_flight is not None or self._next is None:
            return
        future, self._next = self._next, None
        self.sync_count += 1
        try:
            in_flight = self._loop.run_in_executor(self._executor, self._store.sync)
        except RuntimeError as error:  # the executor was shut down: fail the waiters, not hang
            future.set_exception(error)
            future.exception()
            return
        self._in_flight = in_flight
        in_flight.add_done_callback(lambda done: self._finish(done, future))

    def _finish(self, done: asyncio.Future[None], future: asyncio.Future[None]) -> None:
        self._in_flight = None
        error = None if done.cancelled() else done.exception()
        if done.cancelled():
            future.cancel()  # the executor shut down under us
        elif error is None:
            future.set_result(None)
        else:
            logger.error("raft log sync failed", exc_info=error)
            future.set_exception(error)
            future.exception()  # retrieved here: fine if every waiter was cancelled
        if self._next is not None:
            self._start()  # writes buffered during the sync: go at once
