"""Spec conformance, checked from the outside: a real node in-process, real TCP and WebSocket
sockets, and `rawclient` (a WKProto client written from the spec, sharing no code with
`wukongim.protocol`). Section numbers refer to shared/spec/wkproto.md and http-api.md."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import socket
import string
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.integration import rawclient as rc
from tests.integration.rawclient import (
    DUP,
    NO_PERSIST,
    RED_DOT,
    SYNC_ONCE,
    Node,
    Recv,
    WkClient,
    serve,
    unique,
)
from tests.waiting import wait_until
from wukongim.clock import SystemClock

pytestmark = pytest.mark.integration

VERSIONS = [2, 3, 4, 5]
TRANSPORTS = ["tcp", "ws"]
ALNUM = set(string.ascii_letters + string.digits)
TIME_DIFF_MS = 1_000_000


def now_ms() -> int:
    return SystemClock().now_ms()


def text(n: int | str) -> bytes:
    return json.dumps({"type": 1, "content": f"hello {n} 悟空"}, ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------
# The checker checks itself against the spec's vectors (§10) first.


def test_rawclient_reproduces_spec_vectors() -> None:
    private = X25519PrivateKey.from_private_bytes(b"0123456789abcdef0123456789abcdef")
    assert rc.public_key_b64(private) == "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4="
    keys = rc.derive_keys(
        private, "gyi6Dzmb3lRWxOKYuc4vNZ3WL22Wi9J00XhqMc2PX2E=", "Salt0123456789AB"
    )
    assert keys.aes_key == b"77991ccbd1316c22"
    plaintext = b'{"content":"hello","type":1}'
    assert keys.encrypt(plaintext) == b"EmhRRe9O+j/I95nIOcxqOO6jATBGfjjN9lgNeGn3wuQ="
    client = WkClient([])
    client.keys, client.uid = keys, "u1"
    for version, expected in (
        (
            5,
            "326200000000010004636d6e3100027532010000000000203665636365366130616339373430393065"
            "303237343432633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a4154"
            "4247666a6a4e396c674e65476e337775513d",
        ),
        (
            2,
            "325e00000000010004636d6e31000275320100203665636365366130616339373430393065303237343"
            "432633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a41544247666a6a"
            "4e396c674e65476e337775513d",
        ),
    ):
        client.version = version
        _, data = client.encode_send("u2", 1, plaintext, client_seq=1, client_msg_no="cmn1")
        assert data.hex() == expected
    recv_hex = (
        "52720000206332353133353830326438353535333461303861643233316562376534633933000275310002"
        "753101000000000004636d6e31112210f47de98115000000016553f101456d68525265394f2b6a2f493935"
        "6e494f6378714f4f366a41544247666a6a4e396c674e65476e337775513d"
    )
    [raw] = rc.split_frames(bytearray.fromhex(recv_hex))
    recv = rc.parse_frame(raw, 5)
    assert isinstance(recv, Recv)
    assert client.open(recv) == plaintext
    connect = rc.encode_connect(
        5, 1, "dev1W", "u1", "tk1", 1700000000000, rc.public_key_b64(private)
    )
    assert connect.hex() == (
        "1048050100056465763157000275310003746b310000018bcfe56800002c686c4637774d4f66364861335a"
        "47793134303767506139787a4c7257644644426170634b324d7641506e343d"
    )
    assert [rc.varint(n).hex() for n in (0x4E, 200, 16384, 268435455)] == [
        "4e",
        "c801",
        "808001",
        "ffffff7f",
    ]


# ---------------------------------------------------------------------------------------------
# CONNECT / CONNACK (§3.1, §3.2, §2.5, §5)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", [*VERSIONS, 6])
async def test_connack_layout_per_version(tmp_path: Path, transport: str, version: int) -> None:
    async with serve(tmp_path) as node:
        conn = await node.client(transport)
        sent_ms = now_ms() - TIME_DIFF_MS
        connack = await conn.connect("alice", version=version, client_ts_ms=sent_ms)
        assert connack.reason == 1
        negotiated = min(version, 5)
        if version > 3:
            assert connack.raw[0] == 0x21
            assert connack.server_version == negotiated
        else:
            assert connack.raw[0] == 0x20
            assert connack.server_version is None
        if negotiated >= 4:
            assert connack.node_id == node.running.config.node_id
        else:
            assert connack.node_id is None
        assert connack.trailing == b"", "CONNACK body longer than the spec layout"
        assert len(connack.server_key) == 44
        assert len(base64.b64decode(connack.server_key, validate=True)) == 32
        assert len(connack.salt) == 16
        assert set(connack.salt) <= ALNUM
        # timeDiff = server_now - clientTimestamp; the client clock here is 1000 s behind.
        assert TIME_DIFF_MS - 60_000 < connack.time_diff < TIME_DIFF_MS + 60_000
        await conn.write(b"\x70")
        pong = await conn.next_raw()
        assert pong.raw == b"\x80"


async def test_each_connection_gets_its_own_salt_and_server_key(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        acks = [await (await node.tcp()).connect(f"u{i}") for i in range(4)]
        assert len({a.salt for a in acks}) == 4
        assert len({a.server_key for a in acks}) == 4


# ---------------------------------------------------------------------------------------------
# SEND / SENDACK / RECV / RECVACK (§3.3–3.6, §7.2)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", VERSIONS)
async def test_one_to_one_roundtrip(tmp_path: Path, transport: str, version: int) -> None:
    async with serve(tmp_path) as node:
        other = "ws" if transport == "tcp" else "tcp"
        alice = await node.online("alice", transport, version=version)
        alice2 = await node.online("alice", other, version=version, device_flag=0)
        bob = await node.online("bob", other, version=version)

        ack = await alice.chat("bob", 1, text(1), expire=3600, client_msg_no="cmn-a1")
        assert ack.reason == 1
        assert ack.flags == RED_DOT
        assert ack.client_seq == 1
        assert ack.message_seq == 1
        assert ack.message_id > 0
        assert ack.trailing == b""

        got = await bob.expect_recv()
        assert got.raw[0] == 0x50 | RED_DOT
        assert (got.from_uid, got.channel_id, got.channel_type) == ("alice", "alice", 1)
        assert (got.message_id, got.message_seq) == (ack.message_id, 1)
        assert got.client_msg_no == "cmn-a1"
        assert got.expire == (3600 if version >= 3 else None)
        assert got.setting == 0
        assert bob.open(got) == text(1)
        await bob.ack(got)

        copy = await alice2.expect_recv()
        assert copy.flags & RED_DOT == 0, "RedDot must be cleared for the sender's devices"
        assert (copy.from_uid, copy.channel_id) == ("alice", "bob")
        assert copy.message_id == ack.message_id
        assert alice2.open(copy) == text(1)
        await alice2.ack(copy)

        # The sending connection never gets its own RECV: alice2 already has it, so a PONG that
        # alice reads next proves nothing was queued to alice before it.
        await alice.write(b"\x70")
        assert (await alice.next_raw()).raw == b"\x80"

        back = await bob.chat("alice", 1, text(2))
        assert (back.reason, back.message_seq) == (1, 2)
        for conn in (alice, alice2):
            got = await conn.expect_recv()
            assert (got.from_uid, got.channel_id, got.message_seq) == ("bob", "bob", 2)
            assert got.flags & RED_DOT
            assert conn.open(got) == text(2)

        stored = await node.api.messages("alice", "bob", 1)
        assert [m["message_seq"] for m in stored] == [1, 2]
        assert [base64.b64decode(m["payload"]) for m in stored] == [text(1), text(2)]
        assert stored[0]["message_id"] == ack.message_id
        assert stored[0]["from_uid"] == "alice"


@pytest.mark.parametrize(
    "flags",
    [0, RED_DOT, DUP | RED_DOT, SYNC_ONCE, NO_PERSIST, DUP | SYNC_ONCE | RED_DOT | NO_PERSIST],
)
async def test_sendack_copies_all_four_flags(tmp_path: Path, flags: int) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        bob = await node.online("bob", "ws")
        ack = await alice.chat("bob", 1, text("f"), flags=flags)
        assert ack.reason == 1
        assert ack.flags == flags
        if flags & NO_PERSIST:
            assert ack.message_seq == 0
        else:
            assert ack.message_seq == 1
        stored = await node.api.messages("alice", "bob", 1)
        if flags & (NO_PERSIST | SYNC_ONCE):  # not stored, or stored in the ____cmd channel
            assert stored == []
        else:
            assert [m["message_id"] for m in stored] == [ack.message_id]
        got = await bob.expect_recv()
        assert got.flags == flags & (RED_DOT | SYNC_ONCE | NO_PERSIST), "DUP is not copied to RECV"
        assert got.message_id == ack.message_id
        assert got.message_seq == ack.message_seq
        assert bob.open(got) == text("f")


@pytest.mark.parametrize("version", [2, 4, 5])
async def test_setting_and_topic_are_copied(tmp_path: Path, version: int) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice", version=version)
        bob = await node.online("bob", version=version)
        setting = 0x80 | rc.SETTING_TOPIC
        ack = await alice.chat("bob", 1, text("t"), setting=setting, topic="news")
        assert ack.reason == 1
        got = await bob.expect_recv()
        assert got.setting == setting
        assert got.topic == "news"
        assert bob.open(got) == text("t")


async def test_message_seq_is_per_channel_and_gap_free(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        await node.online("bob")
        await node.online("carol")
        seqs: dict[str, list[int]] = {"bob": [], "carol": []}
        ids: set[int] = set()
        for i in range(12):
            peer = "bob" if i % 3 else "carol"
            ack = await alice.chat(peer, 1, text(i))
            assert ack.reason == 1
            assert ack.message_id > 0
            ids.add(ack.message_id)
            seqs[peer].append(ack.message_seq)
        assert seqs["bob"] == list(range(1, 9))
        assert seqs["carol"] == list(range(1, 5))
        assert len(ids) == 12


async def test_recvack_stops_retries_and_retries_are_bounded(tmp_path: Path) -> None:
    retry_max = 2
    async with serve(
        tmp_path, recv_retry_interval_s=1.0, recv_retry_scan_s=0.05, recv_retry_max=retry_max
    ) as node:
        alice = await node.online("alice")
        bob = await node.online("bob")
        seen: list[Recv] = []

        async def read_bob() -> None:
            while True:
                got = await bob.next_frame(30)
                if isinstance(got, Recv):
                    seen.append(got)
                    if got.client_msg_no == "acked":
                        await bob.ack(got)

        def count(cmn: str) -> int:
            return sum(1 for m in seen if m.client_msg_no == cmn)

        reader = asyncio.create_task(read_bob())
        try:
            assert (await alice.chat("bob", 1, text(1), client_msg_no="acked")).reason == 1
            assert (await alice.chat("bob", 1, text(2), client_msg_no="unacked")).reason == 1
            await wait_until(lambda: count("unacked") >= 2)
            firsts = [m for m in seen if m.client_msg_no == "unacked"]
            assert firsts[1].raw == firsts[0].raw, "a retry re-sends the identical frame"
            # A later unacked message catches up with the earlier one only if retries stop.
            assert (await alice.chat("bob", 1, text(3), client_msg_no="late")).reason == 1
            await wait_until(lambda: count("late") >= count("unacked") >= 2)
            assert count("unacked") <= retry_max + 1
            assert count("acked") == 1, "RECVACK must stop retries"
        finally:
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_msg_key_gets_9_and_nothing_is_stored(tmp_path: Path, transport: str) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice", transport)
        bob = await node.online("bob", transport)
        bad = await alice.chat("bob", 1, text("bad"), bad_msg_key=True)
        assert bad.reason == 9
        assert bad.message_seq == 0
        # a right msgKey over a payload that is not base64 / not AES
        for wire in (b"not base64 at all!", base64.b64encode(b"x" * 17), b""):
            ack = await alice.chat("bob", 1, b"", wire=wire)
            assert ack.reason == 9, wire
        good = await alice.chat("bob", 1, text("good"))
        assert (good.reason, good.message_seq) == (1, 1)
        got = await bob.expect_recv()
        assert bob.open(got) == text("good")
        stored = await node.api.messages("bob", "alice", 1)
        assert [m["message_seq"] for m in stored] == [1]


# ---------------------------------------------------------------------------------------------
# Permissions (http-api §2.7, §2.14), set through the HTTP API


async def _group(node: Node, group: str, members: list[str], **flags: int) -> None:
    reply = await node.api.ok(
        "/channel", {"channel_id": group, "channel_type": 2, "subscribers": members, **flags}
    )
    assert reply == {"status": 200}


async def _assert_group_history(node: Node, group: str, member: str, seqs: list[int]) -> None:
    stored = await node.api.messages(member, group, 2)
    assert [m["message_seq"] for m in stored] == seqs


async def test_group_delivery_and_non_member(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "g1", ["alice", "bob"])
        alice = await node.online("alice")
        bob = await node.online("bob", "ws")
        mallory = await node.online("mallory")
        ack = await alice.chat("g1", 2, text("g"))
        assert (ack.reason, ack.message_seq) == (1, 1)
        got = await bob.expect_recv()
        assert (got.channel_id, got.channel_type, got.from_uid) == ("g1", 2, "alice")
        assert bob.open(got) == text("g")
        assert (await mallory.chat("g1", 2, text("m"))).reason == 3
        assert (await mallory.chat("never-created", 2, text("m"))).reason == 3
        assert (await alice.chat("never-created", 2, text("m"))).reason == 3
        await _assert_group_history(node, "g1", "alice", [1])
        assert await node.api.messages("alice", "never-created", 2) == []


async def test_banned_group_19_disbanded_24(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "g1", ["alice", "bob"], ban=1)
        await _group(node, "g2", ["alice", "bob"])
        alice = await node.online("alice")
        assert (await alice.chat("g1", 2, text(1))).reason == 19
        assert (await alice.chat("g2", 2, text(2))).reason == 1
        assert await node.api.ok("/channel/delete", {"channel_id": "g2", "channel_type": 2}) == {
            "status": 200
        }
        assert (await alice.chat("g2", 2, text(3))).reason == 24
        await _group(node, "g1", ["alice", "bob"])  # re-create without ban: un-banned
        assert (await alice.chat("g1", 2, text(4))).reason == 1
        await _assert_group_history(node, "g1", "alice", [1])
        await _assert_group_history(node, "g2", "alice", [1])


async def test_channel_info_ban_blocks_group_sends(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "g1", ["alice"])
        await node.api.ok("/channel/info", {"channel_id": "g1", "channel_type": 2, "ban": 1})
        alice = await node.online("alice")
        assert (await alice.chat("g1", 2, text(1))).reason == 19
        await node.api.ok("/channel/info", {"channel_id": "g1", "channel_type": 2, "disband": 1})
        assert (await alice.chat("g1", 2, text(1))).reason == 24


async def test_denylist_gives_4(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "g1", ["alice", "bob"])
        body: dict[str, Any] = {"channel_id": "g1", "channel_type": 2, "uids": ["bob"]}
        assert await node.api.ok("/channel/blacklist_add", body) == {"status": 200}
        # person denylist: channel (bob, 1) lists users that may not send to bob
        body = {"channel_id": "bob", "channel_type": 1, "uids": ["alice"]}
        assert await node.api.ok("/channel/blacklist_add", body) == {"status": 200}
        alice = await node.online("alice")
        bob = await node.online("bob")
        assert (await bob.chat("g1", 2, text(1))).reason == 4
        assert (await alice.chat("bob", 1, text(2))).reason == 4
        assert (await bob.chat("alice", 1, text(3))).reason == 1
        assert (await alice.chat("g1", 2, text(4))).reason == 1
        await node.api.ok("/channel/blacklist_remove", body)
        assert (await alice.chat("bob", 1, text(5))).reason == 1
        await _assert_group_history(node, "g1", "alice", [1])
        stored = await node.api.messages("alice", "bob", 1)
        assert [base64.b64decode(m["payload"]) for m in stored] == [text(3), text(5)]


async def test_user_send_ban_gives_25(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await node.api.ok(
            "/channel/info", {"channel_id": "alice", "channel_type": 1, "send_ban": 1}
        )
        alice = await node.online("alice")
        assert (await alice.chat("bob", 1, text(1))).reason == 25
        assert await node.api.messages("alice", "bob", 1) == []


async def test_banned_user_gets_connack_19(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await node.api.ok("/channel/info", {"channel_id": "eve", "channel_type": 1, "ban": 1})
        for version in (2, 5):
            conn = await node.tcp()
            connack = await conn.connect("eve", version=version)
            assert connack.reason == 19
            assert (connack.server_key, connack.salt) == ("", "")
            assert connack.trailing == b""
            assert await conn.wait_closed() == []
        await rc.chat_works(node)


# ---------------------------------------------------------------------------------------------
# Exactly once, in order, under load (§3.5, http-api §2.3, §2.16)


async def _collect(conn: WkClient, want: int, out: list[Recv]) -> None:
    """Read RECVs (acking them) until `want` have arrived; SENDACKs go to conn.skipped."""
    while len(out) < want:
        got = await conn.next_frame(30)
        if isinstance(got, Recv):
            out.append(got)
            await conn.ack(got)
        else:
            conn.skipped.append(got)


async def _pipeline(conn: WkClient, channel_id: str, channel_type: int, n: int) -> dict[str, bytes]:
    """Write n SENDs back to back in a few large writes; return clientMsgNo -> plaintext."""
    sent: dict[str, bytes] = {}
    batch = bytearray()
    for i in range(n):
        body = text(f"{conn.uid}#{i}") + os.urandom(i % 7).hex().encode()
        cmn = f"{conn.uid}-{channel_id}-{i}"
        _, data = conn.encode_send(channel_id, channel_type, body, client_msg_no=cmn)
        sent[cmn] = body
        batch += data
        if len(batch) > 3000:
            await conn.write(bytes(batch))
            batch.clear()
    await conn.write(bytes(batch))
    return sent


def _check_stream(recvs: list[Recv], conn: WkClient, expected: dict[str, bytes]) -> None:
    cmns = [m.client_msg_no for m in recvs]
    assert sorted(cmns) == sorted(expected), "each message exactly once"
    seqs = [m.message_seq for m in recvs]
    assert seqs == sorted(seqs), "RECVs must arrive in seq order"
    for m in recvs:
        assert conn.open(m) == expected[m.client_msg_no]


async def test_group_exactly_once_in_order_under_load(tmp_path: Path) -> None:
    per_sender = 60
    async with serve(tmp_path) as node:
        senders = [f"s{i}" for i in range(4)]
        listeners = ["l0", "l1"]
        await _group(node, "load", senders + listeners)
        conns = {
            uid: await node.online(uid, "ws" if i % 2 else "tcp", version=(5, 4, 3, 2)[i % 4])
            for i, uid in enumerate(senders + listeners)
        }
        sent_by: dict[str, dict[str, bytes]] = {}
        received: dict[str, list[Recv]] = {uid: [] for uid in conns}
        everything: dict[str, bytes] = {}
        readers = []
        for uid, conn in conns.items():
            want = len(senders) * per_sender - (per_sender if uid in senders else 0)
            readers.append(asyncio.create_task(_collect(conn, want, received[uid])))
        writes = [_pipeline(conns[uid], "load", 2, per_sender) for uid in senders]
        for uid, sent in zip(senders, await asyncio.gather(*writes), strict=True):
            sent_by[uid] = sent
            everything.update(sent)
        await asyncio.gather(*readers)
        for uid, conn in conns.items():
            expected = {
                cmn: body
                for sender, sent in sent_by.items()
                if sender != uid
                for cmn, body in sent.items()
            }
            _check_stream(received[uid], conn, expected)
        acks: list[rc.SendAck] = []
        for uid in senders:
            conn = conns[uid]
            while sum(isinstance(f, rc.SendAck) for f in conn.skipped) < per_sender:
                conn.skipped.append(await conn.next_frame())
            mine = [f for f in conn.skipped if isinstance(f, rc.SendAck)]
            mine.sort(key=lambda a: a.client_seq)
            assert [a.client_seq for a in mine] == list(range(1, per_sender + 1))
            seqs = [a.message_seq for a in mine]
            assert seqs == sorted(seqs), "one connection's sends are sequenced in send order"
            assert all(a.reason == 1 for a in mine)
            acks += mine
        assert sorted(a.message_seq for a in acks) == list(range(1, len(everything) + 1))
        stored = await node.api.messages("l0", "load", 2)
        assert [m["message_seq"] for m in stored] == list(range(1, len(everything) + 1))
        assert {m["client_msg_no"]: base64.b64decode(m["payload"]) for m in stored} == everything


async def test_one_to_one_exactly_once_in_order_under_load(tmp_path: Path) -> None:
    per_side = 150
    async with serve(tmp_path) as node:
        a = await node.online("pa", "tcp")
        b = await node.online("pb", "ws", version=4)
        got_a: list[Recv] = []
        got_b: list[Recv] = []
        readers = [
            asyncio.create_task(_collect(a, per_side, got_a)),
            asyncio.create_task(_collect(b, per_side, got_b)),
        ]
        sent_a, sent_b = await asyncio.gather(
            _pipeline(a, "pb", 1, per_side), _pipeline(b, "pa", 1, per_side)
        )
        await asyncio.gather(*readers)
        _check_stream(got_b, b, sent_a)
        _check_stream(got_a, a, sent_b)
        assert all(m.channel_id == "pa" for m in got_b)
        assert all(m.channel_id == "pb" for m in got_a)
        seqs = sorted(m.message_seq for m in got_a + got_b)
        assert seqs == list(range(1, 2 * per_side + 1))
        stored = await node.api.messages("pa", "pb", 1)
        assert len(stored) == 2 * per_side


async def test_ws_burst_is_one_frame_per_ws_message(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        sender = await node.online("burst-s", "tcp")
        listener = await node.online("burst-l", "ws", version=2)
        got: list[Recv] = []
        reader = asyncio.create_task(_collect(listener, 100, got))
        await _pipeline(sender, "burst-l", 1, 100)
        await reader
        assert listener.ws_messages == 1 + len(got)  # CONNACK + one RECV per message
        assert listener.ws_violations == []


# ---------------------------------------------------------------------------------------------
# More layouts: stream fields (v2-4), version 0/1, big frames, clientSeq range


@pytest.mark.parametrize("version", [2, 4, 5])
async def test_stream_setting_layout_per_version(tmp_path: Path, version: int) -> None:
    """Setting 0x02: SEND carries streamNo and RECV the stream triple only for 2 <= v < 5."""
    async with serve(tmp_path) as node:
        alice = await node.online("alice", version=version)
        bob = await node.online("bob", "ws", version=version)
        setting = rc.SETTING_STREAM
        ack = await alice.chat("bob", 1, text("s"), setting=setting, stream_no="st1")
        assert ack.reason == 1
        got = await bob.expect_recv()
        assert got.setting == rc.SETTING_STREAM
        assert got.message_id == ack.message_id
        if version < 5:
            assert got.stream is not None
            assert got.stream[1:] == ("st1", ack.message_id)
        else:
            assert got.stream is None
        assert bob.open(got) == text("s")


@pytest.mark.parametrize("version", [0, 1])
async def test_legacy_versions_have_no_expire(tmp_path: Path, version: int) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice", version=version)
        bob = await node.online("bob", version=version)
        assert alice.version == version
        ack = await alice.chat("bob", 1, text("old"))
        assert ack.reason == 1
        got = await bob.expect_recv()
        assert got.expire is None
        assert bob.open(got) == text("old")


async def test_client_seq_full_u32_range_is_echoed(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        for seq in (0, 0x7FFFFFFF, 0xFFFFFFFF):
            ack = await alice.chat("bob", 1, text(seq), client_seq=seq)
            assert (ack.reason, ack.client_seq) == (1, seq)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_frame_of_exactly_one_mib_is_accepted(tmp_path: Path, transport: str) -> None:
    """Only a remaining length OVER 1 048 576 is an error (§2.3)."""
    limit = 1_048_576
    async with serve(tmp_path) as node:
        alice = await node.online("alice", transport)
        bob = await node.online("bob", "tcp")
        plaintext = b"x" * 780_000
        cmn_len = 1
        _, data = alice.encode_send("bob", 1, plaintext, client_msg_no="c" * cmn_len)
        header = 1 + len(rc.varint(limit))
        cmn_len += limit - (len(data) - header)
        seq, data = alice.encode_send("bob", 1, plaintext, client_msg_no="c" * cmn_len)
        assert data[1:header] == rc.varint(limit)
        assert len(data) == header + limit
        await alice.write(data)
        ack = await alice.expect_sendack()
        assert (ack.reason, ack.client_seq) == (1, seq)
        got = await bob.expect_recv()
        assert bob.open(got) == plaintext


async def test_group_copy_to_senders_other_device(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "g1", ["alice", "bob"])
        alice = await node.online("alice")
        alice_pc = await node.online("alice", "ws", device_flag=2)
        bob = await node.online("bob")
        ack = await alice.chat("g1", 2, text("g"))
        assert ack.reason == 1
        for conn, red in ((bob, RED_DOT), (alice_pc, 0)):
            got = await conn.expect_recv()
            assert (got.channel_id, got.channel_type, got.from_uid) == ("g1", 2, "alice")
            assert got.flags & RED_DOT == red
            assert conn.open(got) == text("g")
        await alice.write(b"\x70")
        assert (await alice.next_raw()).raw == b"\x80"


# ---------------------------------------------------------------------------------------------
# HTTP sends, device policy (§3.1 step 4, http-api §1.6, §2.6, §2.13)


async def test_http_send_reaches_every_connection_including_the_senders(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        alice_ws = await node.online("alice", "ws", device_flag=0)
        bob = await node.online("bob", version=2)
        body = {
            "header": {"red_dot": 1},
            "from_uid": "alice",
            "channel_id": "bob",
            "channel_type": 1,
            "payload": base64.b64encode(text("api")).decode(),
        }
        reply = await node.api.ok("/message/send", body)
        assert reply["status"] == 200
        message_id = reply["data"]["message_id"]
        got = await bob.expect_recv()
        assert (got.from_uid, got.channel_id, got.message_id) == ("alice", "alice", message_id)
        assert got.flags & RED_DOT
        assert bob.open(got) == text("api")
        for conn in (alice, alice_ws):
            copy = await conn.expect_recv()
            assert (copy.from_uid, copy.channel_id) == ("alice", "bob")
            assert copy.flags & RED_DOT == 0
            assert conn.open(copy) == text("api")


async def test_mixed_http_and_tcp_sends_keep_seqs_gap_free(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "mix", ["alice", "bob"])
        alice = await node.online("alice")
        payload = base64.b64encode(text("api")).decode()
        body = {"from_uid": "bob", "channel_id": "mix", "channel_type": 2, "payload": payload}
        sends = await _pipeline(alice, "mix", 2, 40)
        replies = await asyncio.gather(*(node.api.ok("/message/send", body) for _ in range(40)))
        assert all(r["status"] == 200 for r in replies)
        stored: list[Any] = []

        async def all_stored() -> None:
            stored[:] = await node.api.messages("alice", "mix", 2)

        async with asyncio.timeout(rc.WAIT_S):
            while len(stored) < 80:
                await all_stored()
        assert [m["message_seq"] for m in stored] == list(range(1, 81))
        assert {m["client_msg_no"] for m in stored} >= set(sends)


async def test_same_device_id_reconnect_closes_the_old_connection(tmp_path: Path) -> None:
    async with serve(tmp_path, kick_close_delay_s=0.1) as node:
        old = await node.online("alice", device_id="phone")
        other = await node.online("alice", device_id="tablet")
        await node.online("alice", "ws", device_id="phone")
        assert await old.wait_closed() == [], "same deviceId: closed without DISCONNECT"
        await other.write(b"\x70")
        assert (await other.next_raw()).raw == b"\x80", "slave: other deviceIds stay"


async def test_master_login_kicks_other_device_ids_with_disconnect_12(tmp_path: Path) -> None:
    async with serve(tmp_path, token_auth_on=True, kick_close_delay_s=0.1) as node:
        body = {"uid": "alice", "token": "t", "device_flag": 1, "device_level": 1}
        assert await node.api.ok("/user/token", body) == {"status": 200}
        body = {"uid": "alice", "token": "t", "device_flag": 0, "device_level": 1}
        assert await node.api.ok("/user/token", body) == {"status": 200}
        first = await node.online("alice", token="t", device_id="laptop")
        app_conn = await node.online("alice", token="t", device_id="phone", device_flag=0)
        await node.online("alice", "ws", token="t", device_id="desktop")
        seen = await first.wait_closed()
        assert len(seen) == 1
        kick = rc.parse_frame(seen[0], 5)
        assert isinstance(kick, rc.Disconnect)
        assert kick.reason == 12
        await app_conn.write(b"\x70")
        assert (await app_conn.next_raw()).raw == b"\x80", "other device flags stay"


async def test_pipelined_pings_get_one_pong_each(tmp_path: Path) -> None:
    """§3.7: a PONG for every PING. (Thousands of PINGs in one read may be closed as a flood:
    docs/conformance-findings.md F6; the bad-input tests cover that.)"""
    async with serve(tmp_path) as node:
        for transport in TRANSPORTS:
            conn = await node.online(unique("p"), transport)
            await conn.write(b"\x70" * 20)
            pongs = [await conn.next_raw() for _ in range(20)]
            assert {p.raw for p in pongs} == {b"\x80"}
            await conn.write(b"\x70")
            assert (await conn.next_raw()).raw == b"\x80"


async def test_recvack_only_clears_the_connection_it_arrives_on(tmp_path: Path) -> None:
    async with serve(
        tmp_path, recv_retry_interval_s=1.0, recv_retry_scan_s=0.05, recv_retry_max=3
    ) as node:
        alice = await node.online("alice")
        acker = await node.online("bob", device_id="b1")
        lazy = await node.online("bob", "ws", device_id="b2")
        assert (await alice.chat("bob", 1, text(1))).reason == 1
        first = await acker.expect_recv()
        await acker.ack(first)
        original = await lazy.expect_recv()
        retry = await lazy.expect_recv()
        assert retry.raw == original.raw
        # by now a retry scan has run after acker's RECVACK; acker must have nothing queued
        await acker.write(b"\x70")
        assert (await acker.next_raw()).raw == b"\x80"


async def test_idle_connections_are_closed_and_pings_keep_them(tmp_path: Path) -> None:
    async with serve(tmp_path, conn_idle_time_s=1.5) as node:
        idle = await node.online("idle")
        busy = await node.online("busy", "ws")
        closed = asyncio.create_task(idle.wait_closed())
        while not closed.done():
            await busy.write(b"\x70")
            assert (await busy.next_raw()).raw == b"\x80"
            await asyncio.sleep(0.05)
        assert await closed == []
        assert (await busy.chat("idle", 1, text(1))).reason == 1


async def test_pipeline_with_rejected_sends_mixed_in(tmp_path: Path) -> None:
    """Every 4th SEND has a bad msgKey: those get 9, the rest keep gap-free seqs and reach the
    peer once each, in order."""
    async with serve(tmp_path) as node:
        alice = await node.online("alice", "ws")
        bob = await node.online("bob", version=3)
        good: dict[str, bytes] = {}
        batch = b""
        for i in range(120):
            cmn = f"mix-{i}"
            _, data = alice.encode_send(
                "bob", 1, text(i), client_msg_no=cmn, bad_msg_key=i % 4 == 3
            )
            batch += data
            if i % 4 != 3:
                good[cmn] = text(i)
        got: list[Recv] = []
        reader = asyncio.create_task(_collect(bob, len(good), got))
        await alice.write(batch)
        acks = [await alice.expect_sendack() for _ in range(120)]
        await reader
        # a rejection may be acknowledged before earlier accepted sends (those wait for storage)
        acks.sort(key=lambda a: a.client_seq)
        assert [a.reason for a in acks] == [9 if i % 4 == 3 else 1 for i in range(120)]
        assert [a.message_seq for a in acks if a.reason == 1] == list(range(1, len(good) + 1))
        _check_stream(got, bob, good)


# ---------------------------------------------------------------------------------------------
# HTTP API semantics (http-api §0.3, §1.1-1.3, §1.6-1.7)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def _sync(node: Node, **req: Any) -> dict[str, Any]:
    body = {"login_uid": "alice", "channel_id": "hist", "channel_type": 2, **req}
    status, reply = await node.api.post("/channel/messagesync", body)
    assert status == 200, reply
    assert set(reply) == {"start_message_seq", "end_message_seq", "more", "messages"}
    return dict(reply)


def _seqs(reply: dict[str, Any]) -> list[int]:
    return [m["message_seq"] for m in reply["messages"]]


async def test_messagesync_pull_modes(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        await _group(node, "hist", ["alice"])
        alice = await node.online("alice")
        for i in range(10):
            assert (await alice.chat("hist", 2, text(i))).message_seq == i + 1
        newest = await _sync(node, limit=3)
        assert (_seqs(newest), newest["more"]) == ([8, 9, 10], 1)
        assert _seqs(await _sync(node, limit=100)) == list(range(1, 11))
        assert (await _sync(node, limit=100))["more"] == 0
        up = await _sync(node, start_message_seq=4, end_message_seq=8, pull_mode=1, limit=100)
        assert _seqs(up) == [4, 5, 6, 7]
        assert (up["start_message_seq"], up["end_message_seq"]) == (4, 8)
        assert _seqs(await _sync(node, start_message_seq=4, pull_mode=1, limit=3)) == [4, 5, 6]
        assert _seqs(await _sync(node, start_message_seq=9, pull_mode=1, limit=100)) == [9, 10]
        down = await _sync(node, start_message_seq=7, end_message_seq=2, pull_mode=0, limit=100)
        assert _seqs(down) == [3, 4, 5, 6, 7]
        assert _seqs(await _sync(node, start_message_seq=7, pull_mode=0, limit=2)) == [6, 7]
        assert _seqs(await _sync(node, start_message_seq=2, end_message_seq=5, limit=9)) == []
        assert _seqs(await _sync(node, start_message_seq=30, pull_mode=0, limit=5)) == []
        assert _seqs(await _sync(node, start_message_seq=12, pull_mode=0, limit=5)) == [8, 9, 10]
        zero = await _sync(node, limit=0)
        assert (zero["messages"], zero["more"]) == ([], 1)
        never = await _sync(node, channel_id="never", limit=5)
        assert never == {
            "start_message_seq": 0,
            "end_message_seq": 0,
            "more": 0,
            "messages": [],
        }
        message = (await _sync(node, limit=1))["messages"][0]
        assert message["message_idstr"] == str(message["message_id"])
        assert message["from_uid"] == "alice"
        assert message["channel_id"] == "hist"
        assert message["channel_type"] == 2
        assert base64.b64decode(message["payload"]) == text(9)
        assert message["header"] == {"no_persist": 0, "red_dot": 1, "sync_once": 0}


async def test_person_history_is_the_same_from_both_sides(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        u1 = await node.online("u1")
        u2 = await node.online("u2")
        assert (await u1.chat("u2", 1, text(1))).message_seq == 1
        assert (await u2.chat("u1", 1, text(2))).message_seq == 2
        mine = await node.api.messages("u1", "u2", 1)
        theirs = await node.api.messages("u2", "u1", 1)
        assert [m["message_id"] for m in mine] == [m["message_id"] for m in theirs]
        # §2.5: channel_id is the party that is not the sender
        assert [(m["from_uid"], m["channel_id"]) for m in mine] == [("u1", "u2"), ("u2", "u1")]
        assert await node.api.messages("u3", "u2", 1) == []


HTTP_400: list[tuple[str, dict[str, Any]]] = [
    ("/user/token", {"uid": "a@b", "token": "t"}),
    ("/user/token", {"uid": "a#b", "token": "t"}),
    ("/user/token", {"uid": "", "token": "t"}),
    ("/user/token", {"uid": "____system", "token": "t"}),
    ("/channel", {"channel_id": "bob", "channel_type": 1, "subscribers": ["x"]}),
    ("/channel", {"channel_id": "g&1", "channel_type": 2}),
    ("/channel", {"channel_id": "  ", "channel_type": 2}),
    ("/channel", {"channel_id": "g", "channel_type": 0}),
    ("/channel/subscriber_add", {"channel_id": "g", "channel_type": 2, "subscribers": [" "]}),
    ("/channel/subscriber_add", {"channel_id": "bob", "channel_type": 1, "subscribers": ["x"]}),
    (
        "/channel/subscriber_add",
        {"channel_id": "g", "channel_type": 2, "subscribers": ["x"], "temp_subscriber": 1},
    ),
    ("/channel/subscriber_remove", {"channel_id": "bob", "channel_type": 1, "subscribers": ["x"]}),
    ("/channel/delete", {"channel_id": "bob", "channel_type": 1}),
    ("/message/send", {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": ""}),
    ("/message/send", {"from_uid": "a", "channel_id": "b@c", "channel_type": 1, "payload": "e30="}),
    ("/message/send", {"from_uid": "a", "channel_type": 1, "payload": "e30="}),
    ("/message/send", {"from_uid": "a", "subscribers": ["b"], "payload": "e30="}),
    (
        "/message/send",
        {
            "from_uid": "a",
            "channel_id": "b",
            "channel_type": 1,
            "subscribers": ["b"],
            "header": {"sync_once": 1},
            "payload": "e30=",
        },
    ),
    ("/channel/messagesync", {"login_uid": " ", "channel_id": "b", "channel_type": 1}),
]


async def test_http_validation_errors(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        wrong = []
        for path, body in HTTP_400:
            status, reply = await node.api.post(path, body)
            if not (status == 400 and isinstance(reply, dict) and reply.get("status") == 400):
                wrong.append((path, body, status, reply))
        assert wrong == []


async def test_http_status_envelopes(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        api = node.api
        await api.ok("/channel/info", {"channel_id": "banned", "channel_type": 1, "ban": 1})
        assert await api.post("/user/token", {"uid": "banned", "token": "t"}) == (
            200,
            {"status": 19},
        )
        await api.ok("/channel/info", {"channel_id": "gone", "channel_type": 1, "disband": 1})
        assert await api.post("/user/token", {"uid": "gone", "token": "t"}) == (
            200,
            {"status": 24},
        )
        assert await api.post("/user/onlinestatus", []) == (200, {"status": 200})
        await node.online("alice")
        await node.online("alice", "ws", device_flag=0)
        status, online = await api.post("/user/onlinestatus", ["alice", "nobody"])
        assert status == 200
        assert sorted(online, key=lambda e: e["device_flag"]) == [
            {"uid": "alice", "device_flag": 0, "online": 1},
            {"uid": "alice", "device_flag": 1, "online": 1},
        ]
        assert await api.post("/channel/delete", {"channel_id": "nope", "channel_type": 2}) == (
            200,
            {"status": 200},
        )
        async with api.session.get(api.base + "/no/such/path") as resp:
            assert resp.status == 404
            assert await resp.text() == "404 page not found"
        reply = await api.ok(
            "/message/send",
            {"from_uid": "alice", "channel_id": "bob", "channel_type": 1, "payload": _b64(b"{}")},
        )
        assert set(reply["data"]) >= {"message_id", "client_msg_no"}
        assert reply["data"]["message_id"] > 0


async def test_messages_and_seqs_survive_a_restart(tmp_path: Path) -> None:
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        first = [await alice.chat("bob", 1, text(i)) for i in range(3)]
        assert [a.message_seq for a in first] == [1, 2, 3]
    async with serve(tmp_path) as node:
        stored = await node.api.messages("bob", "alice", 1)
        assert [m["message_id"] for m in stored] == [a.message_id for a in first]
        alice = await node.online("alice", "ws")
        bob = await node.online("bob")
        again = await alice.chat("bob", 1, text(3))
        assert again.message_seq == 4
        assert again.message_id not in {a.message_id for a in first}
        got = await bob.expect_recv()
        assert (got.message_seq, bob.open(got)) == (4, text(3))


async def test_ws_text_opcode_carries_binary_frames_and_any_path_works(tmp_path: Path) -> None:
    """§1.2: text and binary WS messages alike feed the byte stream; §1.1: any URL path."""
    async with serve(tmp_path) as node:
        conn = await node.ws("/any/deep/path?x=1")
        private = X25519PrivateKey.generate()
        connect = rc.encode_connect(5, 1, "d", "texty", "", 0, rc.public_key_b64(private))
        assert all(b < 0x80 for b in connect)  # ASCII, so valid as a WS text message
        await conn.write_ws_text(connect.decode())
        connack = rc.parse_connack(await conn.next_raw(), 5)
        assert connack.reason == 1
        await conn.write_ws_text("\x70")
        assert (await conn.next_raw()).raw == b"\x80"


async def test_concurrent_logins_with_one_device_id_leave_exactly_one(tmp_path: Path) -> None:
    async with serve(tmp_path, kick_close_delay_s=0.05) as node:
        conns = [await node.client(TRANSPORTS[i % 2]) for i in range(16)]
        acks = await asyncio.gather(*(c.connect("same", device_id="dev") for c in conns))
        assert [a.reason for a in acks] == [1] * 16
        closing = {asyncio.create_task(c.wait_closed(30)): c for c in conns}
        done: set[asyncio.Task[list[rc.RawFrame]]] = set()
        pending = set(closing)
        while len(done) < 15:
            more, pending = await asyncio.wait(
                pending, timeout=rc.WAIT_S, return_when=asyncio.FIRST_COMPLETED
            )
            assert more, "connections with the same deviceId were not closed"
            done |= more
        assert len(pending) == 1
        [survivor_task] = pending
        survivor_task.cancel()
        survivor = closing[survivor_task]
        status, online = await node.api.post("/user/onlinestatus", ["same"])
        assert (status, online) == (200, [{"uid": "same", "device_flag": 1, "online": 1}])
        sender = await node.online("other")
        assert (await sender.chat("same", 1, text(1))).reason == 1
        got = await survivor.expect_recv()
        assert survivor.open(got) == text(1)


async def test_no_persist_recv_is_never_retried(tmp_path: Path) -> None:
    async with serve(
        tmp_path, recv_retry_interval_s=0.2, recv_retry_scan_s=0.05, recv_retry_max=3
    ) as node:
        alice = await node.online("alice")
        bob = await node.online("bob")
        await alice.chat("bob", 1, text(1), flags=NO_PERSIST, client_msg_no="np")
        await alice.chat("bob", 1, text(2), client_msg_no="p")
        seen = [await bob.expect_recv() for _ in range(4)]  # np, p, then two retries of p
        assert [m.client_msg_no for m in seen] == ["np", "p", "p", "p"]


async def test_user_token_master_update_kicks_same_flag(tmp_path: Path) -> None:
    async with serve(tmp_path, token_auth_on=True, kick_close_delay_s=0.1) as node:
        for flag in (0, 1):
            body = {"uid": "alice", "token": "t1", "device_flag": flag, "device_level": 0}
            await node.api.ok("/user/token", body)
        web = await node.online("alice", token="t1", device_id="w")
        app_conn = await node.online("alice", "ws", token="t1", device_id="a", device_flag=0)
        # a slave update kicks nobody
        await node.api.ok("/user/token", {"uid": "alice", "token": "t2", "device_flag": 0})
        body = {"uid": "alice", "token": "t3", "device_flag": 1, "device_level": 1}
        await node.api.ok("/user/token", body)
        kick = await web.next_frame()
        assert isinstance(kick, rc.Disconnect)
        assert kick.reason == 12
        await app_conn.write(b"\x70")
        assert (await app_conn.next_raw()).raw == b"\x80"
        old = await node.tcp()
        assert (await old.connect("alice", token="t1")).reason == 2
        assert (await (await node.tcp()).connect("alice", token="t3")).reason == 1


async def test_device_quit_blanks_token_and_kicks(tmp_path: Path) -> None:
    async with serve(tmp_path, token_auth_on=True, kick_close_delay_s=0.1) as node:
        await node.api.ok("/user/token", {"uid": "alice", "token": "t", "device_flag": 1})
        await node.api.ok("/user/token", {"uid": "bob", "token": "t", "device_flag": 1})
        alice = await node.online("alice", "ws", token="t")
        bob = await node.online("bob", token="t")
        await node.api.ok("/user/device_quit", {"uid": "alice", "device_flag": 1})
        seen = await alice.wait_closed()
        assert len(seen) == 1
        kick = rc.parse_frame(seen[0], 5)
        assert isinstance(kick, rc.Disconnect)
        assert kick.reason == 12
        assert (await (await node.tcp()).connect("alice", token="t")).reason == 2
        assert (await (await node.tcp()).connect("alice", token="")).reason == 2
        # no device record for APP: nothing happens to bob's WEB connection
        await node.api.ok("/user/device_quit", {"uid": "bob", "device_flag": 0})
        await bob.write(b"\x70")
        assert (await bob.next_raw()).raw == b"\x80"
        await node.api.ok("/user/device_quit", {"uid": "bob", "device_flag": -1})
        assert len(await bob.wait_closed()) == 1


PROXY_V2 = (
    bytes.fromhex("0d0a0d0a000d0a515549540a")
    + bytes([0x21, 0x11])
    + struct.pack(">H", 12)
    + socket.inet_aton("1.2.3.4")
    + socket.inet_aton("5.6.7.8")
    + struct.pack(">HH", 1111, 2222)
)


@pytest.mark.parametrize(
    "header",
    [b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n", b"PROXY UNKNOWN\r\n", PROXY_V2],
    ids=["v1", "v1-unknown", "v2"],
)
async def test_proxy_protocol_header_before_connect(tmp_path: Path, header: bytes) -> None:
    """§1.1: on TCP an optional PROXY protocol header may precede CONNECT."""
    async with serve(tmp_path) as node:
        conn = await node.tcp()
        await conn.write(header)
        assert (await conn.connect("proxied")).reason == 1
        assert (await conn.chat("peer", 1, text(1))).reason == 1


async def test_ignored_bits_and_trailing_bytes(tmp_path: Path) -> None:
    """CONNECT flags are ignored and extra trailing bytes too (§3.1); PING flag bits are
    ignored (§3.7)."""
    async with serve(tmp_path) as node:
        conn = await node.tcp()
        private = X25519PrivateKey.generate()
        connect = rc.encode_connect(5, 1, "d", "odd", "", 0, rc.public_key_b64(private))
        body = connect[2:] + b"extra trailing bytes"
        await conn.write(rc.frame(rc.CONNECT, 0x0F, body))
        connack = rc.parse_connack(await conn.next_raw(), 5)
        assert connack.reason == 1
        conn.uid, conn.keys = "odd", rc.derive_keys(private, connack.server_key, connack.salt)
        for ping in (b"\x71", b"\x7f", b"\x78"):
            await conn.write(ping)
            assert (await conn.next_raw()).kind == rc.PONG
        assert (await conn.chat("peer", 1, text(1))).reason == 1


async def test_every_device_gets_each_message_once_in_order(tmp_path: Path) -> None:
    """Two devices per side, both sides pipelining: the sending connections get the peer's
    messages, the other devices get both sides' messages, each exactly once and in seq order."""
    per_side = 100
    async with serve(tmp_path) as node:
        a = await node.online("da", "tcp", device_id="a1")
        a2 = await node.online("da", "ws", device_id="a2", version=2)
        b = await node.online("db", "ws", device_id="b1", version=3)
        b2 = await node.online("db", "tcp", device_id="b2", device_flag=0)
        got: dict[str, list[Recv]] = {"a": [], "a2": [], "b": [], "b2": []}
        readers = [
            asyncio.create_task(_collect(a, per_side, got["a"])),
            asyncio.create_task(_collect(a2, 2 * per_side, got["a2"])),
            asyncio.create_task(_collect(b, per_side, got["b"])),
            asyncio.create_task(_collect(b2, 2 * per_side, got["b2"])),
        ]
        sent_a, sent_b = await asyncio.gather(
            _pipeline(a, "db", 1, per_side), _pipeline(b, "da", 1, per_side)
        )
        await asyncio.gather(*readers)
        both = {**sent_a, **sent_b}
        _check_stream(got["a"], a, sent_b)
        _check_stream(got["b"], b, sent_a)
        _check_stream(got["a2"], a2, both)
        _check_stream(got["b2"], b2, both)
        assert {m.channel_id for m in got["a2"]} == {"db"}
        assert {m.channel_id for m in got["b2"]} == {"da"}
        for m in got["a2"]:
            assert bool(m.flags & RED_DOT) == (m.from_uid == "db")


@pytest.mark.parametrize("version", [2, 3, 5])
async def test_disabled_encryption_and_frames_pipelined_behind_connect(
    tmp_path: Path, version: int
) -> None:
    """With DisableEncryption the CONNACK has empty serverKey and salt and payloads are plain.
    A SEND written in the same segment as CONNECT may be refused by closing (§1.4), but if the
    connection stays it must be handled, with the negotiated version's layout."""
    async with serve(tmp_path, disable_encryption=True) as node:
        bob = await node.online("bob", version=3)
        assert bob.keys is None
        alice = await node.tcp()
        alice.uid, alice.version = "alice", version
        connect = rc.encode_connect(version, 1, "d", "alice", "", 0, "")
        _, send = alice.encode_send("bob", 1, text(1), expire=77)
        await alice.write(connect + send)
        connack = rc.parse_connack(await alice.next_raw(), version)
        assert (connack.reason, connack.server_key, connack.salt) == (1, "", "")
        try:
            ack = await alice.expect_sendack()
        except rc.ClosedError:
            return
        assert (ack.reason, ack.message_seq) == (1, 1)
        got = await bob.expect_recv()
        assert (got.msg_key, got.payload) == ("", text(1))
        assert got.expire == (77 if version >= 3 else 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_persist_messages_keep_channel_order(tmp_path: Path, transport: str) -> None:
    """http-api §2.16: messages of one channel are delivered in the order the channel received
    them. A NoPersist message must not overtake a persisted one sent before it."""
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        bob = await node.online("bob", transport)
        batch = b""
        order = []
        for i in range(8):
            persisted = i % 2 == 0
            cmn = f"m{i}-{'stored' if persisted else 'transient'}"
            flags = RED_DOT | (0 if persisted else NO_PERSIST)
            batch += alice.encode_send("bob", 1, text(i), client_msg_no=cmn, flags=flags)[1]
            order.append(cmn)
        await alice.write(batch)
        got = [await bob.expect_recv() for _ in range(8)]
        assert [m.client_msg_no for m in got] == order


@pytest.mark.parametrize("flags", [RED_DOT, RED_DOT | NO_PERSIST], ids=["stored", "no-persist"])
async def test_self_chat_reaches_other_devices_once(tmp_path: Path, flags: int) -> None:
    """A person message to oneself (stored as `u@u`, §7.1): the other device gets it once."""
    async with serve(tmp_path) as node:
        phone = await node.online("me", device_id="phone", device_flag=0)
        web = await node.online("me", "ws", device_id="web")
        ack = await phone.chat("me", 1, text("note"), flags=flags)
        assert ack.reason == 1
        got = await web.expect_recv()
        assert (got.from_uid, got.channel_id, got.message_id) == ("me", "me", ack.message_id)
        assert web.open(got) == text("note")
        # a PONG next proves no second copy was queued before it
        await web.write(b"\x70")
        assert (await web.next_raw()).raw == b"\x80"
        await phone.write(b"\x70")
        assert (await phone.next_raw()).raw == b"\x80"


async def test_message_sendbatch(tmp_path: Path) -> None:
    """http-api §1.6: one person message from from_uid to each uid; RAW reply, no status."""
    async with serve(tmp_path) as node:
        bob = await node.online("bob")
        carol = await node.online("carol", "ws", version=2)
        body = {
            "header": {"red_dot": 1},
            "from_uid": "srv",
            "subscribers": ["bob", "carol", "x@y"],
            "payload": _b64(text("batch")),
        }
        status, reply = await node.api.post("/message/sendbatch", body)
        assert status == 200, reply
        assert set(reply) == {"fail_uids", "reason"}
        assert reply["fail_uids"] == ["x@y"]
        assert len(reply["reason"]) == 1
        cmns = set()
        for conn in (bob, carol):
            got = await conn.expect_recv()
            assert (got.from_uid, got.channel_id, got.channel_type) == ("srv", "srv", 1)
            assert got.flags & RED_DOT
            assert conn.open(got) == text("batch")
            cmns.add(got.client_msg_no)
            stored = await node.api.messages(conn.uid, "srv", 1)
            assert [m["message_seq"] for m in stored] == [1]
        assert len(cmns) == 2, "a fresh client_msg_no for each"


async def test_system_accounts_bypass_membership_and_lists(tmp_path: Path) -> None:
    """http-api §1.1, §2.7 steps 4-5, §2.12."""
    async with serve(tmp_path) as node:
        assert await node.api.ok("/user/systemuids_add", {"uids": ["bot"]}) == {"status": 200}
        async with node.api.session.get(node.api.base + "/user/systemuids") as resp:
            assert resp.status == 200
            assert await resp.json() == ["bot"]
        await _group(node, "g1", ["alice"])
        deny = {"channel_id": "bot", "channel_type": 1, "uids": ["alice"]}
        await node.api.ok("/channel/blacklist_add", deny)
        bot = await node.online("bot")
        alice = await node.online("alice")
        assert (await bot.chat("g1", 2, text(1))).reason == 1
        assert (await alice.chat("bot", 1, text(2))).reason == 1, "anyone may send to a system uid"
        await node.api.ok("/user/systemuids_remove", {"uids": ["bot"]})
        assert (await bot.chat("g1", 2, text(3))).reason == 3
        assert (await alice.chat("bot", 1, text(4))).reason == 4


async def test_subscriber_endpoints_drive_admission(tmp_path: Path) -> None:
    """http-api §1.2-1.3: add (type 0 defaults to 2, creates the channel), remove, reset,
    remove_all; every change shows in the next SEND's reason code."""
    async with serve(tmp_path) as node:
        alice = await node.online("alice")
        bob = await node.online("bob")
        add = {"channel_id": "g1", "channel_type": 0, "subscribers": ["alice", "bob"]}
        assert await node.api.ok("/channel/subscriber_add", add) == {"status": 200}
        assert (await alice.chat("g1", 2, text(1))).reason == 1
        got = await bob.expect_recv()
        assert bob.open(got) == text(1)
        remove = {"channel_id": "g1", "channel_type": 2, "subscribers": ["bob"]}
        assert await node.api.ok("/channel/subscriber_remove", remove) == {"status": 200}
        assert (await bob.chat("g1", 2, text(2))).reason == 3
        reset = {"channel_id": "g1", "channel_type": 2, "reset": 1, "subscribers": ["bob"]}
        assert await node.api.ok("/channel", reset) == {"status": 200}
        assert (await alice.chat("g1", 2, text(3))).reason == 3
        assert (await bob.chat("g1", 2, text(4))).reason == 1
        all_gone = {"channel_id": "g1", "channel_type": 2}
        assert await node.api.ok("/channel/subscriber_remove_all", all_gone) == {"status": 200}
        assert (await bob.chat("g1", 2, text(5))).reason == 3
        await _assert_group_history(node, "g1", "bob", [1, 2])


async def test_sub_gets_a_matching_suback(tmp_path: Path) -> None:
    """§3.9 / §10.10: SUB `a00f000004737562310002673102000000` -> SUBACK
    `b00d00047375623100026731020001` (v2.2.5 ignores SUB; answering is allowed)."""
    async with serve(tmp_path) as node:
        conn = await node.online("subber")
        await conn.write(bytes.fromhex("a00f000004737562310002673102000000"))
        got = await conn.next_raw()
        assert got.raw.hex() == "b00d00047375623100026731020001"


async def _get(node: Node, path: str) -> tuple[int, Any]:
    async with node.api.session.get(node.api.base + path) as resp:
        body = await resp.text()
        try:
            return resp.status, json.loads(body)
        except ValueError:
            return resp.status, body


async def test_message_read_endpoints(tmp_path: Path) -> None:
    """http-api §1.7: max_message_seq, last_message, /messages, /message, byclientmsgno."""
    async with serve(tmp_path) as node:
        await _group(node, "hist", ["alice"])
        alice = await node.online("alice")
        acks = []
        for i, cmn in enumerate(["c1", "dup", "c3", "dup", "c5"]):
            acks.append(await alice.chat("hist", 2, text(i), client_msg_no=cmn))
        u1 = await node.online("u1")
        person = await u1.chat("u2", 1, text("p"), client_msg_no="pm")
        api = node.api

        assert await _get(node, "/channel/max_message_seq?channel_id=hist&channel_type=2") == (
            200,
            {"message_seq": 5},
        )
        q = "/channel/max_message_seq?channel_id=u2&channel_type=1&login_uid=u1"
        assert await _get(node, q) == (200, {"message_seq": 1})
        q = "/channel/max_message_seq?channel_id=u2@u1&channel_type=1"
        assert await _get(node, q) == (200, {"message_seq": 1})
        q = "/channel/max_message_seq?channel_id=nope&channel_type=2"
        assert await _get(node, q) == (200, {"message_seq": 0})
        status, reply = await _get(node, "/channel/max_message_seq?channel_id=&channel_type=2")
        assert (status, reply["status"]) == (400, 400)

        status, last = await _get(node, "/channel/last_message?channel_id=hist&channel_type=2")
        assert (status, last["message_seq"], last["client_msg_no"]) == (200, 5, "c5")
        q = "/channel/last_message?channel_id=u2&channel_type=1&login_uid=u1"
        status, last = await _get(node, q)
        assert (status, last["message_id"]) == (200, person.message_id)
        q = "/channel/last_message?channel_id=nope&channel_type=2"
        assert await _get(node, q) == (200, {"status": 404})

        status, found = await api.post(
            "/messages",
            {
                "channel_id": "hist",
                "channel_type": 2,
                "message_seqs": [3, 99, 1],
                "message_ids": [acks[1].message_id],
                "client_msg_nos": ["dup", "missing"],
            },
        )
        assert status == 200
        assert (found["start_message_seq"], found["end_message_seq"], found["more"]) == (0, 0, 0)
        assert [m["message_seq"] for m in found["messages"]] == [3, 1, 2, 4]

        body = {"channel_id": "hist", "channel_type": 2, "message_id": acks[2].message_id}
        status, one = await api.post("/message", body)
        assert (status, one["message_seq"]) == (200, 3)
        body = {"channel_id": "hist", "channel_type": 2, "client_msg_no": "c5"}
        status, one = await api.post("/message", body)
        assert (status, one["message_seq"]) == (200, 5)
        body = {"channel_id": "hist", "channel_type": 2, "message_id": 12345}
        assert await api.post("/message", body) == (200, {"status": 404})
        body = {"login_uid": "u2", "channel_id": "u1", "channel_type": 1, "client_msg_no": "pm"}
        status, one = await api.post("/message", body)
        assert (status, one["message_id"]) == (200, person.message_id)

        q = "/message/byclientmsgno?channel_id=hist&channel_type=2&client_msg_no=dup"
        status, one = await _get(node, q)
        assert (status, one["message_seq"]) == (200, 2), "the lowest seq with that number"
        q = "/message/byclientmsgno?channel_id=u2@u1&channel_type=1&client_msg_no=pm"
        status, one = await _get(node, q)
        assert (status, one["message_id"]) == (200, person.message_id)
        q = "/message/byclientmsgno?channel_id=hist&channel_type=2&client_msg_no=none"
        assert await _get(node, q) == (200, {"status": 404})
        status, reply = await _get(node, "/message/byclientmsgno?channel_id=hist&channel_type=0")
        assert (status, reply["status"]) == (400, 400)


@pytest.mark.parametrize(
    ("header", "flags"),
    [
        ({}, 0),
        ({"red_dot": 1}, RED_DOT),
        ({"no_persist": 1, "red_dot": 1}, NO_PERSIST | RED_DOT),
        ({"sync_once": 1}, SYNC_ONCE),
    ],
)
async def test_http_send_header_flags_reach_the_recv(
    tmp_path: Path, header: dict[str, int], flags: int
) -> None:
    async with serve(tmp_path) as node:
        bob = await node.online("bob", "ws")
        body = {
            "header": header,
            "from_uid": "alice",
            "channel_id": "bob",
            "channel_type": 1,
            "expire": 60,
            "payload": _b64(text("h")),
        }
        reply = await node.api.ok("/message/send", body)
        got = await bob.expect_recv()
        assert got.flags == flags
        assert got.message_id == reply["data"]["message_id"]
        assert got.expire == 60
        assert bob.open(got) == text("h")
        stored = await node.api.messages("bob", "alice", 1)
        if flags & (NO_PERSIST | SYNC_ONCE):
            assert stored == []
            assert got.message_seq == (0 if flags & NO_PERSIST else 1)
        else:
            assert [m["message_seq"] for m in stored] == [got.message_seq] == [1]


async def test_admission_check_order(tmp_path: Path) -> None:
    """http-api §2.7: send_ban (25) before channel ban (19) before disband (24) before the
    denylist (4) before membership (3) before the allowlist (13)."""
    async with serve(tmp_path) as node:
        api = node.api
        await _group(node, "banned", ["member"], ban=1, disband=1)
        await _group(node, "gone", ["member"], disband=1)
        await _group(node, "open", ["member", "listed"])
        await api.ok(
            "/channel/blacklist_add",
            {"channel_id": "open", "channel_type": 2, "uids": ["outsider"]},
        )
        await api.ok(
            "/channel/whitelist_add", {"channel_id": "open", "channel_type": 2, "uids": ["listed"]}
        )
        await api.ok("/channel/info", {"channel_id": "muted", "channel_type": 1, "send_ban": 1})
        muted = await node.online("muted")
        outsider = await node.online("outsider")
        member = await node.online("member")
        listed = await node.online("listed")
        assert (await muted.chat("banned", 2, text(1))).reason == 25
        assert (await outsider.chat("banned", 2, text(1))).reason == 19
        assert (await outsider.chat("gone", 2, text(1))).reason == 24
        assert (await outsider.chat("open", 2, text(1))).reason == 4
        assert (await member.chat("open", 2, text(1))).reason == 13
        assert (await listed.chat("open", 2, text(1))).reason == 1
        await api.ok("/channel/whitelist_remove_all", {"channel_id": "open", "channel_type": 2})
        assert (await member.chat("open", 2, text(2))).reason == 1
        await _group(node, "gone", ["member"])  # re-created without disband
        assert (await member.chat("gone", 2, text(3))).reason == 1


async def test_person_allowlist_only_when_enabled(tmp_path: Path) -> None:
    """http-api §2.7 step 5: with whitelistOffOfPerson=false a sender must be in the
    recipient's allowlist (13 otherwise)."""
    async with serve(tmp_path, whitelist_off_of_person=False) as node:
        alice = await node.online("alice")
        assert (await alice.chat("bob", 1, text(1))).reason == 13
        body = {"channel_id": "bob", "channel_type": 1, "uids": ["alice"]}
        assert await node.api.ok("/channel/whitelist_add", body) == {"status": 200}
        assert (await alice.chat("bob", 1, text(2))).reason == 1


# ---------------------------------------------------------------------------------------------
# Randomised model check: a seeded mix of sends, checked against a model of the spec


@dataclass(frozen=True)
class _Planned:
    sender: str
    conn: int
    channel_id: str
    channel_type: int
    flags: int
    bad_key: bool
    cmn: str
    body: bytes

    @property
    def stream(self) -> tuple[str, ...]:
        """The storage channel whose seqs this message takes (§7.1, §2.1 ____cmd)."""
        if self.channel_type == 1:
            base = tuple(sorted((self.sender, self.channel_id)))
        else:
            base = (self.channel_id,)
        return (*base, "cmd" if self.flags & SYNC_ONCE else "")


MODEL_USERS = [f"m{i}" for i in range(6)]
MODEL_GROUPS = {"mg0": MODEL_USERS[:4], "mg1": MODEL_USERS[2:]}


def _plan(seed: int, count: int) -> list[_Planned]:
    rng = random.Random(seed)
    plans = []
    for i in range(count):
        sender = rng.choice(MODEL_USERS)
        if rng.random() < 0.5:
            channel_id, ctype = rng.choice(sorted(MODEL_GROUPS)), 2
        else:
            channel_id, ctype = rng.choice([u for u in MODEL_USERS if u != sender]), 1
        flags = RED_DOT if rng.random() < 0.8 else 0
        if rng.random() < 0.15:
            flags |= NO_PERSIST
        if rng.random() < 0.1:
            flags |= SYNC_ONCE
        conn = 1 if sender == "m0" and rng.random() < 0.5 else 0
        body = text(f"{seed}-{i}") + rng.randbytes(rng.randint(0, 40)).hex().encode()
        plans.append(
            _Planned(sender, conn, channel_id, ctype, flags, rng.random() < 0.1, f"x{i}", body)
        )
    return plans


def _accepted(p: _Planned) -> bool:
    return not p.bad_key and (p.channel_type == 1 or p.sender in MODEL_GROUPS[p.channel_id])


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_randomised_sends_match_the_model(tmp_path: Path, seed: int) -> None:
    plans = _plan(seed, 300)
    rng = random.Random(seed)
    async with serve(tmp_path) as node:
        for group, members in MODEL_GROUPS.items():
            await _group(node, group, members)
        conns: dict[tuple[str, int], WkClient] = {}
        for i, uid in enumerate(MODEL_USERS):
            conns[uid, 0] = await node.online(uid, TRANSPORTS[i % 2], version=2 + i % 4)
        conns["m0", 1] = await node.online("m0", "ws", version=5, device_id="m0-second")
        by_cmn = {p.cmn: p for p in plans}

        def receivers(p: _Planned) -> set[tuple[str, int]]:
            uids = (
                {p.sender, p.channel_id} if p.channel_type == 1 else set(MODEL_GROUPS[p.channel_id])
            )
            return {key for key in conns if key[0] in uids} - {(p.sender, p.conn)}

        want = dict.fromkeys(conns, 0)
        for p in plans:
            if _accepted(p):
                for key in receivers(p):
                    want[key] += 1
        got: dict[tuple[str, int], list[Recv]] = {key: [] for key in conns}
        readers = [asyncio.create_task(_collect(conns[key], want[key], got[key])) for key in conns]
        writes: dict[tuple[str, int], bytearray] = {key: bytearray() for key in conns}
        for p in plans:
            conn = conns[p.sender, p.conn]
            _, data = conn.encode_send(
                p.channel_id,
                p.channel_type,
                p.body,
                client_msg_no=p.cmn,
                flags=p.flags,
                bad_msg_key=p.bad_key,
            )
            writes[p.sender, p.conn] += data
            if rng.random() < 0.2:  # flush a random connection's backlog now and then
                key = rng.choice(sorted(writes))
                await conns[key].write(bytes(writes[key]))
                writes[key].clear()
        for key, backlog in writes.items():
            await conns[key].write(bytes(backlog))
        await asyncio.gather(*readers)
        assert sum(len(recvs) for recvs in got.values()) == sum(want.values()) > 400

        acks: dict[str, rc.SendAck] = {}
        for key, conn in conns.items():
            mine = [p for p in plans if (p.sender, p.conn) == key]
            while sum(isinstance(f, rc.SendAck) for f in conn.skipped) < len(mine):
                conn.skipped.append(await conn.next_frame())
            seq_to_cmn = {p_seq: p.cmn for p_seq, p in enumerate(mine, start=1)}
            for f in conn.skipped:
                if isinstance(f, rc.SendAck):
                    acks[seq_to_cmn[f.client_seq]] = f

        assert len(acks) == len(plans)
        for cmn, ack in acks.items():
            p = by_cmn[cmn]
            expected = 1 if _accepted(p) else (9 if p.bad_key else 3)
            assert ack.reason == expected, (p, ack)
            assert ack.flags == p.flags
        streams: dict[tuple[str, ...], list[int]] = {}
        for cmn, ack in acks.items():
            p = by_cmn[cmn]
            if ack.reason == 1 and not p.flags & NO_PERSIST:
                streams.setdefault(p.stream, []).append(ack.message_seq)
        for stream, seqs in streams.items():
            assert sorted(seqs) == list(range(1, len(seqs) + 1)), stream

        for key, recvs in got.items():
            conn = conns[key]
            names = [m.client_msg_no for m in recvs]
            assert len(names) == len(set(names)), f"{key}: a message arrived twice"
            for m in recvs:
                p = by_cmn[m.client_msg_no]
                assert _accepted(p)
                assert key in receivers(p)
                ack = acks[p.cmn]
                assert (m.message_id, m.message_seq) == (ack.message_id, ack.message_seq)
                assert m.from_uid == p.sender
                expected_channel = p.channel_id
                if p.channel_type == 1 and p.channel_id == key[0]:
                    expected_channel = p.sender
                assert m.channel_id == expected_channel
                assert bool(m.flags & RED_DOT) == bool(p.flags & RED_DOT and key[0] != p.sender)
                assert conn.open(m) == p.body
            # one sender's messages in one channel arrive in the order they were sent
            per_origin: dict[tuple[Any, ...], list[int]] = {}
            for m in recvs:
                p = by_cmn[m.client_msg_no]
                origin = (p.sender, p.conn, p.stream[:-1])
                per_origin.setdefault(origin, []).append(int(p.cmn[1:]))
            for origin, order in per_origin.items():
                assert order == sorted(order), (key, origin)
