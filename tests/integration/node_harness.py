"""Start a real node in-process on 127.0.0.1 (ports 0) and talk to it over real sockets.

`RawConn` is a deliberately small WKProto client over TCP or WebSocket, used where a test needs
to send exactly the bytes it wants (malformed frames, no RECVACK, odd versions).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

from wukongim import app
from wukongim.config import Config
from wukongim.protocol import wkproto as wk
from wukongim.protocol.crypto import ClientKeyPair, SessionCrypto

HOST = "127.0.0.1"
WAIT_S = 10.0


def node_config(data_dir: Path, **overrides: Any) -> Config:
    listen = dict.fromkeys(("tcp_addr", "ws_addr", "http_addr"), f"{HOST}:0")
    return Config(data_dir=data_dir, **{**listen, **overrides})


@asynccontextmanager
async def running_node(data_dir: Path, **overrides: Any) -> AsyncIterator[app.RunningApp]:
    node = await app.start(node_config(data_dir, **overrides))
    try:
        yield node
    finally:
        conns, _OPEN[:] = _OPEN[:], []
        for conn in conns:
            await conn.close()
        await node.stop()


_OPEN: list[RawConn] = []


class ConnectionClosedError(Exception):
    pass


class RawConn:
    """One WKProto connection (TCP or WS) with its own decoder and session crypto.
    Connections still open when `running_node` exits are closed there."""

    def __init__(self) -> None:
        _OPEN.append(self)
        self.decoder = wk.Decoder(wk.Side.CLIENT)
        self.frames: list[wk.Frame] = []
        self.crypto: SessionCrypto | None = None
        self.version = 5
        self.closed = False
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.ws_messages: list[bytes] = []

    @classmethod
    async def tcp(cls, port: int) -> RawConn:
        conn = cls()
        conn._reader, conn._writer = await asyncio.open_connection(HOST, port)
        return conn

    @classmethod
    async def ws(cls, port: int, path: str = "/", *, compress: int = 0) -> RawConn:
        """`compress=15` offers permessage-deflate, as browsers and Node's `ws` do."""
        conn = cls()
        conn._http = aiohttp.ClientSession()
        conn._ws = await conn._http.ws_connect(f"http://{HOST}:{port}{path}", compress=compress)
        return conn

    @property
    def ws_compress(self) -> int:
        """The permessage-deflate window the server agreed to (0: none)."""
        assert self._ws is not None
        return int(self._ws.compress)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
        if self._ws is not None:
            await self._ws.close()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def write(self, data: bytes) -> None:
        if self._reader is not None:
            assert self._writer is not None
            self._writer.write(data)
            await self._writer.drain()
        else:
            assert self._ws is not None
            await self._ws.send_bytes(data)

    async def send_frame(self, frame: wk.Frame) -> None:
        await self.write(wk.encode(frame, self.version))

    async def _read_some(self) -> bytes:
        if self._reader is not None:
            data = await self._reader.read(65536)
            if not data:
                raise ConnectionClosedError
            return data
        assert self._ws is not None
        msg = await self._ws.receive()
        if msg.type is not aiohttp.WSMsgType.BINARY:
            raise ConnectionClosedError
        self.ws_messages.append(msg.data)
        return bytes(msg.data)

    async def next_frame(self, timeout_s: float = WAIT_S) -> wk.Frame:
        async with asyncio.timeout(timeout_s):
            while not self.frames:
                try:
                    data = await self._read_some()
                except ConnectionClosedError:
                    self.closed = True
                    raise
                self.frames.extend(self.decoder.feed(data))
        return self.frames.pop(0)

    async def expect(self, kind: type[Any], timeout_s: float = WAIT_S) -> Any:
        frame = await self.next_frame(timeout_s)
        assert isinstance(frame, kind), frame
        return frame

    async def wait_closed(self, timeout_s: float = WAIT_S) -> list[wk.Frame]:
        """Read until the server closes; returns the frames that came first."""
        seen: list[wk.Frame] = []
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    seen.append(await self.next_frame(timeout_s))
                except (ConnectionClosedError, ConnectionError):
                    self.closed = True
                    return seen

    async def connect(
        self,
        uid: str,
        *,
        token: str = "",
        version: int = 5,
        device_flag: int = 1,
        device_id: str = "",
        client_key: str | None = None,
    ) -> wk.Connack:
        keys = ClientKeyPair.generate()
        self.version = version
        self.decoder.version = min(version, wk.LATEST_VERSION)
        await self.send_frame(
            wk.Connect(
                version,
                device_flag,
                device_id or f"dev-{uid}",
                uid,
                token,
                0,
                keys.client_key if client_key is None else client_key,
            )
        )
        connack = await self.expect(wk.Connack)
        if connack.reason_code == 1 and connack.server_key:
            self.crypto = keys.session(connack.server_key, connack.salt)
        return connack  # type: ignore[no-any-return]

    async def send_text(
        self,
        channel_id: str,
        channel_type: int,
        text: bytes,
        *,
        client_seq: int,
        client_msg_no: str = "",
        no_persist: bool = False,
        sync_once: bool = False,
        bad_msg_key: bool = False,
    ) -> None:
        assert self.crypto is not None
        payload = self.crypto.encrypt_payload(text)
        cmn = client_msg_no or f"cmn-{client_seq}"
        key = self.crypto.send_msg_key(client_seq, cmn, channel_id, channel_type, payload)
        if bad_msg_key:
            key = "0" * 32
        await self.send_frame(
            wk.Send(
                0,
                client_seq,
                cmn,
                channel_id,
                channel_type,
                payload,
                key,
                red_dot=True,
                no_persist=no_persist,
                sync_once=sync_once,
            )
        )

    def open_recv(self, recv: wk.Recv) -> bytes:
        """Verify the msgKey and decrypt, as the JS SDK does."""
        assert self.crypto is not None
        expected = self.crypto.recv_msg_key(
            recv.message_id,
            recv.message_seq,
            recv.client_msg_no,
            recv.timestamp_s,
            recv.from_uid,
            recv.channel_id,
            recv.channel_type,
            recv.payload,
        )
        assert expected == recv.msg_key, "RECV msgKey does not verify"
        return self.crypto.decrypt_payload(recv.payload)

    async def ack(self, recv: wk.Recv) -> None:
        await self.send_frame(
            wk.RecvAck(
                recv.message_id,
                recv.message_seq,
                red_dot=recv.red_dot,
                sync_once=recv.sync_once,
                no_persist=recv.no_persist,
            )
        )


class Http:
    """The node's HTTP API."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}"
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def post(self, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        kwargs: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with self.session.post(self.base + path, **kwargs) as resp:
            text = await resp.text()
            return resp.status, _json_or_text(text)

    async def get(self, path: str) -> Any:
        async with self.session.get(self.base + path) as resp:
            return resp.status, _json_or_text(await resp.text())


def _json_or_text(text: str) -> Any:
    import json  # noqa: PLC0415

    try:
        return json.loads(text)
    except ValueError:
        return text
