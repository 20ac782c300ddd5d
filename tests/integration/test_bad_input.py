"""Hostile and malformed input against a real node, from `rawclient` (written from the spec).

After EVERY bad input the node must still serve: a connection opened before it still answers
PING, a fresh pair of clients can connect and chat over TCP and WebSocket, and the messages that
were acknowledged before are still in /channel/messagesync."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.integration import rawclient as rc
from tests.integration.rawclient import (
    CONNACK,
    Node,
    WkClient,
    encode_connect,
    frame,
    serve,
    varint,
    wstr,
)

pytestmark = pytest.mark.integration

AUTH_IDLE_S = 1.0  # short pre-auth deadline so stalled garbage is closed quickly
NO_DEADLINE_S = 600.0  # a close within WAIT_S then cannot come from the pre-auth deadline
KEEP_A, KEEP_B = "keeper-a", "keeper-b"
KEY = base64.b64encode(bytes(range(1, 33))).decode()  # a decodable 32-byte clientKey


@asynccontextmanager
async def guarded(tmp_path: Path, **overrides: Any) -> AsyncIterator[Node]:
    """A node with two acknowledged messages and one idle healthy connection; on exit checks
    that all three survived whatever the test did."""
    overrides.setdefault("auth_idle_timeout_s", AUTH_IDLE_S)
    async with serve(tmp_path, **overrides) as node:
        a = await node.online(KEEP_A)
        before = [b'{"type":1,"content":"kept 1"}', b'{"type":1,"content":"kept 2"}']
        for body in before:
            ack = await a.chat(KEEP_B, 1, body)
            assert ack.reason == 1
        yield node
        await a.write(b"\x70")
        seen = await _pong_or_close(a)
        assert seen[-1:] == [rc.RawFrame(rc.PONG, 0, b"", b"\x80")], "a bystander was disturbed"
        assert {f.kind for f in seen[:-1]} <= {rc.RECV, rc.SENDACK}
        await rc.chat_works(node, "tcp")
        await rc.chat_works(node, "ws")
        stored = await node.api.messages(KEEP_A, KEEP_B, 1)
        assert [base64.b64decode(m["payload"]) for m in stored[:2]] == before


async def authed(node: Node, transport: str, uid: str = "victim") -> WkClient:
    return await node.online(uid, transport)


async def assert_closed_without_reply(conn: WkClient) -> None:
    seen = await conn.wait_closed()
    assert seen == [], f"expected a silent close, got {seen}"


# ---------------------------------------------------------------------------------------------
# Before authentication


def _garbage(seed: int) -> bytes:
    rng = random.Random(seed)
    data = rng.randbytes(rng.randint(1, 4000))
    # a 0x1X first byte could be a (garbled) CONNECT; 0x7b would be JSON: keep both out
    first = rng.choice([b for b in range(256) if b >> 4 != 1 and b != 0x7B])
    return bytes([first]) + data


PRE_AUTH: dict[str, bytes] = {
    "reserved type 0": b"\x00\x00",
    "type 13": b"\xd0\x01\x00",
    "type 14": b"\xe0\x01\x00",
    "type 15": b"\xf0\x01\x00",
    "PING before CONNECT": b"\x70",
    "PONG before CONNECT": b"\x80",
    "SEND before CONNECT": frame(3, 2, b"\x00" + struct.pack(">I", 1) + wstr("c") + wstr("x")),
    "RECVACK before CONNECT": frame(6, 0, struct.pack(">qI", 1, 1)),
    "CONNACK from a client": frame(CONNACK, 0, b"\x00" * 12),
    "remaining length over 1 MiB": b"\x10" + varint(1_048_577) + b"\x05\x01",
    "five-byte varint": b"\x10\xff\xff\xff\xff\x01",
    "CONNECT with a string running past the frame": frame(1, 0, b"\x05\x01\x00\x40abc"),
    "CONNECT missing clientTimestamp": frame(1, 0, b"\x05\x01" + wstr("d") + wstr("u") + wstr("")),
}
RANDOM = {f"random garbage {seed}": _garbage(seed) for seed in range(6)}
RANDOM["PROXY v1 header without an end"] = b"PROXY TCP4 " + b"1" * 300
RANDOM["PROXY v2 header with a huge length"] = (
    bytes.fromhex("0d0a0d0a000d0a515549540a") + b"\x21\x11\xff\xff" + b"\x00" * 64
)
RANDOM["PROXY v1 header twice"] = b"PROXY UNKNOWN\r\n" * 2 + b"\x10\x01\x00"


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("name", sorted(PRE_AUTH))
async def test_pre_auth_bad_frame_closes_at_once(tmp_path: Path, transport: str, name: str) -> None:
    """Each of these is complete enough to be rejected: the close must not wait for the
    pre-auth deadline."""
    async with guarded(tmp_path, auth_idle_timeout_s=NO_DEADLINE_S) as node:
        conn = await node.client(transport)
        await conn.write(PRE_AUTH[name])
        await assert_closed_without_reply(conn)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("name", sorted(RANDOM))
async def test_pre_auth_random_garbage_closes(tmp_path: Path, transport: str, name: str) -> None:
    async with guarded(tmp_path) as node:
        conn = await node.client(transport)
        await conn.write(RANDOM[name])
        await assert_closed_without_reply(conn)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_truncated_frames_then_close(tmp_path: Path, transport: str) -> None:
    async with guarded(tmp_path) as node:
        connect = encode_connect(5, 1, "d", "trunc", "", 0, KEY)
        for cut in (1, 2, len(connect) // 2, len(connect) - 1):
            conn = await node.client(transport)
            await conn.write(connect[:cut])
            await conn.close()
        conn = await authed(node, transport, "trunc2")
        _, send = conn.encode_send("keeper-a", 1, b"half")
        for cut in (1, 2, len(send) - 1):
            await conn.write(send[:cut])
            await conn.close()
            conn = await authed(node, transport, f"trunc{cut}")
        # a stalled half CONNECT is closed by the pre-auth deadline
        conn = await node.client(transport)
        await conn.write(connect[: len(connect) // 2])
        await assert_closed_without_reply(conn)


# ---------------------------------------------------------------------------------------------
# CONNECT contents


@pytest.mark.parametrize(
    "client_key",
    [
        "not base64!",
        "AAAA",
        "",
        base64.b64encode(b"\x01" * 31).decode(),
        base64.b64encode(b"\x00" * 32).decode(),  # all-zero shared secret
    ],
    ids=["not-base64", "too-short", "empty", "31-bytes", "all-zero-point"],
)
@pytest.mark.parametrize("version", [2, 5])
async def test_bad_client_key_gets_connack_2_then_close(
    tmp_path: Path, client_key: str, version: int
) -> None:
    async with guarded(tmp_path) as node:
        conn = await node.tcp()
        connack = await conn.connect("keyless", client_key=client_key, version=version)
        assert connack.reason == 2
        assert (connack.server_key, connack.salt) == ("", "")
        assert connack.trailing == b""
        assert connack.raw[0] == (0x21 if version > 3 else 0x20)
        assert await conn.wait_closed() == []


@pytest.mark.parametrize("uid", ["a@b", "@", "a#b", "a&b", "", "   "])
@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_bad_uid_closes_without_connack(tmp_path: Path, uid: str, transport: str) -> None:
    async with guarded(tmp_path) as node:
        conn = await node.client(transport)
        await conn.write(encode_connect(5, 1, "d", uid, "", 0, KEY))
        await assert_closed_without_reply(conn)


async def test_wrong_token_with_token_auth_gets_connack_2(tmp_path: Path) -> None:
    async with serve(tmp_path, auth_idle_timeout_s=AUTH_IDLE_S, token_auth_on=True) as node:
        for uid in ("tok", "peer"):
            body = {"uid": uid, "token": "right", "device_flag": 1}
            assert await node.api.ok("/user/token", body) == {"status": 200}
        for token in ("wrong", "", "right "):
            conn = await node.tcp()
            connack = await conn.connect("tok", token=token)
            assert connack.reason == 2, token
            assert (connack.server_key, connack.salt) == ("", "")
            assert await conn.wait_closed() == []
        # registered for another device flag only
        conn = await node.tcp()
        assert (await conn.connect("tok", token="right", device_flag=0)).reason == 2
        assert await conn.wait_closed() == []
        tok = await node.online("tok", token="right")
        peer = await node.online("peer", "ws", token="right")
        assert (await tok.chat("peer", 1, b'{"type":1}')).reason == 1
        assert peer.open(await peer.expect_recv()) == b'{"type":1}'


def _raw_connect_bytes(uid: bytes, device_id: bytes = b"d") -> bytes:
    body = b"\x05\x01" + wstr(device_id) + wstr(uid) + wstr(b"") + struct.pack(">q", 0) + wstr(KEY)
    return frame(1, 0, body)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_invalid_utf8_in_connect_strings(tmp_path: Path, transport: str) -> None:
    """Invalid UTF-8 in a CONNECT string: the server may close or accept, but must answer one
    way or the other and stay healthy."""
    async with guarded(tmp_path) as node:
        for uid, device_id in ((b"\xff\xfe", b"d"), (b"ok", b"\xc3\x28")):
            conn = await node.client(transport)
            await conn.write(_raw_connect_bytes(uid, device_id))
            seen = await _first_or_close(conn)
            assert all(f.kind == CONNACK for f in seen), seen


# ---------------------------------------------------------------------------------------------
# After authentication


def _send_body(channel: bytes, cmn: bytes = b"c", msg_key: bytes = b"k" * 32) -> bytes:
    return (
        b"\x00"
        + struct.pack(">I", 7)
        + wstr(cmn)
        + wstr(channel)
        + b"\x01"
        + struct.pack(">I", 0)
        + wstr(msg_key)
        + b"payload"
    )


POST_AUTH: dict[str, bytes] = {
    "reserved type 0": b"\x00\x00",
    "type 13": b"\xd0\x01\x00",
    "type 14": b"\xe0\x00",
    "type 15": b"\xf0\x05hello",
    "remaining length over 1 MiB": b"\x30" + varint(1_048_577) + b"\x00" * 100,
    "five-byte varint": b"\x30\xff\xff\xff\xff\x01",
    "SEND string running past the frame": frame(3, 2, b"\x00\x00\x00\x00\x01\x00\x40abc"),
    "SEND cut before channelType": frame(3, 2, b"\x00" + struct.pack(">I", 1) + wstr("c")),
    "RECVACK too short": frame(6, 0, b"\x00\x01"),
    "second CONNECT": encode_connect(5, 1, "d2", "victim", "", 0, KEY),
    "CONNACK from a client": frame(CONNACK, 0, b"\x00" * 12),
    "SENDACK from a client": frame(4, 0, b"\x00" * 17),
    "RECV from a client": frame(5, 0, b"\x00" * 30),
    **{f"random garbage {seed}": _garbage(seed + 100) for seed in range(4)},
}


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("name", sorted(POST_AUTH))
async def test_post_auth_garbage(tmp_path: Path, transport: str, name: str) -> None:
    """Malformed frames close the connection. Well-formed frames of a server-only type may be
    ignored or close it; either way nothing else is affected."""
    async with guarded(tmp_path) as node:
        conn = await authed(node, transport)
        await conn.write(POST_AUTH[name])
        if name in ("second CONNECT", "CONNACK from a client", "SENDACK from a client") or (
            name == "RECV from a client"
        ):
            await conn.write(b"\x70")
            seen = await _pong_or_close(conn)
            assert all(f.kind in (rc.PONG, rc.DISCONNECT, CONNACK) for f in seen), seen
        else:
            await conn.wait_closed()


async def _first_or_close(conn: WkClient) -> list[rc.RawFrame]:
    try:
        return [await conn.next_raw()]
    except rc.ClosedError:
        return []


async def _pong_or_close(conn: WkClient) -> list[rc.RawFrame]:
    seen: list[rc.RawFrame] = []
    try:
        while True:
            f = await conn.next_raw()
            seen.append(f)
            if f.kind == rc.PONG:
                return seen
    except rc.ClosedError:
        return seen


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_invalid_utf8_in_send_strings(tmp_path: Path, transport: str) -> None:
    """Invalid UTF-8 in channelId / clientMsgNo: SENDACK with a failure reason or a close,
    never a stored message or a stuck connection."""
    async with guarded(tmp_path) as node:
        for body in (_send_body(b"\xff\xfe"), _send_body(b"keeper-a", cmn=b"\xc3\x28")):
            conn = await authed(node, transport)
            await conn.write(frame(3, 2, body))
            seen = await _pong_or_close(conn) if not conn.closed else []
            if seen and seen[0].kind == rc.SENDACK:
                ack = rc.parse_frame(seen[0], 5)
                assert isinstance(ack, rc.SendAck)
                assert ack.reason != 1


async def test_drip_fed_frames_still_work(tmp_path: Path) -> None:
    """Not bad input, but adversarial timing: every byte in its own write / WS message, and
    several frames (plus a frame split over two messages) in one WS message."""
    async with guarded(tmp_path) as node:
        for transport in ("tcp", "ws"):
            conn = await node.client(transport)
            connect = encode_connect(
                5,
                1,
                "drip",
                f"drip-{transport}",
                "",
                0,
                rc.public_key_b64(private := X25519PrivateKey.generate()),
            )
            for i in range(len(connect)):
                await conn.write(connect[i : i + 1])
            connack = rc.parse_connack(await conn.next_raw(), 5)
            assert connack.reason == 1
            conn.uid = f"drip-{transport}"
            conn.keys = rc.derive_keys(private, connack.server_key, connack.salt)
            _, one = conn.encode_send(KEEP_B, 1, b'{"type":1}')
            for i in range(len(one)):
                await conn.write(one[i : i + 1])
            assert (await conn.expect_sendack()).reason == 1
            many = b"".join(conn.encode_send(KEEP_B, 1, b'{"type":1}')[1] for _ in range(5))
            await conn.write(many[:-10])
            await conn.write(many[-10:] + b"\x70")
            # PONG is immediate while a SENDACK waits for storage, so their order is free.
            got = [await conn.next_frame() for _ in range(6)]
            acks = [f for f in got if isinstance(f, rc.SendAck)]
            assert [a.reason for a in acks] == [1] * 5
            assert [a.client_seq for a in acks] == [2, 3, 4, 5, 6]
            assert sum(isinstance(f, rc.Pong) for f in got) == 1


# ---------------------------------------------------------------------------------------------
# JSON-RPC / JSON garbage on WebSocket (§1.3, §8)


@pytest.mark.parametrize(
    "first",
    ['{"garbage', "{}", '{"method":"send","id":"1","params":{}}', "[1,2]", "  \n{nope}"],
)
async def test_ws_json_garbage_first_message_closes(tmp_path: Path, first: str) -> None:
    async with guarded(tmp_path, auth_idle_timeout_s=NO_DEADLINE_S) as node:
        conn = await node.ws()
        await conn.write_ws_text(first)
        assert await _ws_closed(conn)


async def _ws_closed(conn: WkClient) -> bool:
    ws = conn._ws
    assert ws is not None
    async with asyncio.timeout(rc.WAIT_S):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return True
            if msg.type is aiohttp.WSMsgType.CLOSING:
                continue
            raise AssertionError(f"expected a close, got {msg.type} {msg.data!r}")


async def _rpc_connect(node: Node) -> aiohttp.ClientWebSocketResponse:
    conn = await node.ws()
    ws = conn._ws
    assert ws is not None
    hello = {"jsonrpc": "2.0", "method": "connect", "id": "c1", "params": {"uid": "rpc"}}
    await ws.send_str(json.dumps(hello))
    reply = json.loads(await _ws_text(ws))
    assert reply["id"] == "c1"
    assert reply["result"]["reasonCode"] == 1
    return ws


async def _rpc_ping(ws: aiohttp.ClientWebSocketResponse, request_id: str) -> None:
    await ws.send_str(json.dumps({"jsonrpc": "2.0", "method": "ping", "id": request_id}))
    assert json.loads(await _ws_text(ws))["id"] == request_id


async def test_ws_json_rpc_unknown_method_gets_error_reply(tmp_path: Path) -> None:
    async with guarded(tmp_path) as node:
        ws = await _rpc_connect(node)
        await ws.send_str('{"jsonrpc":"2.0","method":"nope","id":"x1"}')
        err = json.loads(await _ws_text(ws))
        assert err["id"] == "x1"
        assert "error" in err
        await _rpc_ping(ws, "p1")


DEEP_JSON = '{"method":"ping","id":"deep","params":' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize("bad", ["{nope}", '{"a" 1}', '{"id":"x2",}', "{]", DEEP_JSON])
async def test_ws_json_rpc_malformed_json_after_connect_gets_error_reply(
    tmp_path: Path, bad: str
) -> None:
    """wkproto §8.2: undecodable input after authentication gets an error reply and the
    connection stays open (and usable)."""
    async with guarded(tmp_path) as node:
        ws = await _rpc_connect(node)
        await ws.send_str(bad)
        err = json.loads(await _ws_text(ws))
        assert "error" in err, err
        await _rpc_ping(ws, "p1")


async def _ws_text(ws: Any) -> str:
    msg = await ws.receive(timeout=rc.WAIT_S)
    assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
    return str(msg.data)


# ---------------------------------------------------------------------------------------------
# HTTP API: bad JSON, wrong types, missing fields → 400 {"msg": ..., "status": 400} (http §0.2-0.3)

GOOD_PAYLOAD = base64.b64encode(b'{"type":1}').decode()

HTTP_BAD: list[tuple[str, Any]] = [
    # bad JSON
    ("/user/token", b"{not json"),
    ("/channel", b""),
    ("/message/send", b'{"payload": '),
    ("/channel/messagesync", b"\xff\xfe"),
    ("/channel/subscriber_add", b"[1,2"),
    ("/user/onlinestatus", b"{broken"),
    # wrong types
    ("/user/token", {"uid": 5, "token": "t"}),
    ("/user/token", {"uid": "u", "token": "t", "device_flag": "1"}),
    ("/channel", {"channel_id": "g", "channel_type": "2"}),
    ("/channel", {"channel_id": "g", "channel_type": 2, "subscribers": "alice"}),
    ("/channel", {"channel_id": "g", "channel_type": 300}),
    ("/message/send", {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": 5}),
    (
        "/message/send",
        {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": "not base64!"},
    ),
    (
        "/message/send",
        {"from_uid": "a", "channel_id": "b", "channel_type": True, "payload": GOOD_PAYLOAD},
    ),
    (
        "/channel/messagesync",
        {"login_uid": "a", "channel_id": "b", "channel_type": 1, "limit": "10"},
    ),
    ("/channel/subscriber_add", {"channel_id": "g", "channel_type": 2, "subscribers": [1]}),
    ("/user/onlinestatus", {"uids": ["a"]}),
    ("/user/token", ["uid", "token"]),
    ("/channel", b"null"),
    ("/message/send", b"123"),
    ("/channel/messagesync", b'"just a string"'),
    ("/user/token", b"[]"),
    ("/channel", {"channel_id": "g", "channel_type": 2.5}),
    ("/channel", {"channel_id": "g", "channel_type": 10**30}),
    (
        "/message/send",
        {"from_uid": "a", "channel_id": "b", "channel_type": 256, "payload": GOOD_PAYLOAD},
    ),
    (
        "/message/send",
        {
            "from_uid": "a",
            "channel_id": "b",
            "channel_type": 1,
            "header": "x",
            "payload": GOOD_PAYLOAD,
        },
    ),
    ("/channel/blacklist_add", {"channel_id": "g", "channel_type": 2, "uids": "bob"}),
    ("/channel", b'{"x":' * 50_000 + b"1" + b"}" * 50_000),  # deeper than Go's limit (10 000)
    ("/user/onlinestatus", b"[" * 100_000 + b"]" * 100_000),
    # missing fields
    ("/user/token", {"token": "t"}),
    ("/user/token", {"uid": "u"}),
    ("/channel", {"channel_type": 2}),
    ("/channel", {"channel_id": "g"}),
    ("/message/send", {"from_uid": "a", "channel_id": "b", "channel_type": 1}),
    ("/message/send", {"from_uid": "a", "channel_type": 1, "payload": GOOD_PAYLOAD}),
    ("/channel/messagesync", {"channel_id": "b", "channel_type": 1}),
    ("/channel/messagesync", {"login_uid": "a", "channel_type": 1}),
    ("/channel/subscriber_add", {"channel_id": "g", "channel_type": 2}),
    ("/channel/delete", {"channel_id": "alice", "channel_type": 1}),
]


@pytest.mark.parametrize(
    ("path", "body"), HTTP_BAD, ids=[f"{i}{p}" for i, (p, _) in enumerate(HTTP_BAD)]
)
async def test_http_bad_request_gets_400_envelope(tmp_path: Path, path: str, body: Any) -> None:
    async with guarded(tmp_path) as node:
        raw = body if isinstance(body, bytes) else None
        status, reply = await node.api.post(path, body, raw=raw)
        assert status == 400, reply
        assert isinstance(reply, dict), reply
        assert set(reply) == {"msg", "status"}
        assert reply["status"] == 400
        assert isinstance(reply["msg"], str)


# ---------------------------------------------------------------------------------------------
# Hostile consumers


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_slow_consumer_does_not_block_senders(tmp_path: Path, transport: str) -> None:
    """A recipient that never reads must not stall the sender or anyone else, whatever the
    server then does with it (buffer up to a cap, or disconnect it)."""
    async with guarded(tmp_path) as node:
        sink = await node.online("sink", transport)
        sender = await node.online("flooder")
        watcher = await node.online("watcher", "ws")
        big = b'{"type":1,"content":"' + b"z" * 60_000 + b'"}'
        count = 250  # about 20 MB of RECVs queued for `sink`
        for i in range(count):
            _, data = sender.encode_send("sink", 1, big, client_msg_no=f"flood-{i}")
            await sender.write(data)
        acks = [await sender.expect_sendack(30) for _ in range(count)]
        assert all(a.reason == 1 for a in acks)
        ack = await sender.chat("watcher", 1, b'{"type":1}')
        assert ack.reason == 1
        assert watcher.open(await watcher.expect_recv()) == b'{"type":1}'
        assert sink.uid == "sink"


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_recipient_vanishing_mid_stream(tmp_path: Path, transport: str) -> None:
    async with guarded(tmp_path) as node:
        gone = await node.online("gone", transport)
        sender = await node.online("pusher")
        batch = b"".join(
            sender.encode_send("gone", 1, b'{"type":1,"content":"' + b"q" * 5000 + b'"}')[1]
            for _ in range(100)
        )
        await sender.write(batch)
        await gone.next_raw()
        await gone.close()
        acks = [await sender.expect_sendack(30) for _ in range(100)]
        assert all(a.reason == 1 for a in acks)


async def test_connection_churn(tmp_path: Path) -> None:
    """Clients that vanish at every point of the handshake, all at once."""
    async with guarded(tmp_path) as node:
        connect = encode_connect(5, 1, "churn", "churner", "", 0, KEY)

        async def one(i: int) -> None:
            conn = await node.client("tcp" if i % 2 else "ws")
            if i % 3 == 0:
                await conn.write(connect[: i % len(connect)])
            elif i % 3 == 1:
                await conn.write(connect)
            else:
                await conn.connect(f"churner{i}")
                await conn.send(KEEP_A, 1, b'{"type":1}')
            await conn.close()

        await asyncio.gather(*(one(i) for i in range(60)))


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_ping_flood_without_reading(tmp_path: Path, transport: str) -> None:
    """2 MiB of PINGs from a client that never reads its PONGs, then it vanishes: the server
    must drop it and serve again. Clients arriving DURING the flood may meet a stalled loop
    (docs/conformance-findings.md F6), so the health check runs after the server let go."""
    async with guarded(tmp_path) as node:
        flood = await authed(node, transport, "flood")
        chunk = b"\x70" * (1 << 20)
        with suppress(TimeoutError, rc.ClosedError):
            async with asyncio.timeout(5):
                for _ in range(2):
                    await flood.write(chunk)
        await flood.abort()  # a graceful close would first read the whole PONG backlog
        async with asyncio.timeout(120):  # a deadline for the backlog, not a timing check
            while True:
                status, online = await node.api.post("/user/onlinestatus", ["flood"])
                assert status == 200
                if online == []:
                    break
                await asyncio.sleep(0.05)
        await rc.chat_works(node)


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_pipelined_ping_flood_is_answered_or_closed(tmp_path: Path, transport: str) -> None:
    """5000 PINGs at once: one PONG each, or the connection is closed as a flood; never
    anything else."""
    async with guarded(tmp_path) as node:
        conn = await authed(node, transport, "pinger")
        await conn.write(b"\x70" * 5000)
        seen: list[rc.RawFrame] = []
        with suppress(rc.ClosedError):
            while len(seen) < 5000:
                seen.append(await conn.next_raw())
        assert {f.raw for f in seen} <= {b"\x80"}
        if len(seen) < 5000:
            assert conn.closed


@pytest.mark.parametrize("client_ts_ms", [-(1 << 63), (1 << 63) - 1, -1])
async def test_extreme_client_timestamps(tmp_path: Path, client_ts_ms: int) -> None:
    """timeDiff is an i64: a wild clientTimestamp must still give a decodable CONNACK."""
    async with guarded(tmp_path) as node:
        conn = await node.tcp()
        connack = await conn.connect("clock", client_ts_ms=client_ts_ms)
        assert connack.reason == 1
        assert connack.trailing == b""
        assert (await conn.chat("peer", 1, b'{"type":1}')).reason == 1
