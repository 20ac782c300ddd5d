"""Our side of bench/raft_kv.py: one process = node.Node with one Raft group holding a KV state
machine, its RocksDB raft log (fsync'd group commit), peer links and the Raft loop, plus the
bench's client port (request protocol in bench/raft_kv_client.py).

Run: `python -m bench.raft_kv_server CONFIG_JSON` with
  {"node_id": 1, "cluster": {"1": ["127.0.0.1", p1], ...}, "client_port": p, "data_dir": "..."}
optional: "tick_s" (default 0.07), "fsync" (default true), "switch_interval_s" (0.0005),
"gc_gen0" (20000), "gc_freeze_s" (1.0; 0 = no periodic gc.freeze).
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import os
import random
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

from bench.raft_kv_client import RequestReader, ok_responses
from wukongim.ids import NodeId
from wukongim.node.node import Node, NodeConfig
from wukongim.protocol import nodewire as nw
from wukongim.protocol.errors import RemoteProtocolError
from wukongim.raft import NotLeader, Role
from wukongim.server.group_commit import GroupCommitter
from wukongim.server.peer_links import PeerLinks
from wukongim.server.raft_loop import RaftLoop, RaftLoopConfig
from wukongim.store.raftlog import LOG_CF, RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore

GROUP = 1
log = logging.getLogger(__name__)


class KVMachine:
    """put key -> value; the entry data is the /put request body."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def apply(self, index: int, data: bytes) -> object:
        n = data[0] | data[1] << 8  # parse_put_body, inlined (it runs on every node per op)
        self.data[data[2 : 2 + n]] = data[2 + n :]
        return None

    def snapshot(self) -> bytes:
        raise NotImplementedError("snapshots are disabled in the bench")

    def restore(self, data: bytes) -> None:
        raise NotImplementedError("snapshots are disabled in the bench")


class ClientConn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.reader = RequestReader()
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []
        self.flush_scheduled = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            ids, bodies, others = self.reader.receive(data)
        except RemoteProtocolError as exc:
            log.warning("client: %s", exc)
            if self.transport is not None:
                self.transport.abort()
            return
        if ids:
            self.server.put_many(self, ids, bodies)
        for frame in others:
            if isinstance(frame, nw.Request):
                self.server.handle(self, frame)
        self.flush()

    def reply(self, response: nw.Response) -> None:
        self.reply_bytes(nw.encode(response))

    def reply_bytes(self, data: bytes) -> None:
        self.out.append(data)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


class Server:
    def __init__(self, node: Node, loop: RaftLoop, links: PeerLinks) -> None:
        self.node = node
        self.loop = loop
        self.links = links
        self.gc_pauses: dict[str, float] = {}

    def handle(self, conn: ClientConn, request: nw.Request) -> None:
        """Requests other than /put (which take the batched path, `put_many`)."""
        if request.path == "/put":
            self.put_many(conn, [request.id], [request.body])
        elif request.path == "/status":
            body = json.dumps(self.status()).encode()
            conn.reply(nw.Response(request.id, nw.Status.OK, 0, body))

    def put_many(self, conn: ClientConn, ids: list[int], bodies: list[bytes]) -> None:
        """The /put requests of one read: proposed together, answered as they apply."""

        def on_done(
            start: int, stop: int, _: Sequence[object], error: BaseException | None
        ) -> None:
            if error is None:
                conn.reply_bytes(ok_responses(ids[start:stop]))
            else:
                fail(ids[start:stop], repr(error).encode())

        def fail(failed: list[int], body: bytes) -> None:
            for request_id in failed:
                conn.reply(nw.Response(request_id, nw.Status.ERROR, 0, body))

        try:
            self.loop.propose_many_nowait(GROUP, bodies, on_done)
        except NotLeader as exc:
            fail(ids, f"notleader:{exc.leader}".encode())

    def status(self) -> dict[str, object]:
        st = self.node.status(GROUP)
        peers = {str(p): dataclasses.asdict(self.links.stats(p)) for p in self.links.peers()}
        return {
            "leader": st.leader,
            "is_leader": st.role == Role.LEADER,
            "applied": st.applied,
            "loop": dataclasses.asdict(self.loop.stats),
            "peers": peers,
            "gc_pause_max_s": self.gc_pauses,
        }


def watch_gc() -> dict[str, float]:
    """Record the longest pause of each GC generation (reported by /status)."""
    worst = {"gen0": 0.0, "gen1": 0.0, "gen2": 0.0, "gen2_count": 0.0}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - started[0]
        key = f"gen{info['generation']}"
        worst[key] = max(worst[key], pause)
        if info["generation"] == 2:
            worst["gen2_count"] += 1

    gc.callbacks.append(callback)
    return worst


async def freeze_gc_every(period_s: float) -> None:
    """Move every surviving object to the GC's permanent generation now and then, so a
    collection never rescans the ever-growing in-memory Raft log (snapshots are off here):
    without it the leader's gen2 pauses reach 50-100 ms. Acyclic data is still freed by
    reference counting; only cyclic garbage among frozen objects would stay."""
    while True:
        await asyncio.sleep(period_s)
        gc.freeze()


def tune_interpreter(cfg: dict[str, Any]) -> None:
    """This process's GIL and GC policy (the bench's, not the library's: app.py stays neutral).

    - The log sync runs in an executor thread; when it finishes it needs the GIL to wake the
      loop. With the default 5 ms switch interval a busy loop thread makes it wait up to 5 ms.
    - Every object alive after startup goes to the GC's permanent generation (`gc.freeze`,
      then again every `gc_freeze_s`, see `freeze_gc_every`), and gen0 collects every
      `gc_gen0` allocations instead of 700: the hot path allocates many short-lived acyclic
      objects that reference counting frees anyway, and each young collection costs the loop.
    """
    sys.setswitchinterval(float(cfg.get("switch_interval_s", 0.0005)))
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(int(cfg.get("gc_gen0", 20_000)), gen1, gen2)
    gc.collect()
    gc.freeze()


async def serve(cfg: dict[str, Any]) -> None:
    node_id = int(cfg["node_id"])
    cluster = {NodeId(int(k)): (str(v[0]), int(v[1])) for k, v in cfg["cluster"].items()}
    data_dir = Path(cfg["data_dir"])
    kv = RocksKVStore.open(data_dir / "db", [LOG_CF])
    store = RocksRaftLogStore(kv, fsync=bool(cfg.get("fsync", True)))
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    node = Node(node_id, store, lambda group: KVMachine(), rng, NodeConfig(snapshot_entries=0))
    node.create_group(GROUP, sorted(cluster))
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raftlog-sync")
    committer = GroupCommitter(store, executor, fsync=bool(cfg.get("fsync", True)))
    loop_config = RaftLoopConfig(
        tick_s=float(cfg.get("tick_s", 0.07)),
        turn_gap_min_s=float(cfg.get("turn_gap_min_s", 0.0)),
    )
    raft_loop = RaftLoop(node, committer, config=loop_config)
    peers = {n: addr for n, addr in cluster.items() if n != node_id}
    links = PeerLinks(NodeId(node_id), cluster[NodeId(node_id)], peers, raft_loop.on_peer_messages)
    raft_loop.transport = links
    server = Server(node, raft_loop, links)
    tune_interpreter(cfg)
    server.gc_pauses = watch_gc()  # after the startup collection: pauses under load only
    aio_loop = asyncio.get_running_loop()
    listener = await aio_loop.create_server(
        lambda: ClientConn(server), "127.0.0.1", int(cfg["client_port"])
    )
    async with links, listener, asyncio.TaskGroup() as tasks:
        tasks.create_task(raft_loop.run())
        if cfg.get("gc_freeze_s", 1.0):
            tasks.create_task(freeze_gc_every(float(cfg.get("gc_freeze_s", 1.0))))
        sys.stdout.write(json.dumps({"ev": "ready"}) + "\n")
        sys.stdout.flush()
        await listener.serve_forever()


def main() -> None:
    import uvloop  # noqa: PLC0415 (child process only)

    cfg = json.loads(sys.argv[1])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    profile_path = cfg.get("profile")
    if not profile_path:
        uvloop.run(serve(cfg))
        return
    import cProfile  # noqa: PLC0415 (debugging aid: {"profile": path}, dumped on SIGTERM)
    import signal  # noqa: PLC0415

    profiler = cProfile.Profile()

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(profile_path)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
    uvloop.run(serve(cfg))


if __name__ == "__main__":
    main()
