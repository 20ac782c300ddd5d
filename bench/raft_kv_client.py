"""Client side of bench/raft_kv.py: the request protocol and the load-generator process.

Request protocol (nodewire Request/Response on a server's client port, no handshake):

  Request  path "/put"     body = u16 LE key length, key, value   -> Response OK, empty body
  Request  path "/status"  body = empty                           -> Response OK, body = JSON
           {"leader": <node id or 0>, "is_leader": bool, "applied": int}
  A server that is not the leader answers "/put" with status ERROR and body b"notleader:<hint>".

Load generator (`python -m bench.raft_kv_client CONFIG_JSON`): connects to one server, then runs
closed loop (a fixed number of requests in flight, spread over `conns` connections) or open loop
at `rate` ops/s, for warmup + measured seconds. It prints JSON lines on stdout:
  {"ev": "window_start"}  and  {"ev": "window_end"}  (the parent samples /proc at each)
  {"ev": "result", "ops": .., "errors": .., "seconds": .., "p50_ms": .., "p99_ms": .., ...}
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from wukongim.protocol import nodewire as nw

_U16 = struct.Struct("<H")
DRAIN_S = 5.0  # after the window, wait this long at most for replies to requests issued in it


def put_body(key: bytes, value: bytes) -> bytes:
    return _U16.pack(len(key)) + key + value


def parse_put_body(body: bytes) -> tuple[bytes, bytes]:
    (n,) = _U16.unpack_from(body, 0)
    return body[2 : 2 + n], body[2 + n :]


_REQUEST_ID = struct.Struct("<Q")
_TAILS: dict[tuple[str, int], tuple[bytes, bytes]] = {}


def encode_request(request_id: int, path: str, body: bytes) -> bytes:
    """`nw.encode(nw.Request(...))` with the envelope and path bytes cached per (path, body
    length): one pack per request, the load generator's hot path. Same bytes as nw.encode."""
    parts = _TAILS.get((path, len(body)))
    if parts is None:
        whole = nw.encode(nw.Request(0, path, body))
        head_len = 11  # magic, type, u32 BE length
        parts = (whole[:head_len], whole[head_len + 8 : len(whole) - len(body)])
        _TAILS[(path, len(body))] = parts
    head, middle = parts
    return head + _REQUEST_ID.pack(request_id) + middle + body


def now_s() -> float:
    return time.perf_counter()


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[i]


class ClientConn(asyncio.Protocol):
    """One pipelined client connection: `send(path, body, on_reply)`; replies are matched by id."""

    def __init__(self) -> None:
        self.decoder = nw.NodeWireDecoder()
        self.transport: asyncio.Transport | None = None
        self.callbacks: dict[int, Callable[[nw.Response], None]] = {}
        self.next_id = 1
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not assert.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.receive_data(data):
            if isinstance(frame, nw.Response):
                callback = self.callbacks.pop(frame.id, None)
                if callback is not None:
                    callback(frame)
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, path: str, body: bytes, on_reply: Callable[[nw.Response], None]) -> None:
        request_id = self.next_id
        self.next_id += 1
        self.callbacks[request_id] = on_reply
        self.out.append(encode_request(request_id, path, body))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    async def call(self, path: str, body: bytes = b"", timeout_s: float = 5.0) -> nw.Response:
        future: asyncio.Future[nw.Response] = asyncio.get_running_loop().create_future()

        def on_reply(reply: nw.Response) -> None:
            if not future.done():
                future.set_result(reply)

        self.send(path, body, on_reply)
        async with asyncio.timeout(timeout_s):
            return await future

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(host: str, port: int, timeout_s: float = 5.0) -> ClientConn:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout_s):
        _, conn = await loop.create_connection(ClientConn, host, port)
    return conn


async def status(host: str, port: int, timeout_s: float = 1.0) -> dict[str, object]:
    conn = await connect(host, port, timeout_s)
    try:
        reply = await conn.call("/status", b"", timeout_s)
        result: dict[str, object] = json.loads(reply.body)
        return result
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Load generator


@dataclass
class LoadConfig:
    host: str
    port: int
    conns: int = 8
    concurrency: int = 512  # closed loop: requests in flight in total
    rate: float = 0.0  # > 0: open loop at this many ops/s
    warmup_s: float = 2.0
    measure_s: float = 5.0
    value_bytes: int = 100
    keys: int = 100_000
    seed: int = 1


class LoadGen:
    def __init__(self, cfg: LoadConfig, conns: list[ClientConn]) -> None:
        self.cfg = cfg
        self.conns = conns
        rng = random.Random(cfg.seed)
        self.value = rng.randbytes(cfg.value_bytes)
        self.keys = [b"key%08d" % i for i in range(cfg.keys)]
        self.rng = rng
        self.measuring = False
        self.running = True
        self.ops = 0
        self.errors = 0
        self.latencies_s: list[float] = []
        self.sent = 0
        self.window_pending = 0
        self.seconds = 0.0

    def issue(self, conn: ClientConn, *, again: bool) -> None:
        """Send one put. Requests issued inside the window give the latencies (waited for up
        to DRAIN_S after it); replies arriving inside the window give the throughput."""
        key = self.keys[self.rng.randrange(len(self.keys))]
        started = now_s()
        in_window = self.measuring
        if in_window:
            self.window_pending += 1

        def on_reply(reply: nw.Response) -> None:
            ok = reply.status == nw.Status.OK
            if self.measuring:
                if ok:
                    self.ops += 1
                else:
                    self.errors += 1
            if in_window:
                self.window_pending -= 1
                if ok:
                    self.latencies_s.append(now_s() - started)
            if again and self.running:
                self.issue(conn, again=True)

        self.sent += 1
        conn.send("/put", put_body(key, self.value), on_reply)

    async def run_closed(self) -> None:
        for i in range(self.cfg.concurrency):
            self.issue(self.conns[i % len(self.conns)], again=True)
        await self.windows()

    async def run_open(self) -> None:
        task = asyncio.create_task(self.windows())
        start = now_s()
        issued = 0
        i = 0
        while not task.done() and self.running:
            due = int((now_s() - start) * self.cfg.rate)
            while issued < due:
                self.issue(self.conns[i % len(self.conns)], again=False)
                issued += 1
                i += 1
            await asyncio.sleep(0.001)
        await task

    async def windows(self) -> None:
        await asyncio.sleep(self.cfg.warmup_s)
        self.measuring = True
        emit({"ev": "window_start"})
        t0 = now_s()
        await asyncio.sleep(self.cfg.measure_s)
        self.measuring = False
        self.seconds = now_s() - t0
        emit({"ev": "window_end"})
        self.running = False
        deadline = now_s() + DRAIN_S
        while self.window_pending > 0 and now_s() < deadline:  # noqa: ASYNC110 (bounded drain)
            await asyncio.sleep(0.01)

    def result(self) -> dict[str, object]:
        lat = sorted(self.latencies_s)
        return {
            "ev": "result",
            "ops": self.ops,
            "errors": self.errors,
            "unanswered": self.window_pending,
            "seconds": self.seconds,
            "ops_per_s": self.ops / self.seconds,
            "p50_ms": percentile(lat, 0.50) * 1000,
            "p99_ms": percentile(lat, 0.99) * 1000,
            "max_ms": (lat[-1] * 1000) if lat else float("nan"),
        }


def emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def loadgen_main(cfg: LoadConfig) -> None:
    conns = [await connect(cfg.host, cfg.port) for _ in range(cfg.conns)]
    gen = LoadGen(cfg, conns)
    if cfg.rate > 0:
        await gen.run_open()
    else:
        await gen.run_closed()
    emit(gen.result())
    for conn in conns:
        conn.close()


def main() -> None:
    import uvloop  # noqa: PLC0415 (only the child process needs it)

    cfg = LoadConfig(**json.loads(sys.argv[1]))
    uvloop.run(loadgen_main(cfg))


if __name__ == "__main__":
    main()
