"""Micro-benchmark of the raft-log store: synced batches and range reads.

    python -m bench.store_micro [--dir DIR] [--seconds S]

Prints, per batch size, wall µs/record for append+sync (fsync'd), the CPU µs/record of the
whole path and the time of the buffering alone (what the event loop thread pays), then the cost of
100-entry range reads. Payloads are 100-200 random bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rocksdict import WriteBatch

from wukongim.server.group_commit import GroupCommitter
from wukongim.store.interfaces import HardState, LogEntry
from wukongim.store.raftlog import RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore


def _payloads(count: int, rng: random.Random) -> list[bytes]:
    blob = os.urandom(256)
    return [blob[: rng.randint(100, 200)] for _ in range(count)]


def bench_synced_batches(
    log: RocksRaftLogStore, batch_size: int, seconds: float, first_index: int, group: int
) -> tuple[int, str]:
    rng = random.Random(batch_size)
    payloads = _payloads(batch_size, rng)
    index = first_index
    batches = records = 0
    append_cpu = 0.0
    wall_start = time.perf_counter()
    cpu_start = time.process_time()
    while time.perf_counter() - wall_start < seconds:
        entries = [LogEntry(index + i, 3, 0, payloads[i]) for i in range(batch_size)]
        t0 = time.perf_counter()  # process_time() is a syscall here: too coarse per call
        log.append(group, entries)
        log.set_hard_state(group, HardState(3, 1, index))
        append_cpu += time.perf_counter() - t0
        log.sync()
        index += batch_size
        batches += 1
        records += batch_size
    wall = time.perf_counter() - wall_start
    cpu = time.process_time() - cpu_start
    line = (
        f"batch {batch_size:5d}: {batches:6d} synced batches, {records:8d} records, "
        f"{wall / records * 1e6:8.2f} µs/record wall, {wall / batches * 1e3:6.3f} ms/sync, "
        f"CPU {cpu / records * 1e6:6.2f} µs/record total, "
        f"{append_cpu / records * 1e6:5.2f} µs/record buffering"
    )
    return index, line


def bench_range_reads(
    log: RocksRaftLogStore, group: int, last_index: int, seconds: float, *, hot: bool
) -> str:
    """100-entry reads at random offsets (cold: anywhere in the log; hot: its last 10,000)."""
    rng = random.Random(7)
    low_min = max(1, last_index - 10_000) if hot else 1
    reads = records = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        low = rng.randint(low_min, max(low_min, last_index - 100))
        records += len(log.entries(group, low, low + 100))
        reads += 1
    wall = time.perf_counter() - start
    return (
        f"range reads of 100 entries ({'recent' if hot else 'anywhere'}): {reads} reads, "
        f"{wall / reads * 1e6:7.1f} µs/read, {wall / max(records, 1) * 1e6:5.2f} µs/record"
    )


def _spin(iterations: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i * i
    return time.perf_counter() - start


def bench_sync_beside_loop(kv: RocksKVStore, seconds: float) -> list[str]:
    """Does a sync in another thread stall the event loop thread? An executor thread writes
    prebuilt fsync'd 100-record batches (as `sync()` does) while this thread (1) spins on pure
    Python, then (2) writes unsynced state batches, as apply does."""
    payloads = _payloads(100, random.Random(3))
    handle = kv.handle("raftlog")
    batches = []
    for b in range(3000):
        raw = WriteBatch(raw_mode=True)
        for i in range(100):
            raw.put(b"bench-%08d-%03d" % (b, i), payloads[i], handle)
        batches.append(raw)
    stop = threading.Event()
    syncs = [0]

    def syncer() -> None:
        while not stop.is_set() and batches:
            kv.write_raw(batches.pop(), sync=True)
            syncs[0] += 1

    alone = min(_spin(2_000_000) for _ in range(3))
    with ThreadPoolExecutor(1) as pool:
        done = pool.submit(syncer)
        start = syncs[0]
        beside = min(_spin(2_000_000) for _ in range(3))
        spin_syncs = syncs[0] - start
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        value = payloads[0]
        while time.perf_counter() < deadline and batches:
            batch = kv.batch()
            batch.put("state", b"applied-%d" % (len(latencies) % 1000), value)
            t0 = time.perf_counter()
            kv.write(batch)
            latencies.append(time.perf_counter() - t0)
        stop.set()
        done.result()
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e6
    p99 = latencies[int(len(latencies) * 0.99)] * 1e6
    return [
        f"loop-thread spin: {alone * 1e3:.0f} ms alone, {beside * 1e3:.0f} ms beside fsync'd "
        f"writes ({spin_syncs} syncs meanwhile, each needs the GIL back to return)",
        f"unsynced state writes beside syncs: {len(latencies)} writes, p50 {p50:.1f} µs, "
        f"p99 {p99:.1f} µs, max {latencies[-1] * 1e6:.0f} µs",
    ]


async def _group_commit_run(
    log: RocksRaftLogStore, producers: int, seconds: float
) -> tuple[int, int, float, float]:
    """`producers` tasks, each: append one entry to its own group, await commit, repeat."""
    payload = _payloads(1, random.Random(11))[0]
    with ThreadPoolExecutor(1, thread_name_prefix="bench-fsync") as executor:
        committer = GroupCommitter(log, executor)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        done = [0]

        async def producer(group: int) -> None:
            index = log.load(group).entries[-1].index + 1 if log.load(group).entries else 1
            while loop.time() < deadline:
                log.append(group, [LogEntry(index, 1, 0, payload)])
                await committer.commit()
                index += 1
                done[0] += 1

        wall0, cpu0 = time.perf_counter(), time.process_time()
        async with asyncio.TaskGroup() as tasks:
            for p in range(producers):
                tasks.create_task(producer(1000 + p))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await committer.drain()
    return done[0], committer.sync_count, wall, cpu


def bench_group_commit(log: RocksRaftLogStore, seconds: float) -> list[str]:
    lines = []
    for producers in (1, 100, 1000):
        records, syncs, wall, cpu = asyncio.run(_group_commit_run(log, producers, seconds))
        lines.append(
            f"group commit, {producers:4d} producers: {records / wall:9.0f} durable records/s, "
            f"{records / max(syncs, 1):6.1f} records/sync, CPU {cpu / records * 1e6:6.2f} "
            f"µs/record (both threads)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: temp)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="wk-store-micro-"))
    path = base / "db"
    try:
        kv = RocksKVStore.open(path)
        log = RocksRaftLogStore(kv)
        print(f"RocksRaftLogStore at {path}")
        for group, batch_size in enumerate((1, 100, 1000), start=1):
            last, line = bench_synced_batches(log, batch_size, args.seconds, 1, group)
            print(line)
        print(bench_range_reads(log, 3, last - 1, args.seconds, hot=True))
        print(bench_range_reads(log, 3, last - 1, args.seconds, hot=False))
        for line in bench_group_commit(log, args.seconds):
            print(line)
        for line in bench_sync_beside_loop(kv, args.seconds):
            print(line)
        log.close()
        kv.close()
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
