"""Messages end to end over real sockets: one-to-one and group chat, other devices, RECVACK
retries, msgKey failures, no_persist."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.node_harness import (
    ConnectionClosedError,
    Http,
    RawConn,
    running_node,
)
from tests.waiting import wait_until
from wukongim.protocol import wkproto as wk

pytestmark = pytest.mark.integration

N_MESSAGES = 30


async def _open(node: object, transport: str, uid: str, version: int, **kw: object) -> RawConn:
    port = node.tcp_port if transport == "tcp" else node.ws_port  # type: ignore[attr-defined]
    conn = await (RawConn.tcp(port) if transport == "tcp" else RawConn.ws(port))
    assert (await conn.connect(uid, version=version, **kw)).reason_code == 1  # type: ignore[arg-type]
    return conn


async def _collect_recvs(conn: RawConn, n: int) -> list[wk.Recv]:
    got: list[wk.Recv] = []
    while len(got) < n:
        frame = await conn.next_frame()
        assert isinstance(frame, wk.Recv), frame
        got.append(frame)
        await conn.ack(frame)
    return got


async def _collect_acks(conn: RawConn, n: int) -> list[wk.SendAck]:
    return [await conn.expect(wk.SendAck) for _ in range(n)]


@pytest.mark.parametrize(("transport", "version"), [("tcp", 5), ("tcp", 2), ("ws", 5), ("ws", 2)])
async def test_one_to_one_both_ways(tmp_path: Path, transport: str, version: int) -> None:
    async with running_node(tmp_path) as node:
        alice = await _open(node, transport, "alice", version)
        bob = await _open(node, "tcp", "bob", 5)
        for i in range(1, N_MESSAGES + 1):
            await alice.send_text("bob", 1, f"a->b {i}".encode(), client_seq=i)
            await bob.send_text("alice", 1, f"b->a {i}".encode(), client_seq=i)
        alice_acks, alice_recvs = await _collect_acks_and_recvs(alice, N_MESSAGES)
        bob_acks, bob_recvs = await _collect_acks_and_recvs(bob, N_MESSAGES)
        for acks in (alice_acks, bob_acks):
            assert [a.client_seq for a in acks] == list(range(1, N_MESSAGES + 1))
            assert all(a.reason_code == 1 and a.red_dot for a in acks)
        # one channel, one seq space: the 2N acks are exactly 1..2N
        seqs = sorted(a.message_seq for a in alice_acks + bob_acks)
        assert seqs == list(range(1, 2 * N_MESSAGES + 1))
        for conn, recvs, peer, prefix in (
            (alice, alice_recvs, "bob", "b->a"),
            (bob, bob_recvs, "alice", "a->b"),
        ):
            assert [r.message_seq for r in recvs] == sorted(r.message_seq for r in recvs)
            texts = [conn.open_recv(r) for r in recvs]
            assert texts == [f"{prefix} {i}".encode() for i in range(1, N_MESSAGES + 1)]
            assert all(r.channel_id == peer and r.from_uid == peer for r in recvs)
            assert len({r.message_id for r in recvs}) == N_MESSAGES
        assert alice.frames == []
        assert bob.frames == []


async def _collect_acks_and_recvs(
    conn: RawConn, n_acks: int, n_recvs: int | None = None
) -> tuple[list[wk.SendAck], list[wk.Recv]]:
    """Read until the SENDACKs and RECVs arrived (interleaved), acking every RECV."""
    acks: list[wk.SendAck] = []
    recvs: list[wk.Recv] = []
    n_recvs = n_acks if n_recvs is None else n_recvs
    while len(acks) < n_acks or len(recvs) < n_recvs:
        frame = await conn.next_frame()
        if isinstance(frame, wk.SendAck):
            acks.append(frame)
        else:
            assert isinstance(frame, wk.Recv), frame
            recvs.append(frame)
            await conn.ack(frame)
    return acks, recvs


async def test_senders_other_device_gets_a_copy(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        phone = await _open(node, "tcp", "carol", 5, device_flag=0)
        web = await _open(node, "ws", "carol", 2, device_flag=1)
        dave = await _open(node, "tcp", "dave", 5)
        await phone.send_text("dave", 1, b"hello", client_seq=7)
        ack = await phone.expect(wk.SendAck)
        assert (ack.client_seq, ack.message_seq, ack.reason_code) == (7, 1, 1)
        copy = await web.expect(wk.Recv)
        assert web.open_recv(copy) == b"hello"
        assert copy.channel_id == "dave"
        assert copy.from_uid == "carol"
        assert not copy.red_dot
        got = await dave.expect(wk.Recv)
        assert dave.open_recv(got) == b"hello"
        assert got.channel_id == "carol"
        assert got.red_dot
        assert got.message_id == copy.message_id == ack.message_id
        # the exact sending connection gets nothing but its SENDACK
        await phone.write(wk.PING_BYTES)
        assert await phone.next_frame() == wk.PONG


async def test_group_chat(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        http = Http(node.http_port)
        try:
            status, body = await http.post(
                "/channel",
                {"channel_id": "g1", "channel_type": 2, "subscribers": ["u1", "u2", "u3"]},
            )
            assert (status, body) == (200, {"status": 200})
            users = {uid: await _open(node, "tcp", uid, 5) for uid in ("u1", "u2", "u3")}
            outsider = await _open(node, "ws", "stranger", 5)
            for i in range(1, 6):
                for uid, conn in users.items():
                    await conn.send_text("g1", 2, f"{uid} #{i}".encode(), client_seq=i)
            for uid, conn in users.items():
                acks, recvs = await _collect_acks_and_recvs(conn, 5, 10)
                assert [a.reason_code for a in acks] == [1] * 5
                # the 10 messages of the others, once each, in seq order, intact
                assert [r.message_seq for r in recvs] == sorted(r.message_seq for r in recvs)
                assert len({r.message_seq for r in recvs}) == 10
                assert all(r.from_uid != uid for r in recvs)
                for other in users:
                    if other != uid:
                        texts = [conn.open_recv(r) for r in recvs if r.from_uid == other]
                        assert texts == [f"{other} #{i}".encode() for i in range(1, 6)]
            await outsider.send_text("g1", 2, b"let me in", client_seq=1)
            ack = await outsider.expect(wk.SendAck)
            assert (ack.reason_code, ack.message_seq) == (3, 0)
            status, sync = await http.post(
                "/channel/messagesync",
                {"login_uid": "u1", "channel_id": "g1", "channel_type": 2, "limit": 100},
            )
            assert status == 200
            assert [m["message_seq"] for m in sync["messages"]] == list(range(1, 16))
        finally:
            await http.close()


async def test_group_chat_every_member_gets_each_message_once_in_order(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        http = Http(node.http_port)
        try:
            members = ["m1", "m2", "m3", "m4"]
            await http.post(
                "/channel", {"channel_id": "g", "channel_type": 2, "subscribers": members}
            )
            conns = {uid: await _open(node, "tcp", uid, 5) for uid in members}
            for i in range(1, 11):
                await conns["m1"].send_text("g", 2, f"{i}".encode(), client_seq=i)
            await _collect_acks(conns["m1"], 10)
            for uid in members[1:]:
                recvs = await _collect_recvs(conns[uid], 10)
                assert [r.message_seq for r in recvs] == list(range(1, 11))
                assert [conns[uid].open_recv(r) for r in recvs] == [
                    f"{i}".encode() for i in range(1, 11)
                ]
                assert {r.channel_id for r in recvs} == {"g"}
        finally:
            await http.close()


async def test_unacked_recv_is_resent_identically(tmp_path: Path) -> None:
    async with running_node(
        tmp_path, recv_retry_interval_s=0.1, recv_retry_scan_s=0.05, recv_retry_max=2
    ) as node:
        sender = await _open(node, "tcp", "s", 5)
        lazy = await _open(node, "ws", "lazy", 5)
        await sender.send_text("lazy", 1, b"are you there", client_seq=1)
        first = await lazy.expect(wk.Recv)
        again = await lazy.expect(wk.Recv)
        assert again == first
        assert lazy.ws_messages[-1] == lazy.ws_messages[-2]
        third = await lazy.expect(wk.Recv)
        assert third == first
        # retry_max = 2: nothing more after two re-sends
        await lazy.write(wk.PING_BYTES)
        assert await lazy.next_frame(timeout_s=2) == wk.PONG
        # an acked RECV is not re-sent
        await sender.send_text("lazy", 1, b"second", client_seq=2)
        second = await lazy.expect(wk.Recv)
        await lazy.ack(second)
        await wait_until(lambda: not any(s.pending_recv for s in node.registry))


async def test_bad_msg_key_gets_sendack_9_and_nothing_is_stored(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        http = Http(node.http_port)
        try:
            eve = await _open(node, "tcp", "eve", 5)
            frank = await _open(node, "tcp", "frank", 5)
            await eve.send_text("frank", 1, b"tampered", client_seq=3, bad_msg_key=True)
            ack = await eve.expect(wk.SendAck)
            assert (ack.client_seq, ack.message_seq, ack.reason_code) == (3, 0, 9)
            assert ack.message_id > 0
            _, sync = await http.post(
                "/channel/messagesync",
                {"login_uid": "eve", "channel_id": "frank", "channel_type": 1, "limit": 10},
            )
            assert sync["messages"] == []
            await frank.write(wk.PING_BYTES)
            assert await frank.next_frame() == wk.PONG
        finally:
            await http.close()


async def test_no_persist_is_delivered_but_not_stored(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        http = Http(node.http_port)
        try:
            gina = await _open(node, "tcp", "gina", 5)
            hank = await _open(node, "tcp", "hank", 5)
            await gina.send_text("hank", 1, b"typing...", client_seq=1, no_persist=True)
            ack = await gina.expect(wk.SendAck)
            assert (ack.message_seq, ack.reason_code, ack.no_persist) == (0, 1, True)
            recv = await hank.expect(wk.Recv)
            assert recv.no_persist
            assert recv.message_seq == 0
            assert hank.open_recv(recv) == b"typing..."
            _, sync = await http.post(
                "/channel/messagesync",
                {"login_uid": "gina", "channel_id": "hank", "channel_type": 1, "limit": 10},
            )
            assert sync["messages"] == []
            assert not any(s.pending_recv for s in node.registry)
        finally:
            await http.close()


async def test_sync_once_recvack_from_master_moves_the_read_pointer(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_auth_on=True) as node:
        http = Http(node.http_port)
        try:
            for uid, level in (("boss", 1), ("temp", 0), ("cmd", 0)):
                body = {"uid": uid, "token": "t", "device_flag": 1, "device_level": level}
                assert (await http.post("/user/token", body))[0] == 200
            await http.post(
                "/channel",
                {"channel_id": "ops", "channel_type": 2, "subscribers": ["boss", "temp", "cmd"]},
            )
            boss = await _open(node, "tcp", "boss", 5, token="t")
            temp = await _open(node, "tcp", "temp", 5, token="t")
            sender = await _open(node, "tcp", "cmd", 5, token="t")
            await sender.send_text("ops", 2, b'{"type":99}', client_seq=1, sync_once=True)
            ack = await sender.expect(wk.SendAck)
            assert (ack.reason_code, ack.message_seq, ack.sync_once) == (1, 1, True)
            for conn in (boss, temp):
                recv = await conn.expect(wk.Recv)
                assert recv.sync_once
                assert recv.channel_id == "ops"
                await conn.ack(recv)

            def pointer(uid: str) -> int:
                row = node.machine.conversation_row(uid, "ops____cmd", 2)
                return -1 if row is None else row.readed_to_msg_seq

            await wait_until(lambda: pointer("boss") == 1)
            await wait_until(lambda: not any(s.pending_recv for s in node.registry))
            assert pointer("temp") == 0  # a slave's RECVACK moves nothing
        finally:
            await http.close()


async def test_oversized_string_field_hurts_nobody_else(tmp_path: Path) -> None:
    """A clientMsgNo longer than the 32,767 bytes a RECV can carry (the u16 SEND decoder
    takes up to 65,535), followed by a normal SEND in the same read, so in the same batch:
    either the connection is cut (decoder) or the normal message still gets through."""
    async with running_node(tmp_path) as node:
        evil = await _open(node, "tcp", "evil", 5)
        bob = await _open(node, "tcp", "bob", 5)
        assert evil.crypto is not None
        payload = evil.crypto.encrypt_payload(b"fine")
        key = evil.crypto.send_msg_key(2, "ok", "bob", 1, payload)
        normal = wk.encode(wk.Send(0, 2, "ok", "bob", 1, payload, key), 5)
        await evil.write(_send_with_long_client_msg_no(evil, "bob", "n" * 40_000) + normal)
        try:
            acks = [await evil.expect(wk.SendAck) for _ in range(2)]
        except ConnectionClosedError:
            acks = []  # the decoder refused the frame: also fine
        if acks:
            assert [a.client_seq for a in acks] == [1, 2]
            assert acks[1].reason_code == 1
            recv = await bob.expect(wk.Recv)
            assert bob.open_recv(recv) == b"fine"
        alice = await _open(node, "tcp", "alice", 5)
        await alice.send_text("bob", 1, b"still here", client_seq=1)
        assert (await alice.expect(wk.SendAck)).reason_code == 1
        while (frame := await bob.expect(wk.Recv)).from_uid != "alice":
            pass
        assert bob.open_recv(frame) == b"still here"


def _send_with_long_client_msg_no(conn: RawConn, to: str, client_msg_no: str) -> bytes:
    """A v5 SEND built by hand: our encoder refuses strings over 32,767 bytes."""
    assert conn.crypto is not None
    payload = conn.crypto.encrypt_payload(b"x")
    key = conn.crypto.send_msg_key(1, client_msg_no, to, 1, payload)

    def s(text: str) -> bytes:
        raw = text.encode()
        return len(raw).to_bytes(2) + raw

    body = b"".join(
        (b"\x00", (1).to_bytes(4), s(client_msg_no), s(to), b"\x01", bytes(4), s(key), payload)
    )
    n, length = len(body), bytearray()
    while True:
        digit, n = n & 0x7F, n >> 7
        length.append(digit | (0x80 if n else 0))
        if not n:
            break
    return b"\x32" + bytes(length) + body
