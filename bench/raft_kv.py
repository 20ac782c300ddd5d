"""3-node replicated KV over real loopback TCP: wukongim's Raft stack against pysyncobj.

    python -m bench.raft_kv                 # both systems, 3 runs each, medians printed
    python -m bench.raft_kv --runs 1 --systems wukongim --measure 3
    python -m bench.raft_kv --rate 10000    # the fixed-rate latency phase only at that rate

Per run and system: start 3 server processes (each with its own log under a temp dir; ours
fsyncs every batch), wait for a leader, pin the leader to CPU 0 and everything else (followers
and the load generator) to CPU 1, then

  1. throughput: a closed loop of --concurrency puts in flight (100-byte values) against the
     leader for --warmup + --measure seconds: committed ops/s, latency p50/p99, and server CPU
     µs per op (utime+stime of the 3 servers from /proc/<pid>/stat over the measured window);
  2. latency at a fixed --rate (open loop);
  3. failover: kill -9 the leader, then time until a surviving node commits a write.

Everything is bounded in time; processes are killed and temp dirs removed on exit.

Knobs for investigation (environment): RAFT_KV_SERVER_EXTRA='{"fsync": false}' (or
{"profile": "/tmp/prof"}: cProfile per server, dumped on SIGTERM), RAFT_KV_SYNCOBJ_CONF (extra
SyncObjConf keys), RAFT_KV_KEEP_LOGS=DIR (keep server logs), RAFT_KV_NO_PIN=1,
RAFT_KV_LOADGEN_CPU=0|1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.raft_kv_client import ClientConn, connect, put_body, status
from wukongim.protocol import nodewire as nw

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
FAILOVER_TIMEOUT_S = 15.0
SYNCOBJ_CONF: dict[str, Any] = json.loads(os.environ.get("RAFT_KV_SYNCOBJ_CONF", "{}"))
LOADGEN_CPU = int(os.environ.get("RAFT_KV_LOADGEN_CPU", "1"))
NO_PIN = os.environ.get("RAFT_KV_NO_PIN", "") == "1"
KEEP_LOGS = os.environ.get("RAFT_KV_KEEP_LOGS", "")  # a directory: copy server logs there
SERVER_EXTRA: dict[str, Any] = json.loads(os.environ.get("RAFT_KV_SERVER_EXTRA", "{}"))


def free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn of every child: SIGKILL it if this process dies, even by SIGKILL."""
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGKILL))


def pin(pid: int, cpu: int) -> None:
    """Like `taskset -a -p`: every thread of the process onto one CPU (no-op if it is gone)."""
    if NO_PIN:
        return
    cpus = {cpu % (os.cpu_count() or 1)}
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(tid), cpus)


def fsync_probe_ms(directory: Path, count: int = 50) -> dict[str, float]:
    """Median and max of `count` fdatasyncs after 4 KiB appends: the disk's context."""
    path = directory / "fsync_probe"
    times: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    times.sort()
    return {"median": times[len(times) // 2], "max": times[-1]}


# --------------------------------------------------------------------------------------------
# A cluster of 3 server processes


@dataclass
class Cluster:
    system: str
    root: Path
    client_ports: list[int]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def alive(self) -> list[int]:
        return [i for i, p in enumerate(self.procs) if p.poll() is None]

    def stop(self) -> None:
        if "profile" in SERVER_EXTRA:  # the servers dump their profile on SIGTERM
            for p in self.procs:
                if p.poll() is None:
                    p.terminate()
            for p in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=10)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)


def server_command(system: str, index: int, ports: dict[str, list[int]], root: Path) -> list[str]:
    if system == "pysyncobj":
        cfg: dict[str, Any] = {
            "index": index,
            "raft_addrs": [f"{HOST}:{p}" for p in ports["raft"]],
            "client_port": ports["client"][index],
            "data_dir": str(root / f"n{index}"),
            "conf": SYNCOBJ_CONF,
        }
        module = "bench.raft_kv_syncobj"
    else:
        cfg = {
            "node_id": index + 1,
            "cluster": {str(i + 1): [HOST, p] for i, p in enumerate(ports["raft"])},
            "client_port": ports["client"][index],
            "data_dir": str(root / f"n{index}"),
            **SERVER_EXTRA,
        }
        if "profile" in cfg:
            cfg["profile"] = f"{cfg['profile']}.{index}"
        module = "bench.raft_kv_server"
    return [sys.executable, "-m", module, json.dumps(cfg)]


@contextlib.contextmanager
def cluster(system: str) -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix=f"raft_kv_{system}_"))
    ports = free_ports(6)
    port_map = {"raft": ports[:3], "client": ports[3:]}
    c = Cluster(system, root, port_map["client"])
    try:
        for i in range(3):
            log_file = (root / f"server{i}.log").open("w")
            c.procs.append(
                subprocess.Popen(
                    server_command(system, i, port_map, root),
                    cwd=REPO,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file,
                    text=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 (prctl only, resolved early)
                )
            )
        yield c
    finally:
        c.stop()
        if KEEP_LOGS:
            keep = Path(KEEP_LOGS)
            keep.mkdir(parents=True, exist_ok=True)
            for log_path in root.glob("server*.log"):
                shutil.copy(log_path, keep / f"{root.name}_{log_path.name}")
        shutil.rmtree(root, ignore_errors=True)


async def find_leader(c: Cluster, timeout_s: float = STARTUP_TIMEOUT_S) -> int:
    """Index of the leader once it is stable: every live node names the same leader, exactly
    one node claims leadership, and a write commits through it (which also drains backlogs)."""
    async with asyncio.timeout(timeout_s):
        while True:
            leader = await _agreed_leader(c)
            if leader is not None:
                with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                    await commit_one(c.client_ports[leader], timeout_s=5.0)
                    return leader
            await asyncio.sleep(0.05)


async def _agreed_leader(c: Cluster) -> int | None:
    statuses: dict[int, dict[str, object]] = {}
    for i in c.alive():
        try:
            statuses[i] = await status(HOST, c.client_ports[i])
        except (OSError, TimeoutError, ValueError):
            return None
    named = {str(st.get("leader")) for st in statuses.values()}
    claims = [i for i, st in statuses.items() if st.get("is_leader")]
    if len(named) == 1 and named.isdisjoint({"", "0", "None"}) and len(claims) == 1:
        return claims[0]
    return None


async def commit_one(port: int, timeout_s: float = 10.0) -> None:
    """One successful put against this node (it must be the leader)."""
    conn = await connect(HOST, port)
    try:
        reply = await conn.call("/put", put_body(b"probe", b"x" * 100), timeout_s)
        if reply.status != nw.Status.OK:
            raise RuntimeError(f"put refused: {reply.body!r}")
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Load phases


def run_loadgen(c: Cluster, leader: int, load: dict[str, Any]) -> dict[str, Any]:
    """Run the load generator on CPU 1; sample server CPU at its window marks."""
    cfg = {"host": HOST, "port": c.client_ports[leader], **load}
    cmd = [sys.executable, "-m", "bench.raft_kv_client", json.dumps(cfg)]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 (prctl only, resolved early)
    )
    pin(proc.pid, LOADGEN_CPU)
    pids = [p.pid for p in c.procs] + [proc.pid]  # the last one is the load generator
    deadline = time.monotonic() + load["warmup_s"] + load["measure_s"] + 60
    try:
        return _read_loadgen(proc.stdout, pids, leader, deadline)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _read_loadgen(
    out: IO[str] | None, pids: list[int], leader: int, deadline: float
) -> dict[str, Any]:
    assert out is not None
    cpu0: list[float] = []
    cpu1: list[float] = []
    for line in out:
        if time.monotonic() > deadline:
            raise TimeoutError("load generator overran")
        ev = json.loads(line)
        if ev["ev"] == "window_start":
            cpu0 = [cpu_seconds(p) for p in pids]
        elif ev["ev"] == "window_end":
            cpu1 = [cpu_seconds(p) for p in pids]
        elif ev["ev"] == "result":
            ops = max(1, ev["ops"])
            spent = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
            ev["cpu_us_per_op"] = sum(spent[:-1]) / ops * 1e6
            ev["leader_cpu_us_per_op"] = spent[leader] / ops * 1e6
            ev["leader_cpu_util"] = spent[leader] / ev["seconds"]
            ev["loadgen_cpu_us_per_op"] = spent[-1] / ops * 1e6
            return dict(ev)
    raise RuntimeError("load generator exited without a result")


async def measure_failover(c: Cluster, leader: int) -> float:
    """kill -9 the leader; seconds until a surviving node commits a write."""
    survivors = [i for i in c.alive() if i != leader]
    conns: dict[int, ClientConn] = {i: await connect(HOST, c.client_ports[i]) for i in survivors}
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_reply(reply: nw.Response) -> None:
        if reply.status == nw.Status.OK and not done.done():
            done.set_result(time.perf_counter())

    os.kill(c.procs[leader].pid, signal.SIGKILL)
    t0 = time.perf_counter()
    try:
        async with asyncio.timeout(FAILOVER_TIMEOUT_S):
            while not done.done():
                for conn in conns.values():
                    conn.send("/put", put_body(b"failover", b"y" * 100), on_reply)
                await asyncio.wait({done}, timeout=0.01)
        return done.result() - t0
    finally:
        for conn in conns.values():
            conn.close()


async def one_run(system: str, args: argparse.Namespace, run: int) -> dict[str, Any]:
    base = {"conns": args.conns, "warmup_s": args.warmup, "measure_s": args.measure, "seed": run}
    with cluster(system) as c:
        fsync_ms = fsync_probe_ms(c.root)
        leader = await find_leader(c)
        for i, p in enumerate(c.procs):
            pin(p.pid, 0 if i == leader else 1)
        result: dict[str, Any] = {"leader": leader, "fsync_ms": fsync_ms}
        if not args.skip_throughput:
            load = {**base, "concurrency": args.concurrency}
            result["throughput"] = await asyncio.to_thread(run_loadgen, c, leader, load)
            if system == "wukongim":  # the leader's loop counters (turns, syncs, GC pauses)
                with contextlib.suppress(OSError, TimeoutError, ValueError):
                    st = await status(HOST, c.client_ports[leader], timeout_s=5.0)
                    result["leader_loop"] = {"loop": st.get("loop"), "gc": st.get("gc_pause_max_s")}
        if args.rate > 0:
            leader = await find_leader(c)
            result["rate_leader"] = leader
            load = {**base, "rate": args.rate, "concurrency": 0}
            result["rate"] = await asyncio.to_thread(run_loadgen, c, leader, load)
        if not args.skip_failover:
            leader = await find_leader(c)  # it may have changed under load
            await asyncio.sleep(0.5)  # idle: the failover clock starts from a quiet cluster
            result["failover_leader"] = leader
            result["failover_s"] = await measure_failover(c, leader)
        result["loadavg"] = os.getloadavg()[0]
        return result


# --------------------------------------------------------------------------------------------
# Report


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    values: list[float] = []
    for r in runs:
        v: Any = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, int | float):
            values.append(float(v))
    return statistics.median(values) if values else None


def report(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    rows = [
        ("committed ops/s (closed loop)", ("throughput", "ops_per_s"), "{:,.0f}"),
        ("  latency p50 ms", ("throughput", "p50_ms"), "{:.2f}"),
        ("  latency p99 ms", ("throughput", "p99_ms"), "{:.2f}"),
        ("  server CPU µs/op (3 nodes)", ("throughput", "cpu_us_per_op"), "{:.1f}"),
        ("  leader CPU µs/op", ("throughput", "leader_cpu_us_per_op"), "{:.1f}"),
        ("  leader CPU utilisation", ("throughput", "leader_cpu_util"), "{:.2f}"),
        ("  load generator CPU µs/op", ("throughput", "loadgen_cpu_us_per_op"), "{:.1f}"),
        (f"ops/s at --rate {args.rate:.0f}", ("rate", "ops_per_s"), "{:,.0f}"),
        ("  latency p50 ms", ("rate", "p50_ms"), "{:.2f}"),
        ("  latency p99 ms", ("rate", "p99_ms"), "{:.2f}"),
        ("  server CPU µs/op (3 nodes)", ("rate", "cpu_us_per_op"), "{:.1f}"),
        ("failover s (kill -9 leader)", ("failover_s",), "{:.3f}"),
        ("disk fdatasync ms (probe median)", ("fsync_ms", "median"), "{:.2f}"),
        ("load average at the end", ("loadavg",), "{:.1f}"),
    ]
    systems = list(results)
    print()
    print(f"medians of {args.runs} run(s); concurrency {args.concurrency}, 100-byte values")
    print(f"{'':34}" + "".join(f"{s:>14}" for s in systems))
    for label, path, fmt in rows:
        cells = []
        for s in systems:
            v = median_of(results[s], *path)
            cells.append(f"{fmt.format(v) if v is not None else '-':>14}")
        print(f"{label:34}" + "".join(cells))
    print("(pysyncobj's journal is mmap'd and not fsync'd per commit; wukongim fsyncs each batch)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--systems", default="wukongim,pysyncobj")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--measure", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=1024)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--rate", type=float, default=10_000.0)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-failover", action="store_true")
    ap.add_argument("--json", action="store_true", help="also print every run as JSON")
    return ap.parse_args(argv)


async def amain(args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    for system in args.systems.split(","):
        results[system] = []
        for run in range(args.runs):
            try:
                r = await one_run(system, args, run)
            except Exception as exc:
                print(f"{system} run {run}: FAILED: {exc!r}", file=sys.stderr)
                r = {"error": repr(exc)}
            print(f"{system} run {run}: {json.dumps(r)}", file=sys.stderr)
            results[system].append(r)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = asyncio.run(amain(args))
    if args.json:
        print(json.dumps(results, indent=1))
    report(results, args)


if __name__ == "__main__":
    main()
