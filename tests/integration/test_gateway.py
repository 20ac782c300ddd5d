"""Connection life cycle against a real node: CONNECT/auth, PING, kicks, idle timeouts,
malformed input (only that connection closes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.node_harness import (
    Http,
    RawConn,
    node_config,
    running_node,
)
from tests.waiting import wait_until
from wukongim import app
from wukongim.protocol import wkproto as wk
from wukongim.protocol.crypto import ClientKeyPair
from wukongim.server.sessions import CONTROL_FRAMES_BURST

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@pytest.mark.parametrize("version", [2, 4, 5])
async def test_connect_versions_and_ping(tmp_path: Path, transport: str, version: int) -> None:
    async with running_node(tmp_path) as node:
        port = node.tcp_port if transport == "tcp" else node.ws_port
        conn = await (RawConn.tcp(port) if transport == "tcp" else RawConn.ws(port, "/any/path"))
        try:
            connack = await conn.connect("alice", version=version)
            assert connack.reason_code == 1
            assert len(connack.salt) == 16
            assert len(connack.server_key) == 44
            if version > 3:
                assert connack.server_version == version
                assert connack.node_id == node.config.node_id
            else:
                assert connack.server_version == 0
            await conn.write(wk.PING_BYTES)
            assert await conn.next_frame() == wk.PONG
        finally:
            await conn.close()


async def test_wrong_token_gets_connack_2_then_close(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_auth_on=True) as node:
        http = Http(node.http_port)
        try:
            status, body = await http.post(
                "/user/token", {"uid": "bob", "token": "right", "device_flag": 1}
            )
            assert (status, body) == (200, {"status": 200})
            bad = await RawConn.tcp(node.tcp_port)
            connack = await bad.connect("bob", token="wrong")
            assert connack.reason_code == 2
            assert connack.server_key == ""
            assert connack.salt == ""
            assert await bad.wait_closed() == []
            empty = await RawConn.tcp(node.tcp_port)
            assert (await empty.connect("bob", token="")).reason_code == 2
            good = await RawConn.tcp(node.tcp_port)
            assert (await good.connect("bob", token="right")).reason_code == 1
            await good.close()
        finally:
            await http.close()


async def test_banned_user_gets_19_and_bad_client_key_gets_2(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        http = Http(node.http_port)
        try:
            status, _ = await http.post(
                "/channel/info", {"channel_id": "carol", "channel_type": 1, "ban": 1}
            )
            assert status == 200
            conn = await RawConn.tcp(node.tcp_port)
            assert (await conn.connect("carol")).reason_code == 19
            await conn.wait_closed()
            conn = await RawConn.tcp(node.tcp_port)
            assert (await conn.connect("dave", client_key="not base64!")).reason_code == 2
            await conn.wait_closed()
        finally:
            await http.close()


@pytest.mark.parametrize("uid", ["", "  ", "a@b", "a#b", "a&b", "____system"])
async def test_bad_uid_closes_without_connack(tmp_path: Path, uid: str) -> None:
    async with running_node(tmp_path) as node:
        conn = await RawConn.tcp(node.tcp_port)
        await conn.send_frame(wk.Connect(5, 1, "d", uid, "", 0, "x"))
        assert await conn.wait_closed() == []


async def test_first_frame_must_be_connect(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        conn = await RawConn.tcp(node.tcp_port)
        await conn.write(wk.PING_BYTES)
        assert await conn.wait_closed() == []


async def test_malformed_input_closes_only_that_connection(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        healthy = await RawConn.tcp(node.tcp_port)
        assert (await healthy.connect("healthy")).reason_code == 1
        garbage = {
            "unknown type": b"\xf0\x01\x00",
            "reserved type 0": b"\x00\x00",
            "oversized remaining length": b"\x30\xff\xff\xff\x7f",
            "five-byte varint": b"\x30\xff\xff\xff\xff\x01",
            "truncated send body": b"\x30\x02\x00\x01",
        }
        for name, data in garbage.items():
            conn = await RawConn.tcp(node.tcp_port)
            assert (await conn.connect(f"user{len(name)}")).reason_code == 1, name
            await conn.write(data)
            assert await conn.wait_closed() == [], name
        ws = await RawConn.ws(node.ws_port)
        assert (await ws.connect("wsuser")).reason_code == 1
        await ws.write(b"\xf0\x00")
        await ws.wait_closed()
        await healthy.write(wk.PING_BYTES)
        assert await healthy.next_frame() == wk.PONG
        fresh = await RawConn.tcp(node.tcp_port)
        assert (await fresh.connect("fresh")).reason_code == 1
        await fresh.close()
        await healthy.close()


async def test_ws_frames_leave_one_per_message_uncompressed_at_any_size(tmp_path: Path) -> None:
    # The server frames WS messages itself (one transport write per turn), so it must refuse
    # permessage-deflate even when the client offers it, and get the 7/16/64-bit lengths right.
    async with running_node(tmp_path) as node:
        sender = await RawConn.ws(node.ws_port, compress=15)
        recipient = await RawConn.ws(node.ws_port, compress=15)
        assert sender.ws_compress == recipient.ws_compress == 0
        assert (await sender.connect("wsbig1")).reason_code == 1
        assert (await recipient.connect("wsbig2")).reason_code == 1
        await sender.write(wk.PING_BYTES * 3)  # three frames in one message
        for _ in range(3):
            assert await sender.next_frame() == wk.PONG
        assert sender.ws_messages[-3:] == [wk.PONG_BYTES] * 3  # and three messages back
        texts = [b"x", b"y" * 200, b"z" * 70_000]  # RECVs under 126 bytes, under 64 KiB, over
        for seq, text in enumerate(texts, 1):
            await sender.send_text("wsbig2", 1, text, client_seq=seq)
            assert (await sender.expect(wk.SendAck)).reason_code == 1
            recv = await recipient.expect(wk.Recv)
            assert recipient.open_recv(recv) == text
            assert wk.encode(recv, recipient.version) == recipient.ws_messages[-1]
            await recipient.ack(recv)
        await sender.close()
        await recipient.close()


async def test_idle_timeouts_before_and_after_auth(tmp_path: Path) -> None:
    async with running_node(tmp_path, auth_idle_timeout_s=0.2, conn_idle_time_s=0.4) as node:
        silent = await RawConn.tcp(node.tcp_port)
        assert await silent.wait_closed() == []
        idle = await RawConn.tcp(node.tcp_port)
        assert (await idle.connect("idle")).reason_code == 1
        assert await idle.wait_closed() == []
        await wait_until(lambda: len(node.registry) == 0)


async def test_master_login_kicks_other_device_slave_only_same_device(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_auth_on=True, kick_close_delay_s=0.05) as node:
        http = Http(node.http_port)
        try:
            await http.post("/user/token", {"uid": "m", "token": "t", "device_flag": 1})
            first = await RawConn.tcp(node.tcp_port)
            assert (await first.connect("m", token="t", device_id="A")).reason_code == 1
            # slave (level 0): a different device id of the same flag is left alone
            second = await RawConn.tcp(node.tcp_port)
            assert (await second.connect("m", token="t", device_id="B")).reason_code == 1
            # a slave with the SAME device id closes the older one silently
            again = await RawConn.tcp(node.tcp_port)
            assert (await again.connect("m", token="t", device_id="A")).reason_code == 1
            assert await first.wait_closed() == []
            await http.post(
                "/user/token", {"uid": "m", "token": "t2", "device_flag": 1, "device_level": 1}
            )
            # the master token update kicks every connection of that flag (DISCONNECT 12)
            for conn in (second, again):
                kick = await conn.expect(wk.Disconnect)
                assert kick.reason_code == 12
                await conn.close()
            master_a = await RawConn.tcp(node.tcp_port)
            assert (await master_a.connect("m", token="t2", device_id="A")).reason_code == 1
            master_b = await RawConn.tcp(node.tcp_port)
            assert (await master_b.connect("m", token="t2", device_id="B")).reason_code == 1
            frames = await master_a.wait_closed()
            assert frames == [wk.Disconnect(12, "login in other device")]
            await master_b.write(wk.PING_BYTES)
            assert await master_b.next_frame() == wk.PONG
            await master_b.close()
        finally:
            await http.close()


async def test_client_disconnect_closes(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        conn = await RawConn.tcp(node.tcp_port)
        assert (await conn.connect("quitter")).reason_code == 1
        await conn.send_frame(wk.Disconnect(0, "bye"))
        assert await conn.wait_closed() == []
        await wait_until(lambda: not node.presence.sessions_of("quitter"))


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_slow_consumer_is_disconnected_others_keep_going(
    tmp_path: Path, transport: str
) -> None:
    async with running_node(tmp_path, conn_output_bytes_max=64 * 1024) as node:
        sender = await RawConn.tcp(node.tcp_port)
        assert (await sender.connect("firehose")).reason_code == 1
        # connects, then never reads again
        sleeper = await (
            RawConn.tcp(node.tcp_port) if transport == "tcp" else RawConn.ws(node.ws_port)
        )
        assert (await sleeper.connect("sleeper")).reason_code == 1
        big = b"x" * 20_000
        sent = 0
        while node.presence.sessions_of("sleeper") and sent < 2_000:
            sent += 1
            await sender.send_text("sleeper", 1, big, client_seq=sent)
            if sent % 50 == 0:
                for _ in range(50):
                    assert (await sender.expect(wk.SendAck)).reason_code == 1
        assert not node.presence.sessions_of("sleeper"), "the slow consumer is still connected"
        await sender.write(wk.PING_BYTES)
        while (frame := await sender.next_frame()) != wk.PONG:
            assert isinstance(frame, wk.SendAck)


async def test_manager_uid_needs_the_manager_token(tmp_path: Path) -> None:
    async with running_node(tmp_path, manager_token="boss-secret") as node:
        wrong = await RawConn.tcp(node.tcp_port)
        assert (await wrong.connect("____manager", token="guess")).reason_code == 2
        right = await RawConn.ws(node.ws_port)
        assert (await right.connect("____manager", token="boss-secret")).reason_code == 1


async def test_ws_idle_timeout(tmp_path: Path) -> None:
    async with running_node(tmp_path, conn_idle_time_s=0.3) as node:
        conn = await RawConn.ws(node.ws_port)
        assert (await conn.connect("sleepy")).reason_code == 1
        assert await conn.wait_closed() == []
        await wait_until(lambda: len(node.registry) == 0)


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 5100\r\n",
        (
            b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c"
            + bytes([203, 0, 113, 7, 10, 0, 0, 1])
            + (40000).to_bytes(2)
            + (5100).to_bytes(2)
        ),
    ],
    ids=["v1", "v2"],
)
async def test_proxy_protocol_header_is_stripped(tmp_path: Path, header: bytes) -> None:
    async with running_node(tmp_path) as node:
        conn = await RawConn.tcp(node.tcp_port)
        await conn.write(header[:5])  # split reads: the header may arrive in pieces
        await wait_until(lambda: len(node.registry) == 1)
        connect = wk.encode(wk.Connect(5, 1, "d", "proxied", "", 0, _client_key()), 5)
        await conn.write(header[5:] + connect)
        connack = await conn.expect(wk.Connack)
        assert connack.reason_code == 1
        (session,) = list(node.registry)
        assert "203.0.113.7:40000" in repr(session)


def _client_key() -> str:
    return ClientKeyPair.generate().client_key


async def test_failed_start_releases_the_database(tmp_path: Path) -> None:
    async with running_node(tmp_path / "a") as first:
        busy = f"127.0.0.1:{first.http_port}"
        with pytest.raises(OSError):
            await app.start(node_config(tmp_path / "b", http_addr=busy))
        # the RocksDB lock of b was released: the directory opens again
        async with running_node(tmp_path / "b") as second:
            assert second.tcp_port != first.tcp_port


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_ping_flood_closes_the_flooder_only(tmp_path: Path, transport: str) -> None:
    async with running_node(tmp_path) as node:
        port = node.tcp_port if transport == "tcp" else node.ws_port
        polite = await (RawConn.tcp(port) if transport == "tcp" else RawConn.ws(port))
        assert (await polite.connect("polite")).reason_code == 1
        await polite.write(wk.PING_BYTES * 10)  # a few at once are fine
        assert [await polite.next_frame() for _ in range(10)] == [wk.PONG] * 10
        flood = await (RawConn.tcp(port) if transport == "tcp" else RawConn.ws(port))
        assert (await flood.connect("flood")).reason_code == 1
        await flood.write(wk.PING_BYTES * (1 << 20))
        await wait_until(lambda: not node.presence.sessions_of("flood"))
        await polite.write(wk.PING_BYTES)
        assert await polite.next_frame() == wk.PONG


@pytest.mark.parametrize("kind", ["ping", "sub"])
async def test_a_paced_control_frame_flood_is_closed(tmp_path: Path, kind: str) -> None:
    """Many reads of a few hundred PINGs (or SUBs) each: no single read is a flood, but the
    connection overdraws its control-frame budget and is closed; others keep being served."""
    async with running_node(tmp_path) as node:
        polite = await RawConn.tcp(node.tcp_port)
        assert (await polite.connect("polite")).reason_code == 1
        flood = await RawConn.tcp(node.tcp_port)
        assert (await flood.connect("flood")).reason_code == 1
        if kind == "ping":
            frame = wk.PING_BYTES
        else:
            frame = wk.encode(wk.Sub(0, "s1", "g1", 2, 0), wk.LATEST_VERSION)
        chunk = frame * 500
        for _ in range(2 * CONTROL_FRAMES_BURST // 500):  # twice the burst, refills are slower
            if not node.presence.sessions_of("flood"):
                break
            await flood.write(chunk)
        await wait_until(lambda: not node.presence.sessions_of("flood"))
        await polite.write(wk.PING_BYTES)
        assert await polite.next_frame() == wk.PONG
