"""Load-generator process for bench/one_to_one.py (run as `python -m bench._loadgen CONFIG`).

Talks to its parent over JSON lines:
  stdout  {"ev": "ready", ...}                       all connections are authenticated
  stdin   {"t0": .., "window_start": .., "window_end": .., "stop_at": ..}   CLOCK_MONOTONIC s
  stdout  {"ev": "result", ...}                      counts and latency samples (µs)
In idle mode it only holds connections: after "ready" it waits for any line on stdin, then exits.

One pair = a sender connection and a recipient connection; the sender sends person messages to
the recipient. A message is complete when its SENDACK (reason 1) and its RECV have both arrived
(the RECVACK is written as the RECV is read). Closed loop: each pair keeps `window` messages in
flight. Rate mode (`rate` > 0): messages are started on a fixed schedule, round robin over the
pairs, and latency is measured from the scheduled time (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, cast

from bench._wire import Handshake, SendFrames, recvack_bytes
from wukongim.protocol import wkproto

HANDSHAKE_TIMEOUT_S = 30.0
HANDSHAKES_IN_FLIGHT = 64
RATE_TICK_S = 0.001


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class Conn(asyncio.Protocol):
    """One WKProto TCP connection; frames after CONNACK go to `on_frame`."""

    def __init__(self, handshake: Handshake) -> None:
        self.handshake = handshake
        self.decoder = wkproto.Decoder(wkproto.Side.CLIENT, version=handshake.version)
        self.connack: asyncio.Future[wkproto.Connack] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.on_frame: Any = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.handshake.connect_bytes())

    def data_received(self, data: bytes) -> None:
        for frame in self.decoder.feed(data):
            if isinstance(frame, wkproto.Connack):
                if not self.connack.done():
                    self.connack.set_result(frame)
            elif self.on_frame is not None:
                self.on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"closed before CONNACK: {exc}"))

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def write_frames(self, frames: list[bytes]) -> None:
        """Several encoded frames in one socket write."""
        self.write(b"".join(frames))


class WsConn(Conn):
    """WKProto over WebSocket (spec §1.2): one frame per binary WS message. A lean client
    framing of our own (not aiohttp's client) so that the generator stays cheap: every frame
    goes out masked with the all-zero key (valid, RFC 6455 §5.3, and costs no XOR)."""

    def __init__(self, handshake: Handshake, host: str, port: int) -> None:
        super().__init__(handshake)
        self._host = f"{host}:{port}"
        self._upgraded = False
        self._buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        self.transport.write(
            (
                f"GET / HTTP/1.1\r\nHost: {self._host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(f"WebSocket upgrade refused: {buf[:40]!r}")
            self._upgraded = True
            buf = buf[end + 4 :]
            self.write(self.handshake.connect_bytes())
        pos, n = 0, len(buf)
        payloads = []
        while n - pos >= 2:
            size, head = buf[pos + 1] & 0x7F, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4]), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            if n - pos < head + size:
                break
            if buf[pos] & 0x0F == 2:  # binary: one WKProto frame (server frames are unmasked)
                payloads.append(buf[pos + head : pos + head + size])
            pos += head + size
        self._buf = buf[pos:]
        if payloads:
            super().data_received(b"".join(payloads))

    def write(self, data: bytes) -> None:
        """`data` is ONE encoded frame: one WS message."""
        assert self.transport is not None
        self.transport.write(ws_frame(data))

    def write_frames(self, frames: list[bytes]) -> None:
        """One WS message per frame, all in one socket write."""
        assert self.transport is not None
        self.transport.write(b"".join(map(ws_frame, frames)))


def ws_frame(data: bytes) -> bytes:
    n = len(data)
    if n < 126:
        return b"\x82" + bytes((0x80 | n,)) + _ZERO_MASK + data
    if n < 65536:
        return b"\x82\xfe" + n.to_bytes(2) + _ZERO_MASK + data
    return b"\x82\xff" + n.to_bytes(8) + _ZERO_MASK + data


_ZERO_MASK = bytes(4)


async def open_conn(
    host: str, port: int, uid: str, version: int, limit: asyncio.Semaphore, *, ws: bool = False
) -> tuple[Conn, Handshake, wkproto.Connack]:
    loop = asyncio.get_running_loop()
    handshake = Handshake(uid=uid, token="bench", version=version)
    factory = (lambda: WsConn(handshake, host, port)) if ws else (lambda: Conn(handshake))
    async with limit, asyncio.timeout(HANDSHAKE_TIMEOUT_S):
        _, conn = await loop.create_connection(factory, host, port)
        connack = await conn.connack
    return conn, handshake, connack


@dataclass
class Stats:
    window_start: float = 0.0
    window_end: float = 0.0
    completed_in_window: int = 0
    started: int = 0
    completed: int = 0
    per_second: list[int] = field(default_factory=list)  # completions per second of the window
    sendack_us: list[int] = field(default_factory=list)
    sendack_start_ms: list[int] = field(default_factory=list)  # send time of each sendack_us
    recv_us: list[int] = field(default_factory=list)
    start_lag_us: list[int] = field(default_factory=list)
    reasons: Counter[int] = field(default_factory=Counter)
    duplicates: int = 0
    unexpected: int = 0


class Pair:
    """A sender and a recipient connection with `window` messages in flight at most."""

    def __init__(
        self,
        index: int,
        sender: Conn,
        frames: SendFrames,
        recipient: Conn,
        run: Run,
    ) -> None:
        self.sender = sender
        self.recipient = recipient
        self.frames = frames
        self.run = run
        self.prefix = frames.msg_no_prefix
        self.next_seq = 1
        # client_seq -> [t_start, acked, received]
        self.inflight: dict[int, list[Any]] = {}
        sender.on_frame = self.on_sender_frame
        recipient.on_frame = self.on_recipient_frame

    def start(self, t_start: float) -> None:
        stats = self.run.stats
        if stats.window_start <= t_start < stats.window_end:
            stats.start_lag_us.append(int((now() - t_start) * 1e6))
        seq = self.next_seq
        self.next_seq += 1
        self.inflight[seq] = [t_start, False, False]
        self.run.stats.started += 1
        self.run.queue_write(self.sender, self.frames.frame(seq))

    def on_sender_frame(self, frame: wkproto.Frame) -> None:
        if not isinstance(frame, wkproto.SendAck):
            if not isinstance(frame, wkproto.Pong):
                self.run.stats.unexpected += 1
            return
        stats = self.run.stats
        stats.reasons[frame.reason_code] += 1
        entry = self.inflight.get(frame.client_seq)
        if entry is None or entry[1]:
            stats.unexpected += 1
            return
        t = now()
        entry[1] = True
        if stats.window_start <= entry[0] < stats.window_end:
            stats.sendack_us.append(int((t - entry[0]) * 1e6))
            stats.sendack_start_ms.append(int((entry[0] - stats.window_start) * 1e3))
        if frame.reason_code != wkproto.ReasonCode.SUCCESS:
            entry[2] = True  # a rejected message is never delivered
        if entry[2]:
            self.complete(frame.client_seq, t)

    def on_recipient_frame(self, frame: wkproto.Frame) -> None:
        if not isinstance(frame, wkproto.Recv):
            if not isinstance(frame, wkproto.Pong):
                self.run.stats.unexpected += 1
            return
        self.run.queue_write(self.recipient, recvack_bytes(frame))
        stats = self.run.stats
        no = frame.client_msg_no
        if not no.startswith(self.prefix):
            stats.unexpected += 1
            return
        seq = int(no[len(self.prefix) :])
        entry = self.inflight.get(seq)
        if entry is None or entry[2]:
            stats.duplicates += 1
            return
        t = now()
        entry[2] = True
        if stats.window_start <= entry[0] < stats.window_end:
            stats.recv_us.append(int((t - entry[0]) * 1e6))
        if entry[1]:
            self.complete(seq, t)

    def complete(self, seq: int, t: float) -> None:
        del self.inflight[seq]
        stats = self.run.stats
        stats.completed += 1
        if stats.window_start <= t < stats.window_end:
            stats.completed_in_window += 1
            second = int(t - stats.window_start)
            per_second = stats.per_second
            while len(per_second) <= second:
                per_second.append(0)
            per_second[second] += 1
        self.run.on_complete(self, t)


class Run:
    """Drives all pairs of one load-generator process."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.window = int(config["window"])
        self.rate = float(config.get("rate", 0.0))
        self.msg_prefix = os.urandom(6).hex()
        self.stats = Stats()
        self.pairs: list[Pair] = []
        self.stop_starting_at = 0.0
        self._dirty: dict[Conn, list[bytes]] = {}
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self.drained = asyncio.Event()

    def queue_write(self, conn: Conn, data: bytes) -> None:
        """Coalesce writes per connection per loop turn."""
        pending = self._dirty.get(conn)
        if pending is None:
            self._dirty[conn] = [data]
        else:
            pending.append(data)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, {}
        for conn, frames in dirty.items():
            if not conn.closed:
                conn.write_frames(frames)

    def on_complete(self, pair: Pair, t: float) -> None:
        if self.rate <= 0 and t < self.stop_starting_at:
            pair.start(t)
        elif t >= self.stop_starting_at and not any(p.inflight for p in self.pairs):
            self.drained.set()

    async def connect(self) -> None:
        host, port = self.config["host"], int(self.config["port"])
        version = int(self.config["version"])
        plaintext = self.config["payload"].encode()
        ws = bool(self.config.get("ws", False))
        limit = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
        first = int(self.config["first_pair"])
        tasks = []
        for i in range(first, first + int(self.config["pairs"])):
            tasks.append(open_conn(host, port, f"bs{i}", version, limit, ws=ws))
            tasks.append(open_conn(host, port, f"br{i}", version, limit, ws=ws))
        opened = await asyncio.gather(*tasks)
        for n, i in enumerate(range(first, first + int(self.config["pairs"]))):
            sender, handshake, connack = opened[2 * n]
            recipient = opened[2 * n + 1][0]
            session = handshake.session(connack)
            prefix = f"{self.msg_prefix}-{i}-"
            frames = SendFrames(session, version, f"br{i}", 1, plaintext, prefix)
            self.pairs.append(Pair(i, sender, frames, recipient, self))

    async def drive(self, schedule: dict[str, float]) -> None:
        self.stats.window_start = schedule["window_start"]
        self.stats.window_end = schedule["window_end"]
        self.stop_starting_at = schedule["window_end"]
        cpu: dict[str, float] = {}
        self._loop.call_at(self._at(schedule["window_start"]), lambda: cpu.update(s=cpu_s()))
        self._loop.call_at(self._at(schedule["window_end"]), lambda: cpu.update(e=cpu_s()))
        await asyncio.sleep(max(0.0, schedule["t0"] - now()))
        if self.rate > 0:
            ticker = asyncio.ensure_future(self._rate_loop(schedule["t0"]))
        else:
            t = now()
            for pair in self.pairs:
                for _ in range(self.window):
                    pair.start(t)
        try:
            async with asyncio.timeout(max(0.1, schedule["stop_at"] - now())):
                await self.drained.wait()
        except TimeoutError:
            pass
        if self.rate > 0:
            ticker.cancel()
        self.cpu_window_s = cpu.get("e", cpu_s()) - cpu.get("s", 0.0)

    def _at(self, t_monotonic: float) -> float:
        return self._loop.time() + (t_monotonic - now())

    async def _rate_loop(self, t0: float) -> None:
        started = 0
        backlog: deque[float] = deque()
        turn = 0
        while True:
            t = now()
            if t >= self.stop_starting_at:
                if not any(p.inflight for p in self.pairs):
                    self.drained.set()
                await asyncio.sleep(RATE_TICK_S)
                continue
            due = int((t - t0) * self.rate) - started
            for k in range(due):
                backlog.append(t0 + (started + k) / self.rate)
            started += due
            tries = 0
            while backlog and tries < len(self.pairs):
                pair = self.pairs[turn % len(self.pairs)]
                turn += 1
                if len(pair.inflight) < self.window:
                    pair.start(backlog.popleft())
                    tries = 0
                else:
                    tries += 1
            # Event-loop timers have millisecond granularity: a shorter sleep would spin.
            await asyncio.sleep(RATE_TICK_S)

    def result(self) -> dict[str, Any]:
        s = self.stats
        still = sum(len(p.inflight) for p in self.pairs)
        return {
            "ev": "result",
            "completed_in_window": s.completed_in_window,
            "started": s.started,
            "completed": s.completed,
            "per_second": s.per_second,
            "inflight_at_end": still,
            "sendack_us": s.sendack_us,
            "sendack_start_ms": s.sendack_start_ms,
            "recv_us": s.recv_us,
            "start_lag_us": s.start_lag_us,
            "reasons": {str(k): v for k, v in s.reasons.items()},
            "duplicates": s.duplicates,
            "unexpected": s.unexpected,
            "loadgen_cpu_s": self.cpu_window_s,
        }

    def close(self) -> None:
        for pair in self.pairs:
            for conn in (pair.sender, pair.recipient):
                if conn.transport is not None:
                    conn.transport.close()


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def emit(event: dict[str, Any]) -> None:
    with contextlib.suppress(BrokenPipeError):  # the parent may be gone (interrupted)
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


async def idle_main(config: dict[str, Any]) -> None:
    limit = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    first = int(config["first_conn"])
    tasks = [
        open_conn(config["host"], int(config["port"]), f"idle{i}", int(config["version"]), limit)
        for i in range(first, first + int(config["conns"]))
    ]
    opened = await asyncio.gather(*tasks)
    emit({"ev": "ready", "conns": len(opened)})
    await read_line()  # any line, or EOF: done
    for conn, _, _ in opened:
        if conn.transport is not None:
            conn.transport.close()


async def load_main(config: dict[str, Any]) -> None:
    run = Run(config)
    await run.connect()
    # The hot path makes no reference cycles; a collector pause would show up as latency.
    gc.collect()
    gc.freeze()
    gc.disable()
    emit({"ev": "ready", "conns": 2 * len(run.pairs)})
    schedule = json.loads(await read_line())
    await run.drive(schedule)
    emit(run.result())
    run.close()


def main() -> None:
    config = json.loads(sys.argv[1])
    entry = idle_main if config["mode"] == "idle" else load_main
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up

        uvloop.run(entry(config))
    except ImportError:
        asyncio.run(entry(config))


if __name__ == "__main__":
    main()
