"""Micro-benchmark of `GroupCommitter`: commit() round trip and event-loop-thread CPU per round.

    python -m bench.group_commit_micro [--rounds N] [--dir DIR] [--impl FILE]

One writer, one commit at a time (what a single SEND pays): append one entry, then either
`await committer.commit()` (a coroutine awaited in the writer's task) or, like the replicator,
`ensure_future(committer.commit())` plus a done callback, or `await committer.commit_future()`
(no coroutine, no task; skipped when --impl has no such method). Stores:

  null    sync() does nothing: the committer's own overhead (hand-off, wake-ups, GIL)
  rocks   RocksRaftLogStore with fsync, in a temp dir (--dir): the real disk path

Printed per case: round trip p50/p99 µs (append -> commit done, seen by the writer) and the
loop thread's CPU µs per round (`time.thread_time` in the loop thread, so the sync thread is
not counted). `--impl FILE` loads another group_commit.py (e.g. an older version) to compare.

`--busy-us N` keeps the loop busy like a loaded server: a callback spins N µs of pure Python
and re-schedules itself every iteration, so the sync thread must take the GIL from a running
loop; its spinning is subtracted from the loop CPU. The GIL switch interval is the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from wukongim.app import GIL_SWITCH_INTERVAL_S
from wukongim.server import group_commit
from wukongim.store.interfaces import LogEntry, RaftLogStore
from wukongim.store.memory import MemoryRaftLogStore
from wukongim.store.raftlog import RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore

PAYLOAD = b"x" * 150


class NullStore(MemoryRaftLogStore):
    """Appends are dropped and sync() is free: only the committer's overhead remains."""

    def append(self, group: int, entries: Any) -> None:
        return None

    def sync(self) -> None:
        return None


def _load_impl(path: str | None) -> Any:
    if path is None:
        return group_commit
    spec = importlib.util.spec_from_file_location("group_commit_under_test", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Spinner:
    """Keeps the event loop busy: spins `busy_s` per loop iteration, counting its own CPU."""

    def __init__(self, busy_s: float) -> None:
        self.busy_s = busy_s
        self.cpu = 0.0
        self.stopped = False
        self.loop = asyncio.get_running_loop()
        if busy_s > 0:
            self.loop.call_soon(self.spin)

    def spin(self) -> None:
        if self.stopped:
            return
        cpu0 = time.thread_time()
        deadline = time.perf_counter() + self.busy_s
        while time.perf_counter() < deadline:
            pass
        self.cpu += time.thread_time() - cpu0
        self.loop.call_soon(self.spin)


async def _run(
    impl: Any, store: RaftLogStore, rounds: int, style: str, busy_s: float
) -> tuple[list[float], float]:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    with ThreadPoolExecutor(1, thread_name_prefix="micro-sync") as executor:
        committer = impl.GroupCommitter(store, executor)
        index = 0
        for _ in range(50):  # warm-up
            index += 1
            store.append(1, [LogEntry(index, 1, 0, PAYLOAD)])
            await committer.commit()
        spinner = Spinner(busy_s)
        cpu0 = time.thread_time()
        for _ in range(rounds):
            index += 1
            t0 = time.perf_counter()
            store.append(1, [LogEntry(index, 1, 0, PAYLOAD)])
            if style == "await":
                await committer.commit()
            elif style == "commit_future":
                await committer.commit_future()
            else:
                done = loop.create_future()
                commit = asyncio.ensure_future(committer.commit())
                commit.add_done_callback(lambda _, done=done: done.set_result(None))
                await done
            latencies.append(time.perf_counter() - t0)
        cpu = time.thread_time() - cpu0 - spinner.cpu
        spinner.stopped = True
        await committer.drain()
    return latencies, cpu


def _case(name: str, latencies: list[float], cpu: float) -> str:
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e6
    p99 = latencies[int(len(latencies) * 0.99)] * 1e6
    per_round = cpu / len(latencies) * 1e6
    return (
        f"{name:<20} round trip p50 {p50:8.1f} µs  p99 {p99:8.1f} µs"
        f"  loop cpu {per_round:6.1f} µs/round"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3000)
    parser.add_argument("--dir", default=None, help="parent of the temp dir (rocks store)")
    parser.add_argument("--impl", default=None, help="another group_commit.py to measure")
    parser.add_argument("--stores", default="null,rocks")
    parser.add_argument("--busy-us", type=float, default=0.0, help="loop busy per iteration")
    args = parser.parse_args()
    impl = _load_impl(args.impl)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    print(
        f"== group commit micro: {args.impl or 'wukongim.server.group_commit'},"
        f" loop busy {args.busy_us:g} µs/iteration"
    )
    stores: dict[str, Callable[[Path], tuple[RaftLogStore, Callable[[], None]]]] = {
        "null": lambda _: (NullStore(), lambda: None),
        "rocks": _rocks,
    }
    for store_name in args.stores.split(","):
        for style in ("await", "ensure_future", "commit_future"):
            if style == "commit_future" and not hasattr(impl.GroupCommitter, style):
                continue
            tmp = Path(tempfile.mkdtemp(prefix="gc-micro-", dir=args.dir))
            try:
                store, close = stores[store_name](tmp)
                run = _run(impl, store, args.rounds, style, args.busy_us / 1e6)
                latencies, cpu = asyncio.run(run)
                close()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            print(_case(f"{store_name}/{style}", latencies, cpu))


def _rocks(tmp: Path) -> tuple[RaftLogStore, Callable[[], None]]:
    kv = RocksKVStore.open(tmp / "db")
    log = RocksRaftLogStore(kv)

    def close() -> None:
        log.close()
        kv.close()

    return log, close


if __name__ == "__main__":
    main()
