"""WKClient against a tiny in-process fake server built from our own codec (TCP and WebSocket)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from wukongim.client.wkclient import (
    ConnectionClosedError,
    ConnectRejectedError,
    Received,
    WKClient,
)
from wukongim.protocol.crypto import ClientKeyPair, SessionCrypto, server_handshake
from wukongim.protocol.errors import PayloadDecryptError
from wukongim.protocol.wkproto import (
    PONG_BYTES,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Event,
    Frame,
    Ping,
    RecvAck,
    Send,
    SendAck,
    Side,
    connack_server_version,
    encode,
    encode_recv,
    negotiate_version,
)

TIMEOUT_S = 5.0
PERSON = 1


@dataclass
class FakeConn:
    uid: str
    version: int
    crypto: SessionCrypto
    write: Callable[[bytes], None]
    close: Callable[[], None]


@dataclass
class FakeServer:
    """Just enough of a WKProto server: auth, SENDACK, RECV to the peer, PONG."""

    node_id: int = 7
    conns: list[FakeConn] = field(default_factory=list)
    recvacks: asyncio.Queue[tuple[str, RecvAck]] = field(default_factory=asyncio.Queue)
    sends: asyncio.Queue[tuple[str, Send, bytes]] = field(default_factory=asyncio.Queue)
    connected: asyncio.Queue[FakeConn] = field(default_factory=asyncio.Queue)
    next_message_id: int = 1000
    ws_messages: list[int] = field(default_factory=list)  # frames per inbound WS message

    def on_frames(
        self,
        state: dict[str, FakeConn],
        frames: list[Frame],
        write: Callable[[bytes], None],
        close: Callable[[], None],
    ) -> None:
        for frame in frames:
            if isinstance(frame, Connect):
                self._on_connect(state, frame, write, close)
            elif isinstance(frame, Send):
                self._on_send(state["conn"], frame)
            elif isinstance(frame, RecvAck):
                self.recvacks.put_nowait((state["conn"].uid, frame))
            elif isinstance(frame, Ping):
                write(PONG_BYTES)

    def _on_connect(
        self,
        state: dict[str, FakeConn],
        frame: Connect,
        write: Callable[[bytes], None],
        close: Callable[[], None],
    ) -> None:
        version = negotiate_version(frame.version)
        server_version = connack_server_version(frame.version)
        if frame.token == "bad":
            write(encode(Connack(0, 2, server_version=server_version), version))
            close()
            return
        hs = server_handshake(frame.client_key)
        conn = FakeConn(frame.uid, version, hs.session, write, close)
        state["conn"] = conn
        self.conns.append(conn)
        node_id = self.node_id if server_version >= 4 else 0
        connack = Connack(-5, 1, hs.server_key, hs.salt, server_version, node_id)
        write(encode(connack, version))
        self.connected.put_nowait(conn)

    def _on_send(self, conn: FakeConn, send: Send) -> None:
        try:
            plain = conn.crypto.open_send(send)
        except PayloadDecryptError:
            conn.write(encode(SendAck(1, send.client_seq, 0, 9), conn.version))
            return
        self.next_message_id += 1
        message_id = self.next_message_id
        self.sends.put_nowait((conn.uid, send, plain))
        ack = SendAck(message_id, send.client_seq, 1, 1, red_dot=send.red_dot)
        conn.write(encode(ack, conn.version))
        for peer in self.conns:
            if peer.uid == send.channel_id:
                self.push(peer, plain, from_uid=conn.uid, message_id=message_id, flags=send.flags)

    def push(
        self,
        conn: FakeConn,
        plain: bytes,
        *,
        from_uid: str,
        message_id: int,
        flags: int = 2,
        bad_msg_key: bool = False,
    ) -> None:
        payload = conn.crypto.encrypt_payload(plain)
        msg_key = conn.crypto.recv_msg_key(
            message_id, 1, "cmn", 1_700_000_000, from_uid, from_uid, PERSON, payload
        )
        if bad_msg_key:
            msg_key = "0" * 32
        conn.write(
            encode_recv(
                conn.version,
                flags=flags & 0x07,
                setting=0,
                msg_key=msg_key,
                from_uid=from_uid,
                channel_id=from_uid,
                channel_type=PERSON,
                client_msg_no="cmn",
                message_id=message_id,
                message_seq=1,
                timestamp_s=1_700_000_000,
                payload=payload,
            )
        )

    # ---- TCP

    async def handle_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = Decoder(Side.SERVER)
        state: dict[str, FakeConn] = {}
        try:
            while data := await reader.read(65536):
                self.on_frames(state, decoder.feed(data), writer.write, writer.close)
        except ConnectionError:
            pass
        finally:
            writer.close()

    # ---- WebSocket

    async def handle_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        decoder = Decoder(Side.SERVER)
        state: dict[str, FakeConn] = {}
        outbox: asyncio.Queue[bytes | None] = asyncio.Queue()

        async def pump() -> None:
            while (data := await outbox.get()) is not None:
                await ws.send_bytes(data)
            await ws.close()

        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(pump())
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    frames = decoder.feed(msg.data)
                    self.ws_messages.append(len(frames))
                    self.on_frames(
                        state, frames, outbox.put_nowait, lambda: outbox.put_nowait(None)
                    )
            outbox.put_nowait(None)
        return ws


@pytest.fixture
async def server() -> AsyncIterator[tuple[FakeServer, int, str]]:
    fake = FakeServer()
    tcp = await asyncio.start_server(fake.handle_tcp, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    app = web.Application()
    app.router.add_get("/", fake.handle_ws)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ws_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield fake, port, f"ws://127.0.0.1:{ws_port}/"
    tcp.close()
    await runner.cleanup()
    with contextlib.suppress(Exception):
        await tcp.wait_closed()


async def _tcp(port: int, uid: str, **kwargs: object) -> WKClient:
    return await WKClient.connect_tcp("127.0.0.1", port, uid, "tk", **kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 3, 4, 5])
async def test_tcp_connect_send_and_receive(
    server: tuple[FakeServer, int, str], version: int
) -> None:
    fake, port, _ = server
    async with await _tcp(port, "u1", version=version) as u1, await _tcp(port, "u2") as u2:
        assert u1.connack is not None
        assert u1.connack.reason_code == 1
        assert u1.version == version
        assert u1.connack.node_id == (7 if version >= 4 else 0)
        assert u1.connack.server_version == (version if version >= 4 else 0)
        ack = await u1.send("u2", PERSON, b'{"content":"hello","type":1}')
        assert ack.reason_code == 1
        assert ack.client_seq == 1
        assert ack.red_dot
        uid, send, plain = await asyncio.wait_for(fake.sends.get(), TIMEOUT_S)
        assert (uid, send.channel_id, plain) == ("u1", "u2", b'{"content":"hello","type":1}')
        message = await u2.recv(timeout_s=TIMEOUT_S)
        assert message.payload == b'{"content":"hello","type":1}'
        assert message.frame.from_uid == "u1"
        acker, recvack = await asyncio.wait_for(fake.recvacks.get(), TIMEOUT_S)
        assert acker == "u2"
        assert recvack.message_id == message.frame.message_id
        assert recvack.red_dot


async def test_ws_connect_send_and_receive(server: tuple[FakeServer, int, str]) -> None:
    _, _, url = server
    u1 = await WKClient.connect_ws(url, "u1", "tk")
    u2 = await WKClient.connect_ws(url, "u2", "tk", version=2)
    try:
        assert u2.version == 2
        ack = await u1.send("u2", PERSON, b"via ws")
        assert ack.reason_code == 1
        message = await u2.recv(timeout_s=TIMEOUT_S)
        assert message.payload == b"via ws"
        await u1.ping(timeout_s=TIMEOUT_S)
    finally:
        await u1.close()
        await u2.close()


async def test_ws_writes_one_frame_per_message(server: tuple[FakeServer, int, str]) -> None:
    fake, _, url = server
    client = await WKClient.connect_ws(url, "u1", "tk")
    try:
        futures = [client.send_nowait("g1", 2, b"x") for _ in range(20)]
        await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
        await client.ping(timeout_s=TIMEOUT_S)
    finally:
        await client.close()
    assert fake.ws_messages == [1] * 22  # CONNECT, 20 SENDs, PING


async def test_rejected_connect_raises_with_reason(server: tuple[FakeServer, int, str]) -> None:
    _, port, _ = server
    with pytest.raises(ConnectRejectedError) as info:
        await WKClient.connect_tcp("127.0.0.1", port, "u1", "bad")
    assert info.value.reason_code == 2


async def test_ping_gets_pong(server: tuple[FakeServer, int, str]) -> None:
    _, port, _ = server
    async with await _tcp(port, "u1") as client:
        await client.ping(timeout_s=TIMEOUT_S)
        await client.ping(timeout_s=TIMEOUT_S)


async def test_pipelined_sends_resolve_by_client_seq(server: tuple[FakeServer, int, str]) -> None:
    _, port, _ = server
    async with await _tcp(port, "u1") as client:
        futures = [client.send_nowait("g1", 2, f"m{i}".encode()) for i in range(200)]
        await client.drain()
        acks = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
        assert [a.client_seq for a in acks] == list(range(1, 201))
        assert all(a.reason_code == 1 for a in acks)
        assert client.pending_acks == 0


async def test_recv_with_bad_msg_key_is_dropped_and_not_acked(
    server: tuple[FakeServer, int, str],
) -> None:
    fake, port, _ = server
    async with await _tcp(port, "u2") as client:
        conn = await asyncio.wait_for(fake.connected.get(), TIMEOUT_S)
        fake.push(conn, b"forged", from_uid="u1", message_id=1, bad_msg_key=True)
        fake.push(conn, b"genuine", from_uid="u1", message_id=2)
        message = await client.recv(timeout_s=TIMEOUT_S)
        assert message.payload == b"genuine"
        assert client.bad_msg_keys == 1
        _, recvack = await asyncio.wait_for(fake.recvacks.get(), TIMEOUT_S)
        assert recvack.message_id == 2


async def test_manual_recvack(server: tuple[FakeServer, int, str]) -> None:
    fake, port, _ = server
    async with await _tcp(port, "u2", auto_recvack=False) as client:
        conn = await asyncio.wait_for(fake.connected.get(), TIMEOUT_S)
        fake.push(conn, b"one", from_uid="u1", message_id=11, flags=0x04)
        message = await client.recv(timeout_s=TIMEOUT_S)
        await client.ping(timeout_s=TIMEOUT_S)  # a round trip: a RECVACK would have arrived
        assert fake.recvacks.empty()
        client.recvack(message)
        _, recvack = await asyncio.wait_for(fake.recvacks.get(), TIMEOUT_S)
        assert (recvack.message_id, recvack.sync_once, recvack.red_dot) == (11, True, False)


async def test_server_disconnect_ends_the_client(server: tuple[FakeServer, int, str]) -> None:
    fake, port, _ = server
    client = await _tcp(port, "u1")
    conn = await asyncio.wait_for(fake.connected.get(), TIMEOUT_S)
    pending = client.send_nowait("nobody-acks-this", 2, b"x")
    conn.write(encode(Disconnect(12, "login in other device"), 5))
    conn.close()
    closed = await client.wait_closed(timeout_s=TIMEOUT_S)
    assert closed.disconnect == Disconnect(12, "login in other device")
    # The SEND may have been acked before the close; if not, it failed with the close.
    with contextlib.suppress(ConnectionClosedError):
        await asyncio.wait_for(pending, TIMEOUT_S)
    with pytest.raises(ConnectionClosedError):
        await client.recv(timeout_s=TIMEOUT_S)
    with pytest.raises(ConnectionClosedError):
        client.send_nowait("u2", 1, b"late")
    await client.close()


async def test_async_iteration_ends_at_close(server: tuple[FakeServer, int, str]) -> None:
    fake, port, _ = server
    client = await _tcp(port, "u2")
    conn = await asyncio.wait_for(fake.connected.get(), TIMEOUT_S)
    for i in range(3):
        fake.push(conn, f"m{i}".encode(), from_uid="u1", message_id=100 + i)
    got: list[Received] = []
    async with asyncio.timeout(TIMEOUT_S):
        async for message in client:
            got.append(message)
            if len(got) == 3:
                conn.close()
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2"]
    await client.close()


async def test_events_are_queued(server: tuple[FakeServer, int, str]) -> None:
    fake, port, _ = server
    async with await _tcp(port, "u1") as client:
        conn = await asyncio.wait_for(fake.connected.get(), TIMEOUT_S)
        event = Event("ev1", "___TextMessageStart", 1, b'{"a":1}')
        conn.write(encode(event, 5))
        assert await asyncio.wait_for(client.events.get(), TIMEOUT_S) == event


async def test_fixed_key_pair_is_used(server: tuple[FakeServer, int, str]) -> None:
    fake, port, _ = server
    keys = ClientKeyPair(b"0123456789abcdef0123456789abcdef")
    async with await _tcp(port, "u1", key_pair=keys, device_id="dev1W") as client:
        conn = await asyncio.wait_for(fake.connected.get(), TIMEOUT_S)
        assert client.crypto is not None
        assert client.crypto.aes_key == conn.crypto.aes_key
