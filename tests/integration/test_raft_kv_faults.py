"""Faults against the real 3-process replicated KV of bench/raft_kv.py (fsync on, loopback).

Writers put distinct keys and record which puts were acknowledged. Meanwhile the leader is
SIGSTOPped for ~3 s and resumed, then the (new) leader is killed with SIGKILL and restarted
on its data dir. After each fault a leader must be elected and accept writes. At the end every
node catches up, the cluster is stopped, and each node's durable Raft log is read back: every
acknowledged put must be in its committed prefix with its value. (The bench's client protocol
has no GET: the KV state machine is the in-memory replay of that log.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bench.raft_kv import (
    HOST,
    REPO,
    Cluster,
    _die_with_parent,
    find_leader,
    free_ports,
    server_command,
)
from bench.raft_kv_client import (
    ClientConn,
    connect,
    parse_put_body,
    put_body,
    status,
)

from wukongim.protocol import nodewire as nw
from wukongim.store.raftlog import LOG_CF, RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GROUP = 1  # bench/raft_kv_server.py's only Raft group
WRITERS = 3
PUT_TIMEOUT_S = 1.5
PROGRESS_TIMEOUT_S = 20.0
STOP_HOLD_S = 3.0


def key_of(n: int) -> bytes:
    return b"fault-key-%06d" % n


def value_of(n: int) -> bytes:
    return b"value-%06d-" % n + bytes(40)


@dataclass
class Servers:
    """Three bench servers whose processes can be stopped, killed and restarted."""

    root: Path
    raft_ports: list[int]
    client_ports: list[int]
    cluster: Cluster = field(init=False)

    def __post_init__(self) -> None:
        self.cluster = Cluster("wukongim", self.root, self.client_ports)

    def start(self, index: int) -> None:
        ports = {"raft": self.raft_ports, "client": self.client_ports}
        log = (self.root / f"server{index}.log").open("a")
        with log:
            proc = subprocess.Popen(
                server_command("wukongim", index, ports, self.root),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 (prctl only, resolved early)
            )
        if index < len(self.cluster.procs):
            self.cluster.procs[index] = proc
        else:
            self.cluster.procs.append(proc)

    def signal(self, index: int, sig: signal.Signals) -> None:
        os.kill(self.cluster.procs[index].pid, sig)

    def kill9(self, index: int) -> None:
        proc = self.cluster.procs[index]
        proc.kill()
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.cluster.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)  # a stopped process must run to die
                proc.kill()
        for proc in self.cluster.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def logs(self) -> str:
        parts = []
        for path in sorted(self.root.glob("server*.log")):
            tail = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)


@dataclass
class Writers:
    """A few concurrent writers of distinct keys that follow leader hints and retry elsewhere."""

    servers: Servers
    acked: dict[bytes, bytes] = field(default_factory=dict)
    next_key: int = 0
    target: int = 0
    running: bool = True

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for _ in range(WRITERS):
                tasks.create_task(self.writer())

    async def writer(self) -> None:
        conns: dict[int, ClientConn] = {}
        try:
            while self.running:
                n = self.next_key
                self.next_key += 1
                await self.put_until_acked(n, conns)
        finally:
            for conn in conns.values():
                conn.close()

    async def put_until_acked(self, n: int, conns: dict[int, ClientConn]) -> None:
        """Retry one key until some leader acknowledges it (a retried put rewrites the same
        value, so a duplicate in the log is harmless), or the writers are told to stop."""
        while self.running:
            index = self.target
            try:
                conn = conns.get(index)
                if conn is None or conn.transport is None:
                    conn = await connect(HOST, self.servers.client_ports[index], PUT_TIMEOUT_S)
                    conns[index] = conn
                reply = await conn.call("/put", put_body(key_of(n), value_of(n)), PUT_TIMEOUT_S)
            except (OSError, TimeoutError):
                stale = conns.pop(index, None)
                if stale is not None:
                    stale.close()
                self.move_from(index, hint=0)
                continue
            if reply.status == nw.Status.OK:
                self.acked[key_of(n)] = value_of(n)
                return
            hint = 0
            if reply.body.startswith(b"notleader:"):
                with contextlib.suppress(ValueError):
                    hint = int(reply.body.split(b":", 1)[1] or b"0")
            self.move_from(index, hint)
            await asyncio.sleep(0.02)  # back off while an election runs (not for correctness)

    def move_from(self, index: int, hint: int) -> None:
        if self.target != index:
            return  # another writer already moved on
        count = len(self.servers.client_ports)
        self.target = hint - 1 if 1 <= hint <= count and hint - 1 != index else (index + 1) % count


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 (polls state other tasks and processes change)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def wait_acked_growth(
    writers: Writers, task: asyncio.Task[None], count: int, what: str
) -> None:
    start = len(writers.acked)
    await wait_for(
        lambda: task.done() or len(writers.acked) >= start + count, what, PROGRESS_TIMEOUT_S
    )
    if task.done():
        task.result()  # the writers crashed: raise their error
        raise AssertionError("the writers stopped early")


async def applied_of(servers: Servers, index: int) -> int:
    st = await status(HOST, servers.client_ports[index], timeout_s=2.0)
    applied = st.get("applied")
    assert isinstance(applied, int)
    return applied


async def wait_all_applied(servers: Servers, target: int) -> list[int]:
    """Each node's applied index once all of them reach `target`."""
    async with asyncio.timeout(PROGRESS_TIMEOUT_S):
        while True:
            applied = []
            with contextlib.suppress(OSError, TimeoutError, ValueError):
                applied = [await applied_of(servers, i) for i in range(3)]
            if len(applied) == 3 and min(applied) >= target:
                return applied
            await asyncio.sleep(0.05)


def committed_puts(data_dir: Path, applied: int) -> dict[bytes, bytes]:
    """key -> value after replaying the node's durable log up to `applied` (all committed)."""
    kv = RocksKVStore.open(data_dir / "db", [LOG_CF])
    try:
        entries = RocksRaftLogStore(kv).entries(GROUP, 1, applied + 1)
    finally:
        kv.close()
    assert entries, f"{data_dir}: empty log"
    assert entries[-1].index == applied, f"{data_dir}: log ends before {applied}"
    state: dict[bytes, bytes] = {}
    for entry in entries:
        if entry.kind == 0 and entry.data:
            key, value = parse_put_body(entry.data)
            state[key] = value
    return state


async def test_acked_writes_survive_leader_stop_and_kill_9(tmp_path: Path) -> None:
    ports = free_ports(6)
    servers = Servers(tmp_path, ports[:3], ports[3:])
    writers = Writers(servers)
    writer_task: asyncio.Task[None] | None = None
    try:
        for i in range(3):
            servers.start(i)
        first = await find_leader(servers.cluster, timeout_s=30.0)
        writers.target = first
        writer_task = asyncio.create_task(writers.run())
        await wait_acked_growth(writers, writer_task, 50, "writes before the faults")

        # Fault 1: freeze the leader; the others elect a new one; then let it run again.
        servers.signal(first, signal.SIGSTOP)
        try:
            await asyncio.sleep(STOP_HOLD_S)  # hold the fault (not waiting for a condition)
        finally:
            servers.signal(first, signal.SIGCONT)
        await wait_acked_growth(
            writers, writer_task, 30, "writes after SIGSTOP/SIGCONT of the leader"
        )
        second = await find_leader(servers.cluster, timeout_s=PROGRESS_TIMEOUT_S)

        # Fault 2: kill -9 the current leader mid-writes; restart it on the same data dir.
        servers.kill9(second)
        await wait_acked_growth(writers, writer_task, 30, "writes after kill -9 of the leader")
        servers.start(second)
        await wait_acked_growth(writers, writer_task, 30, "writes after the killed node restarted")

        writers.running = False
        await asyncio.wait_for(writer_task, timeout=PUT_TIMEOUT_S * 3)
        acked = dict(writers.acked)
        assert len(acked) >= 140

        # Catch up: a last put through the leader, then every node applies at least that far.
        leader = await find_leader(servers.cluster, timeout_s=PROGRESS_TIMEOUT_S)
        applied = await wait_all_applied(servers, await applied_of(servers, leader))
        servers.stop_all()

        for i in range(3):
            state = committed_puts(tmp_path / f"n{i}", applied[i])
            missing = [k for k in acked if k not in state]
            assert not missing, f"node {i + 1} lost {len(missing)} acked puts: {missing[:5]}"
            wrong = [k for k, v in acked.items() if state[k] != v]
            assert not wrong, f"node {i + 1} has wrong values for {wrong[:5]}"
    except BaseException:
        servers.stop_all()
        print(servers.logs())  # shown by pytest on failure only
        raise
    finally:
        writers.running = False
        if writer_task is not None and not writer_task.done():
            writer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer_task
        servers.stop_all()
