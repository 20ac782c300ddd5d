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
Every request's latency is measured: from the clock reading when it is queued for sending to
the one taken when the read carrying its reply is handed to the generator. The keys (`keys` of
them) are put in a random order, each once per `keys` requests.

Both bench servers read the client port with `RequestReader` and answer OK with
`ok_responses`: the same bytes as the generic nodewire codec, without a frame object per
request (the load generator, `LoadConn`/`LoadGen`, likewise). Its cost per request matters:
it shares a CPU with the followers.
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
from wukongim.protocol.errors import RemoteProtocolError

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
        head, tail = _request_parts(path, body)
        parts = _TAILS[(path, len(body))] = (head, tail[: len(tail) - len(body)])
    head, middle = parts
    return head + _REQUEST_ID.pack(request_id) + middle + body


_PREFIX_LEN = 7  # "WUKONG", frame type (a heartbeat is only this)
_HEADER_LEN = 11  # + u32 BE body length
_BE_U32 = struct.Struct(">I")
_RESPONSE = int(nw.FrameType.RESPONSE)
_OK = int(nw.Status.OK)
_RESPONSE_FIXED = struct.Struct("<QBqI")  # id, status, timestamp, body length
_REQUEST_HEAD = struct.Struct("<11sQ")  # envelope, request id
_REQUEST = int(nw.FrameType.REQUEST)
_PUT_FIXED = struct.Struct("<QH4sI")  # a /put request's id, path length, path, body length
_PUT_BODY_START = _HEADER_LEN + _PUT_FIXED.size
_OK_RESPONSE = struct.Struct("<11sQ13s")  # envelope, id, (status, timestamp, body length)
_OK_HEAD = nw.encode(nw.Response(0, nw.Status.OK))[:_HEADER_LEN]
_OK_TAIL = nw.encode(nw.Response(0, nw.Status.OK))[_HEADER_LEN + 8 :]


def _request_parts(path: str, body: bytes) -> tuple[bytes, bytes]:
    """The bytes of a Request frame before and after its request id."""
    whole = nw.encode(nw.Request(0, path, body))
    return whole[:_HEADER_LEN], whole[_HEADER_LEN + 8 :]


class RequestReader:
    """Server side of the client port (both bench servers): the Request frames of a byte
    stream, with the /put requests as plain (id, body) lists instead of a Request object each.
    Heartbeats are skipped; any other frame goes through the generic decoder (nodewire's
    checks, RemoteProtocolError)."""

    def __init__(self) -> None:
        self.rest = b""  # an incomplete frame from the previous read

    def receive(self, data: bytes) -> tuple[list[int], list[bytes], list[nw.Frame]]:
        """(ids, bodies) of the /put requests completed by `data`, and the other frames."""
        buf = self.rest + data if self.rest else data
        end = len(buf)
        pos = 0
        ids: list[int] = []
        bodies: list[bytes] = []
        others: list[nw.Frame] = []
        unpack_length = _BE_U32.unpack_from
        unpack_put = _PUT_FIXED.unpack_from
        magic = nw.MAGIC
        while end - pos >= _PUT_BODY_START:  # room for a whole /put header: the usual case
            if not buf.startswith(magic, pos):
                raise RemoteProtocolError("bad nodewire magic")
            (length,) = unpack_length(buf, pos + 7)
            stop = pos + _HEADER_LEN + length
            request_id, path_len, path, body_len = unpack_put(buf, pos + _HEADER_LEN)
            if (
                path == b"/put"
                and path_len == 4
                and buf[pos + 6] == _REQUEST
                and length == _PUT_FIXED.size + body_len
            ):
                if stop > end:
                    break
                ids.append(request_id)
                bodies.append(buf[pos + _PUT_BODY_START : stop])
                pos = stop
                continue
            pos = self._other(buf, pos, end, others, ids, bodies)
            if pos < 0:
                return ids, bodies, others
        while end - pos >= _PREFIX_LEN:  # short frames, or the start of one
            pos = self._other(buf, pos, end, others, ids, bodies)
            if pos < 0:
                return ids, bodies, others
        self.rest = buf[pos:] if pos < end else b""
        return ids, bodies, others

    def _other(
        self,
        buf: bytes,
        pos: int,
        end: int,
        others: list[nw.Frame],
        ids: list[int],
        bodies: list[bytes],
    ) -> int:
        """Decode the frame at `pos` with the generic decoder: the position after it, or -1
        (with the rest kept for the next read) if it is incomplete."""
        if not buf.startswith(nw.MAGIC, pos):
            raise RemoteProtocolError("bad nodewire magic")
        frame_type = buf[pos + 6]
        if frame_type == nw.FrameType.HEARTBEAT:
            return pos + _PREFIX_LEN
        stop = -1
        if end - pos >= _HEADER_LEN:
            (length,) = _BE_U32.unpack_from(buf, pos + 7)
            if length > nw.FRAME_BYTES_MAX_DEFAULT:
                raise RemoteProtocolError(f"nodewire frame of {length} bytes is too large")
            stop = pos + _HEADER_LEN + length
        if stop < 0 or stop > end:
            self.rest = buf[pos:]
            return -1
        frame = nw.decode_body(frame_type, buf[pos + _HEADER_LEN : stop])
        if isinstance(frame, nw.Request) and frame.path == "/put":
            ids.append(frame.id)
            bodies.append(frame.body)
        else:
            others.append(frame)
        return stop


def ok_responses(ids: list[int]) -> bytes:
    """The wire bytes of an OK Response with an empty body for each request id."""
    pack = _OK_RESPONSE.pack
    return b"".join([pack(_OK_HEAD, i, _OK_TAIL) for i in ids])


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


class LoadConn(ClientConn):
    """A load-generator connection: replies to puts are matched to their send time without a
    callback or a Response object per request (the generator is measurement apparatus and
    shares CPU 1 with the followers, so its cost per request is kept small).

    `data_received` scans the Response frames directly (any other frame is checked by the
    generic decoder and skipped). Every reply of one read is stamped with one clock reading
    taken when the read is handed to us (the bytes arrived before it): a request's latency is
    that stamp minus the clock reading taken when it was queued for sending."""

    def __init__(self, gen: LoadGen) -> None:
        super().__init__()
        self.gen = gen
        self.buf = bytearray()
        self.started: dict[int, float] = {}  # request id -> send time (requests of the window)

    def data_received(self, data: bytes) -> None:
        arrived = now_s()
        buf = self.buf
        buf += data
        end = len(buf)
        pos = 0
        ok: list[int] = []  # request ids
        failed: list[int] = []
        unpack_length = _BE_U32.unpack_from
        unpack_fixed = _RESPONSE_FIXED.unpack_from
        magic = nw.MAGIC
        while end - pos >= _HEADER_LEN:
            if buf[pos + 6] != _RESPONSE or not buf.startswith(magic, pos):
                pos = self._other_frame(pos, end)
                if pos < 0:
                    break
                continue
            stop = pos + _HEADER_LEN + unpack_length(buf, pos + 7)[0]
            if stop > end:
                break
            request_id, status_code, _, _ = unpack_fixed(buf, pos + _HEADER_LEN)
            if status_code == _OK:
                ok.append(request_id)
            else:
                failed.append(request_id)
            pos = stop
        if pos:
            del buf[:pos]
        if ok or failed:
            self.gen.on_replies(self, ok, failed, arrived)
        self.flush()

    def _other_frame(self, pos: int, end: int) -> int:
        """Check and skip one frame that is not a Response (the server sends none; a heartbeat
        would be harmless): returns the position after it, or -1 if it is incomplete."""
        buf = self.buf
        if buf[pos : pos + 6] != nw.MAGIC:
            raise RemoteProtocolError("bad nodewire magic")
        frame_type = buf[pos + 6]
        if frame_type == nw.FrameType.HEARTBEAT:
            return pos + 7
        (length,) = _BE_U32.unpack_from(buf, pos + 7)
        stop: int = pos + _HEADER_LEN + length
        if stop > end:
            return -1
        nw.decode_body(frame_type, bytes(buf[pos + _HEADER_LEN : stop]))  # or raise
        return stop

    def schedule_flush(self) -> None:
        """Write what `LoadGen.issue` queued in `out` at the end of this loop iteration."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)


class LoadGen:
    def __init__(self, cfg: LoadConfig) -> None:
        self.cfg = cfg
        rng = random.Random(cfg.seed)
        value = rng.randbytes(cfg.value_bytes)
        # Every key's request frame (around the request id) is built once; the keys are put
        # in a random order (one permutation, cycled: each key once per `keys` puts).
        order = list(range(cfg.keys))
        rng.shuffle(order)
        parts = [_request_parts("/put", put_body(b"key%08d" % i, value)) for i in order]
        # two lists of bytes, not a list of tuples: nothing here for the GC to scan
        self.heads = [head for head, _ in parts]
        self.tails = [tail for _, tail in parts]
        self.next_key = 0
        self.measuring = False
        self.running = True
        self.ops = 0
        self.errors = 0
        self.latencies_s: list[float] = []
        self.sent = 0
        self.window_pending = 0
        self.seconds = 0.0
        self.closed_loop = False  # run_closed: every reply is followed by a new request

    def issue(self, conn: LoadConn, count: int = 1) -> None:
        """Send `count` puts on `conn`. Requests issued inside the window give the latencies
        (waited for up to DRAIN_S after it); replies arriving inside the window give the
        throughput."""
        heads, tails = self.heads, self.tails
        k = self.next_key
        request_id = conn.next_id
        pack = _REQUEST_HEAD.pack
        out = conn.out
        started = conn.started if self.measuring else None
        for _ in range(count):
            if started is not None:
                started[request_id] = now_s()
            out.append(pack(heads[k], request_id) + tails[k])
            request_id += 1
            k += 1
            if k == len(tails):
                k = 0
        self.next_key = k
        conn.next_id = request_id
        self.sent += count
        if started is not None:
            self.window_pending += count
        conn.schedule_flush()

    def on_replies(self, conn: LoadConn, ok: list[int], failed: list[int], arrived: float) -> None:
        """Replies to the requests `ok` and `failed` arrived at `arrived`; in the closed loop
        each one is replaced by a new request on the same connection."""
        if self.measuring:
            self.ops += len(ok)
            self.errors += len(failed)
        pop = conn.started.pop
        if conn.started:  # requests issued inside the window
            latencies = self.latencies_s
            for request_id in ok:
                t0 = pop(request_id, None)
                if t0 is not None:
                    self.window_pending -= 1
                    latencies.append(arrived - t0)
            for request_id in failed:
                if pop(request_id, None) is not None:
                    self.window_pending -= 1
        if self.closed_loop and self.running:
            self.issue(conn, len(ok) + len(failed))

    async def run_closed(self, conns: list[LoadConn]) -> None:
        self.closed_loop = True
        for i in range(self.cfg.concurrency):
            self.issue(conns[i % len(conns)])
        await self.windows()

    async def run_open(self, conns: list[LoadConn]) -> None:
        task = asyncio.create_task(self.windows())
        start = now_s()
        issued = 0
        i = 0
        while not task.done() and self.running:
            due = int((now_s() - start) * self.cfg.rate)
            while issued < due:
                self.issue(conns[i % len(conns)])
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
    gen = LoadGen(cfg)
    loop = asyncio.get_running_loop()
    conns: list[LoadConn] = []
    for _ in range(cfg.conns):
        async with asyncio.timeout(5.0):
            _, conn = await loop.create_connection(lambda: LoadConn(gen), cfg.host, cfg.port)
        conns.append(conn)
    if cfg.rate > 0:
        await gen.run_open(conns)
    else:
        await gen.run_closed(conns)
    emit(gen.result())
    for conn in conns:
        conn.close()


def main() -> None:
    import uvloop  # noqa: PLC0415 (only the child process needs it)

    cfg = LoadConfig(**json.loads(sys.argv[1]))
    uvloop.run(loadgen_main(cfg))


if __name__ == "__main__":
    main()
