"""Durability: every SENDACK'd message survives kill -9, exactly once and in order.

Runs the real `wukongim serve` in a subprocess (ports 0; the bound ports are read from its log),
sends messages while collecting SENDACKs, kills it with SIGKILL while more are in flight,
restarts it on the same data directory and reads the channel back over HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.integration.node_harness import ConnectionClosedError, Http, RawConn
from tests.waiting import wait_until
from wukongim.protocol import wkproto as wk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_MESSAGES = 400
KILL_AFTER_ACKS = 150
_SERVING = re.compile(r"serving: tcp (\d+), ws (\d+), http (\d+)")


@asynccontextmanager
async def serve(
    data_dir: Path, log_path: Path
) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, int]]]:
    log_file = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wukongim",
        "serve",
        "--data-dir",
        str(data_dir),
        "--tcp-addr",
        "127.0.0.1:0",
        "--ws-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
        stdout=log_file,
        stderr=log_file,
    )
    try:
        ports: dict[str, int] = {}

        def started() -> bool:
            match = _SERVING.search(log_path.read_text(errors="replace"))
            if match:
                ports.update(tcp=int(match[1]), ws=int(match[2]), http=int(match[3]))
            assert proc.returncode is None, log_path.read_text(errors="replace")
            return bool(match)

        await wait_until(started, timeout_s=30)
        yield proc, ports
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
        log_file.close()


async def test_acked_messages_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acked: dict[int, wk.SendAck] = {}  # client_seq -> SENDACK
    async with serve(data_dir, tmp_path / "first.log") as (proc, ports):
        sender = await RawConn.tcp(ports["tcp"])
        assert (await sender.connect("writer")).reason_code == 1
        for seq in range(1, KILL_AFTER_ACKS + 1):
            await sender.send_text("reader", 1, f"msg {seq}".encode(), client_seq=seq)
        for _ in range(KILL_AFTER_ACKS):
            ack = await sender.expect(wk.SendAck)
            acked[ack.client_seq] = ack
        # a burst, then SIGKILL while it is in flight: some of it may be durable, and every
        # SENDACK that still reaches us must be
        for seq in range(KILL_AFTER_ACKS + 1, N_MESSAGES + 1):
            await sender.send_text("reader", 1, f"msg {seq}".encode(), client_seq=seq)
        await asyncio.sleep(0.01)  # let part of the burst reach the log; any timing is valid
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        try:
            while True:
                ack = await sender.expect(wk.SendAck, timeout_s=5)
                acked[ack.client_seq] = ack
        except (ConnectionClosedError, ConnectionError, TimeoutError):
            pass
        await sender.close()
    assert len(acked) >= KILL_AFTER_ACKS
    assert all(a.reason_code == 1 for a in acked.values())

    async with serve(data_dir, tmp_path / "second.log") as (_, ports):
        http = Http(ports["http"])
        try:
            status, sync = await http.post(
                "/channel/messagesync",
                {"login_uid": "reader", "channel_id": "writer", "channel_type": 1, "limit": 10000},
            )
        finally:
            await http.close()
    assert status == 200
    stored = sync["messages"]
    seqs = [m["message_seq"] for m in stored]
    assert seqs == list(range(1, len(stored) + 1)), "gap or duplicate in the stored seqs"
    by_id = {m["message_id"]: m for m in stored}
    assert len(by_id) == len(stored), "a message id is stored twice"
    for client_seq, ack in acked.items():
        message = by_id.get(ack.message_id)
        assert message is not None, f"acknowledged message {client_seq} was lost"
        assert message["message_seq"] == ack.message_seq
        assert base64.b64decode(message["payload"]) == f"msg {client_seq}".encode()
    # the stored order is the send order (one connection, one channel)
    client_seqs = [int(base64.b64decode(m["payload"]).split()[1]) for m in stored]
    assert client_seqs == sorted(client_seqs)
