"""The pysyncobj side of bench/raft_kv.py: one process = a `SyncObj` with a `ReplDict`, plus the
bench's client port (see bench/raft_kv_client.py for the request protocol).

Run: `python -m bench.raft_kv_syncobj CONFIG_JSON` with
  {"index": i, "raft_addrs": ["127.0.0.1:p1", ...], "client_port": p, "data_dir": "..."}

pysyncobj runs its Raft loop in its own thread (autoTick); the client port is served by uvloop in
the main thread. Commit callbacks arrive on the Raft thread and are handed to the loop in bulk.

Durability: pysyncobj's FileJournal writes through mmap and never fsyncs per commit (it msyncs
only on shutdown), so this side runs WITHOUT per-commit fsync. Our server fsyncs every batch.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, cast

from bench.raft_kv_client import RequestReader, ok_responses, parse_put_body
from wukongim.protocol import nodewire as nw


class Server:
    def __init__(self, cfg: dict[str, Any]) -> None:
        from pysyncobj import SyncObj, SyncObjConf  # noqa: PLC0415 (child process only)
        from pysyncobj.batteries import ReplDict  # noqa: PLC0415

        addrs: list[str] = cfg["raft_addrs"]
        me = addrs[cfg["index"]]
        data_dir = Path(cfg["data_dir"])
        data_dir.mkdir(parents=True, exist_ok=True)
        conf = SyncObjConf(
            journalFile=str(data_dir / "journal"),
            fullDumpFile=str(data_dir / "dump"),
            appendEntriesUseBatch=True,
            dynamicMembershipChange=False,
            **cfg.get("conf", {}),
        )
        self.store = ReplDict()
        self.sync_obj = SyncObj(
            me, [a for a in addrs if a != me], consumers=[self.store], conf=conf
        )
        self.me = me
        self.done: deque[tuple[ClientConn, int, Any]] = deque()
        self.wake_scheduled = False
        self.lock = threading.Lock()
        self.loop = asyncio.get_running_loop()

    def status(self) -> dict[str, object]:
        st = self.sync_obj.getStatus()
        leader = st.get("leader")
        leader_id = str(leader.id if leader is not None else "")
        return {
            "leader": leader_id,
            "is_leader": leader_id == self.me,
            "applied": st.get("last_applied", 0),
        }

    def put(self, conn: ClientConn, request_id: int, body: bytes) -> None:
        key, value = parse_put_body(body)
        self.store.set(key, value, callback=lambda _r, err: self.on_done(conn, request_id, err))

    def on_done(self, conn: ClientConn, request_id: int, err: Any) -> None:
        """Raft thread: queue the reply; wake the loop once per burst."""
        self.done.append((conn, request_id, err))
        with self.lock:
            if self.wake_scheduled:
                return
            self.wake_scheduled = True
        self.loop.call_soon_threadsafe(self.drain)

    def drain(self) -> None:
        with self.lock:
            self.wake_scheduled = False
        touched: set[ClientConn] = set()
        while self.done:
            conn, request_id, err = self.done.popleft()
            if err is None or err == 0:
                conn.out.append(ok_responses([request_id]))
            else:
                error = f"error:{err}".encode()
                conn.out.append(nw.encode(nw.Response(request_id, nw.Status.ERROR, 0, error)))
            touched.add(conn)
        for conn in touched:
            conn.flush()


class ClientConn(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.reader = RequestReader()  # the same client-port codec as bench/raft_kv_server.py
        self.transport: asyncio.Transport | None = None
        self.out: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not assert.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ids, bodies, others = self.reader.receive(data)
        for request_id, body in zip(ids, bodies, strict=True):
            self.server.put(self, request_id, body)
        for frame in others:
            if not isinstance(frame, nw.Request):
                continue
            if frame.path == "/put":
                self.server.put(self, frame.id, frame.body)
            elif frame.path == "/status":
                body = json.dumps(self.server.status()).encode()
                self.out.append(nw.encode(nw.Response(frame.id, nw.Status.OK, 0, body)))
        self.flush()

    def flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(cfg: dict[str, Any]) -> None:
    server = Server(cfg)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: ClientConn(server), "127.0.0.1", cfg["client_port"])
    sys.stdout.write(json.dumps({"ev": "ready"}) + "\n")
    sys.stdout.flush()
    async with listener:
        await listener.serve_forever()


def main() -> None:
    import uvloop  # noqa: PLC0415 (child process only)

    uvloop.run(serve(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
