"""The server's whole message path in one process, without sockets: CPU µs per message.

    python -m bench.pipeline_micro [--pairs 100] [--window 16,4,1] [--rounds 60] [--no-fsync]

Builds the real node core (RocksDB store, group committer with its fsync worker, LocalReplicator,
state machine, gateway, sessions, send path, delivery) in a temp dir and connects N
sender/recipient pairs through `TcpConnection` objects whose transports are in-memory fakes. Each
round, every sender's connection receives W SEND frames (in ONE `data_received` call with W
frames, or W calls of one frame each with `--split`), the loop runs until every SENDACK and RECV
was written, then every recipient's connection receives the RECVACKs of its RECVs.

Printed per window: server CPU µs per message (process CPU over the timed rounds, minus the
client work done in this process: building the RECVACKs, which is measured separately on the
same frames and subtracted), and messages per round. No kernel socket work is included, so this
is the Python (and library) share of what `bench.one_to_one` measures, and it repeats far better
on a noisy machine: use it to compare changes, use `bench.one_to_one` for end-to-end figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from wukongim.app import GC_GEN0_THRESHOLD, GIL_SWITCH_INTERVAL_S, _build_core
from wukongim.clock import SystemClock
from wukongim.config import Config
from wukongim.protocol.crypto import ClientKeyPair, SessionCrypto
from wukongim.protocol.wkproto import (
    Connack,
    Connect,
    Decoder,
    Recv,
    RecvAck,
    Send,
    Side,
    encode,
)
from wukongim.server.gateway_tcp import TcpConnection

VERSION = 5
PAYLOAD = b'{"type":1,"content":"' + b"x" * 77 + b'"}'  # 100 bytes of JSON


class FakeTransport:
    """What `TcpConnection` needs of an asyncio transport; keeps every write."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.chunks: list[bytes] = []
        self._peer = peer
        self.closed = False
        self.on_write: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._peer if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.on_write is not None:
            self.on_write(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


class Client:
    """One fake client connection: the server's `TcpConnection` and our half of the crypto."""

    def __init__(self, factory: Any, uid: str, port: int) -> None:
        self.uid = uid
        self.transport = FakeTransport(("127.0.0.1", port))
        self.conn = TcpConnection(factory)
        self.conn.connection_made(self.transport)  # type: ignore[arg-type]
        self.decoder = Decoder(Side.CLIENT)
        self.crypto: SessionCrypto | None = None
        self.client_seq = 0

    async def connect(self) -> None:
        keys = ClientKeyPair.generate()
        connect = Connect(VERSION, 0, f"dev-{self.uid}", self.uid, "", 0, keys.client_key)
        self.conn.data_received(encode(connect, VERSION))
        while not self.transport.chunks:  # noqa: ASYNC110 - the CONNACK leaves next turn
            await asyncio.sleep(0)
        connack = self.decoder.feed(self.transport.take())[0]
        assert isinstance(connack, Connack)
        assert connack.reason_code == 1, connack
        self.crypto = keys.session(connack.server_key, connack.salt)

    def send_frame(self, to_uid: str) -> bytes:
        assert self.crypto is not None
        self.client_seq += 1
        seq = self.client_seq
        client_msg_no = f"{self.uid}-{seq}"
        wire = self.crypto.encrypt_payload(PAYLOAD)
        key = self.crypto.send_msg_key(seq, client_msg_no, to_uid, 1, wire)
        return encode(Send(0, seq, client_msg_no, to_uid, 1, wire, key), VERSION)


def build_sends(senders: list[Client], recipients: list[Client], window: int, rounds: int) -> Any:
    """Per round, per pair: the W SEND frames (encoded before timing)."""
    return [
        [
            [s.send_frame(r.uid) for _ in range(window)]
            for s, r in zip(senders, recipients, strict=True)
        ]
        for _ in range(rounds)
    ]


def recvacks(data: bytes, decoder: Decoder) -> bytes:
    """The RECVACKs a client owes for the RECV frames in `data`."""
    out = []
    for frame in decoder.feed(data):
        if isinstance(frame, Recv):
            out.append(encode(RecvAck(frame.message_id, frame.message_seq), VERSION))
    return b"".join(out)


async def run_window(
    core: Any, pairs: int, window: int, rounds: int, split: bool
) -> dict[str, Any]:
    factory = core.gateway.new_session
    senders = [Client(factory, f"s{window}-{i}", 10000 + i) for i in range(pairs)]
    recipients = [Client(factory, f"r{window}-{i}", 20000 + i) for i in range(pairs)]
    for c in (*senders, *recipients):
        await c.connect()
    warm = 3
    sends = build_sends(senders, recipients, window, rounds + warm)
    expected = pairs * window
    waiter = Waiter()
    for c in (*senders, *recipients):
        c.transport.on_write = waiter.wrote

    captured: list[bytes] = []
    captured_acks: list[bytes] = []
    cpu_total = 0.0
    rounds_done = 0
    for r, round_sends in enumerate(sends):
        timed = r >= warm
        t0 = time.process_time()
        for client, frames in zip(senders, round_sends, strict=True):
            if split:
                for f in frames:
                    client.conn.data_received(f)
            else:
                client.conn.data_received(b"".join(frames))
        await waiter.wait(2 * expected)
        t1 = time.process_time()
        for c in senders:
            data = c.transport.take()
            if timed:
                captured_acks.append(data)
        # client work (not the server's): decode RECVs, build RECVACKs
        acks = []
        for c in recipients:
            data = c.transport.take()
            if timed:
                captured.append(data)
            acks.append(recvacks(data, c.decoder))
        t2 = time.process_time()
        for c, ack in zip(recipients, acks, strict=True):
            c.conn.data_received(ack)
        for _ in range(3):
            await asyncio.sleep(0)
        t3 = time.process_time()
        if timed:
            cpu_total += (t1 - t0) + (t3 - t2)
            rounds_done += 1
    # the harness's own work inside the timed spans (counting written frames, building the
    # RECVACKs), measured again on the captured data and subtracted
    t0 = time.process_time()
    dec = Decoder(Side.CLIENT)
    dec.version = VERSION
    for data in captured:
        recvacks(data, dec)
        _frames(data)
    for data in captured_acks:
        _frames(data)
    client_recvack_s = time.process_time() - t0
    for c in (*senders, *recipients):
        c.conn.connection_lost(None)
    messages = rounds_done * expected
    return {
        "window": window,
        "split": split,
        "messages": messages,
        "us_per_msg": cpu_total * 1e6 / messages,
        "client_us_per_msg": client_recvack_s * 1e6 / messages,
    }


class Waiter:
    """Counts frames written to the fake transports; wakes the round once all are out."""

    def __init__(self) -> None:
        self.count = 0
        self.need = 0
        self.future: asyncio.Future[None] | None = None

    def wrote(self, chunk: bytes) -> None:
        self.count += _frames(chunk)
        if self.count >= self.need and self.future is not None and not self.future.done():
            self.future.set_result(None)

    async def wait(self, frames: int) -> None:
        self.need += frames
        if self.count < self.need:
            self.future = asyncio.get_running_loop().create_future()
            await self.future
            self.future = None


def _frames(chunk: bytes) -> int:
    """How many frames `chunk` holds (whole frames only: a write never splits one)."""
    n = 0
    pos = 0
    end = len(chunk)
    while pos < end:
        length = 0
        shift = 0
        p = pos + 1
        while True:
            digit = chunk[p]
            p += 1
            length |= (digit & 0x7F) << shift
            if digit < 0x80:
                break
            shift += 7
        n += 1
        pos = p + length
    return n


async def main_async(opts: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="wukongim-pipeline-"))
    cleanup = contextlib.AsyncExitStack()
    try:
        config = Config(data_dir=work, fsync=not opts.no_fsync)
        core = _build_core(config, SystemClock(), cleanup)
        replicator_task = asyncio.create_task(core.replicator.run())
        gc.collect()
        gc.freeze()
        print(
            f"== pipeline_micro: {opts.pairs} pairs, {len(PAYLOAD)} B payload, v{VERSION}, "
            f"encryption on, fsync {'off' if opts.no_fsync else 'on'}, {opts.rounds} rounds"
        )
        for window in opts.windows:
            results = [
                await run_window(core, opts.pairs, window, opts.rounds, opts.split)
                for _ in range(opts.repeat)
            ]
            us = [r["us_per_msg"] - r["client_us_per_msg"] for r in results]
            print(
                f"  window {window:3d}{' split' if opts.split else ''}: server "
                f"{statistics.median(us):6.1f} us/msg (runs: "
                + " / ".join(f"{u:.1f}" for u in us)
                + f"; client share subtracted {results[0]['client_us_per_msg']:.1f})",
                flush=True,
            )
        core.replicator.stop()
        await replicator_task
    finally:
        await cleanup.aclose()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--window", default="16,4,1")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--split", action="store_true", help="one data_received per frame")
    parser.add_argument("--no-fsync", action="store_true")
    opts = parser.parse_args(argv)
    opts.windows = [int(w) for w in opts.window.split(",")]
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)  # as `wukongim serve` runs
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    os.environ.setdefault("PYTHONHASHSEED", "0")
    return uvloop.run(main_async(opts))


if __name__ == "__main__":
    sys.exit(main())
