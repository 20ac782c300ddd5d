"""An adversarial WKProto client written from the spec (shared/spec/wkproto.md), for conformance
tests. It deliberately shares no code with `wukongim.protocol`: framing, field layouts, X25519,
AES-128-CBC and the msgKey are implemented here from the spec text with `cryptography` and
`hashlib`, so a codec bug shared by our server and our own client library cannot hide.

Only the node start-up (`serve`) uses the server package, because that is the thing under test.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wukongim import app
from wukongim.config import Config

HOST = "127.0.0.1"
WAIT_S = 10.0

# Frame types (spec §2.4)
CONNECT, CONNACK, SEND, SENDACK, RECV, RECVACK, PING, PONG, DISCONNECT = range(1, 10)
EVENT = 12
# Header flags (spec §2.2)
DUP, SYNC_ONCE, RED_DOT, NO_PERSIST = 0x08, 0x04, 0x02, 0x01
HAS_SERVER_VERSION = 0x01
# Setting bits (spec §4)
SETTING_TOPIC, SETTING_STREAM = 0x08, 0x02
LATEST = 5


class ShortFrameError(Exception):
    """A frame body ended before a field did."""


class ClosedError(Exception):
    """The server closed the connection."""


# ---------------------------------------------------------------------------------------------
# Primitive encodings (spec §2.1, §2.3)


def varint(n: int) -> bytes:
    """Remaining length: 7 bits per byte, least significant group first; `00` for zero."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def wstr(s: str | bytes) -> bytes:
    raw = s.encode() if isinstance(s, str) else s
    return struct.pack(">H", len(raw)) + raw


def frame(kind: int, flags: int, body: bytes) -> bytes:
    return bytes([kind << 4 | flags]) + varint(len(body)) + body


class Reader:
    """Bounds-checked big-endian field reader over one frame body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.body):
            raise ShortFrameError(f"need {n} bytes at {self.pos} of {len(self.body)}")
        out = self.body[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def string(self) -> str:
        return self.take(self.u16()).decode()

    def rest(self) -> bytes:
        out = self.body[self.pos :]
        self.pos = len(self.body)
        return out

    @property
    def left(self) -> int:
        return len(self.body) - self.pos


@dataclass(frozen=True, slots=True)
class RawFrame:
    kind: int
    flags: int
    body: bytes
    raw: bytes


def split_frames(buf: bytearray) -> list[RawFrame]:
    """Remove and return every complete frame at the front of `buf` (server → client side)."""
    out: list[RawFrame] = []
    while buf:
        kind, flags = buf[0] >> 4, buf[0] & 0x0F
        if kind in (PING, PONG):
            out.append(RawFrame(kind, flags, b"", bytes(buf[:1])))
            del buf[:1]
            continue
        length = 0
        pos = 1
        for shift in range(0, 28, 7):
            if pos >= len(buf):
                return out
            byte = buf[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
        else:
            raise ValueError("server sent a varint longer than 4 bytes")
        if len(buf) < pos + length:
            return out
        out.append(
            RawFrame(kind, flags, bytes(buf[pos : pos + length]), bytes(buf[: pos + length]))
        )
        del buf[: pos + length]
    return out


# ---------------------------------------------------------------------------------------------
# Server → client frames (spec §3.2, §3.4, §3.5, §3.8)


@dataclass(frozen=True, slots=True)
class Connack:
    flags: int
    server_version: int | None
    time_diff: int
    reason: int
    server_key: str
    salt: str
    node_id: int | None
    trailing: bytes
    raw: bytes


@dataclass(frozen=True, slots=True)
class SendAck:
    flags: int
    message_id: int
    client_seq: int
    message_seq: int
    reason: int
    trailing: bytes


@dataclass(frozen=True, slots=True)
class Recv:
    flags: int
    setting: int
    msg_key: str
    from_uid: str
    channel_id: str
    channel_type: int
    expire: int | None
    client_msg_no: str
    message_id: int
    message_seq: int
    timestamp: int
    topic: str | None
    payload: bytes
    raw: bytes
    stream: tuple[int, str, int] | None = None  # (streamFlag, streamNo, streamId), v2-4 only


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason: int
    text: str


@dataclass(frozen=True, slots=True)
class Pong:
    flags: int


Frame = Connack | SendAck | Recv | Disconnect | Pong | RawFrame


def parse_connack(f: RawFrame, client_version: int) -> Connack:
    r = Reader(f.body)
    server_version = r.u8() if f.flags & HAS_SERVER_VERSION else None
    time_diff = r.i64()
    reason = r.u8()
    server_key = r.string()
    salt = r.string()
    v = min(client_version, LATEST)
    node_id = r.u64() if v >= 4 else None
    return Connack(
        f.flags, server_version, time_diff, reason, server_key, salt, node_id, r.rest(), f.raw
    )


def parse_frame(f: RawFrame, v: int) -> Frame:
    """Decode a post-CONNACK frame for negotiated version `v`."""
    if f.kind == PONG:
        return Pong(f.flags)
    r = Reader(f.body)
    if f.kind == SENDACK:
        return SendAck(f.flags, r.i64(), r.u32(), r.u32(), r.u8(), r.rest())
    if f.kind == DISCONNECT:
        return Disconnect(r.u8(), r.string())
    if f.kind != RECV:
        return f
    setting = r.u8()
    msg_key = r.string()
    from_uid = r.string()
    channel_id = r.string()
    channel_type = r.u8()
    expire = r.u32() if v >= 3 else None
    client_msg_no = r.string()
    stream = None
    if 2 <= v < 5 and setting & SETTING_STREAM:
        stream = (r.u8(), r.string(), r.u64())
    message_id = r.i64()
    message_seq = r.u32()
    timestamp = r.u32()
    topic = r.string() if setting & SETTING_TOPIC else None
    return Recv(
        f.flags,
        setting,
        msg_key,
        from_uid,
        channel_id,
        channel_type,
        expire,
        client_msg_no,
        message_id,
        message_seq,
        timestamp,
        topic,
        r.rest(),
        f.raw,
        stream,
    )


# ---------------------------------------------------------------------------------------------
# Crypto (spec §5)


def md5hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # MD5 is the protocol's choice (spec §5.4)


@dataclass(frozen=True, slots=True)
class SessionKeys:
    aes_key: bytes  # 16 ASCII hex chars
    aes_iv: bytes  # the 16-char salt

    def encrypt(self, plaintext: bytes) -> bytes:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        enc = Cipher(algorithms.AES(self.aes_key), modes.CBC(self.aes_iv)).encryptor()
        return base64.b64encode(enc.update(padded) + enc.finalize())

    def decrypt(self, wire: bytes) -> bytes:
        dec = Cipher(algorithms.AES(self.aes_key), modes.CBC(self.aes_iv)).decryptor()
        padded = dec.update(base64.b64decode(wire, validate=True)) + dec.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()

    def msg_key(self, sign: bytes) -> str:
        return md5hex(self.encrypt(sign))

    def send_msg_key(self, seq: int, cmn: str, channel_id: str, ctype: int, wire: bytes) -> str:
        return self.msg_key(f"{seq}{cmn}{channel_id}{ctype}".encode() + wire)

    def recv_msg_key(self, m: Recv) -> str:
        head = (
            f"{m.message_id}{m.message_seq}{m.client_msg_no}{m.timestamp}{m.from_uid}"
            f"{m.channel_id}{m.channel_type}"
        )
        return self.msg_key(head.encode() + m.payload)


def derive_keys(private: X25519PrivateKey, server_key: str, salt: str) -> SessionKeys:
    peer = X25519PublicKey.from_public_bytes(base64.b64decode(server_key)[:32])
    shared = private.exchange(peer)
    aes_key = md5hex(base64.b64encode(shared))[:16].encode()
    return SessionKeys(aes_key, salt[:16].encode())


def public_key_b64(private: X25519PrivateKey) -> str:
    return base64.b64encode(private.public_key().public_bytes_raw()).decode()


def encode_connect(
    version: int,
    device_flag: int,
    device_id: str,
    uid: str,
    token: str,
    client_ts_ms: int,
    client_key: str,
) -> bytes:
    body = (
        bytes([version, device_flag])
        + wstr(device_id)
        + wstr(uid)
        + wstr(token)
        + struct.pack(">q", client_ts_ms)
        + wstr(client_key)
    )
    return frame(CONNECT, 0, body)


# ---------------------------------------------------------------------------------------------
# The client


class WkClient:
    """One WKProto connection over TCP or WebSocket. Every WS message the server sends is checked
    to hold exactly one complete frame (spec §1.2); violations are kept in `ws_violations`."""

    def __init__(self, registry: list[WkClient]) -> None:
        registry.append(self)
        self.buf = bytearray()
        self.pending: list[RawFrame] = []
        self.version = LATEST
        self.client_version = LATEST
        self.keys: SessionKeys | None = None
        self.uid = ""
        self.closed = False
        self.ws_messages = 0
        self.ws_violations: list[str] = []
        self.next_seq = 1
        self.skipped: list[Frame] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    @property
    def is_ws(self) -> bool:
        return self._ws is not None

    async def open_tcp(self, port: int) -> WkClient:
        self._reader, self._writer = await asyncio.open_connection(HOST, port)
        return self

    async def open_ws(self, port: int, path: str = "/") -> WkClient:
        self._http = aiohttp.ClientSession()
        # a short close handshake: a server busy flushing a backlog must not stall teardown
        timeout = aiohttp.ClientWSTimeout(ws_close=2.0)
        self._ws = await self._http.ws_connect(
            f"http://{HOST}:{port}{path}", autoping=True, timeout=timeout
        )
        return self

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def abort(self) -> None:
        """Drop the connection without a close handshake (and without reading a backlog)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.transport.abort()
        self._ws = None
        http, self._http = self._http, None
        if http is not None:
            await http.close()  # closes the connector, and with it the socket

    # -- raw I/O -------------------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        try:
            if self._writer is not None:
                self._writer.write(data)
                await self._writer.drain()
            else:
                assert self._ws is not None
                await self._ws.send_bytes(data)
        except ConnectionError as exc:
            raise ClosedError from exc

    async def write_ws_text(self, text: str) -> None:
        assert self._ws is not None
        try:
            await self._ws.send_str(text)
        except ConnectionError as exc:
            raise ClosedError from exc

    async def _read_some(self) -> bytes:
        if self._reader is not None:
            try:
                data = await self._reader.read(65536)
            except ConnectionError as exc:
                raise ClosedError from exc
            if not data:
                raise ClosedError
            return data
        if self._ws is None:
            raise ClosedError
        msg = await self._ws.receive()
        if msg.type is not aiohttp.WSMsgType.BINARY:
            raise ClosedError(str(msg.type))
        data = bytes(msg.data)
        self.ws_messages += 1
        one = bytearray(data)
        try:
            frames = split_frames(one)
        except ValueError as exc:
            frames, one = [], bytearray(b"?")
            self.ws_violations.append(f"undecodable WS message {data[:16].hex()}: {exc}")
        if len(frames) != 1 or one:
            self.ws_violations.append(
                f"WS message with {len(frames)} frames and {len(one)} stray bytes: "
                f"{data[:32].hex()}"
            )
        return data

    async def next_raw(self, timeout_s: float = WAIT_S) -> RawFrame:
        async with asyncio.timeout(timeout_s):
            while not self.pending:
                try:
                    self.buf.extend(await self._read_some())
                except ClosedError:
                    self.closed = True
                    raise
                self.pending.extend(split_frames(self.buf))
        return self.pending.pop(0)

    async def next_frame(self, timeout_s: float = WAIT_S) -> Frame:
        return parse_frame(await self.next_raw(timeout_s), self.version)

    async def wait_closed(self, timeout_s: float = WAIT_S) -> list[RawFrame]:
        """Read until the server closes the connection; return the frames that came first."""
        seen: list[RawFrame] = []
        async with asyncio.timeout(timeout_s):
            while True:
                try:
                    seen.append(await self.next_raw(timeout_s))
                except ClosedError:
                    return seen

    # -- session -------------------------------------------------------------------------------

    async def connect(
        self,
        uid: str,
        *,
        version: int = LATEST,
        token: str = "",
        device_flag: int = 1,
        device_id: str | None = None,
        client_key: str | None = None,
        client_ts_ms: int = 0,
    ) -> Connack:
        private = X25519PrivateKey.generate()
        self.uid = uid
        self.client_version = version
        self.version = min(version, LATEST)
        key = public_key_b64(private) if client_key is None else client_key
        await self.write(
            encode_connect(
                version, device_flag, device_id or f"{uid}-dev", uid, token, client_ts_ms, key
            )
        )
        raw = await self.next_raw()
        assert raw.kind == CONNACK, f"expected CONNACK, got {raw}"
        connack = parse_connack(raw, version)
        if connack.reason == 1 and connack.server_key:
            self.keys = derive_keys(private, connack.server_key, connack.salt)
        return connack

    def encode_send(
        self,
        channel_id: str,
        channel_type: int,
        plaintext: bytes,
        *,
        client_seq: int | None = None,
        client_msg_no: str | None = None,
        flags: int = RED_DOT,
        setting: int = 0,
        expire: int = 0,
        topic: str | None = None,
        stream_no: str = "",
        bad_msg_key: bool = False,
        wire: bytes | None = None,
    ) -> tuple[int, bytes]:
        """Encode one SEND (spec §3.3); returns (clientSeq, frame bytes). Without session keys
        (encryption disabled on the server) the payload is plain and the msgKey empty."""
        if client_seq is None:
            client_seq = self.next_seq
            self.next_seq += 1
        cmn = client_msg_no if client_msg_no is not None else f"{self.uid}-{client_seq}"
        if self.keys is None:
            wire = plaintext if wire is None else wire
            key = ""
        else:
            if wire is None:
                wire = self.keys.encrypt(plaintext)
            key = self.keys.send_msg_key(client_seq, cmn, channel_id, channel_type, wire)
        if bad_msg_key:
            key = "f" * 32 if key != "f" * 32 else "0" * 32
        body = bytes([setting]) + struct.pack(">I", client_seq) + wstr(cmn)
        if 2 <= self.version < 5 and setting & SETTING_STREAM:
            body += wstr(stream_no)
        body += wstr(channel_id) + bytes([channel_type])
        if self.version >= 3:
            body += struct.pack(">I", expire)
        body += wstr(key)
        if setting & SETTING_TOPIC:
            body += wstr(topic or "")
        return client_seq, frame(SEND, flags, body + wire)

    async def send(self, channel_id: str, channel_type: int, plaintext: bytes, **kw: Any) -> int:
        client_seq, data = self.encode_send(channel_id, channel_type, plaintext, **kw)
        await self.write(data)
        return client_seq

    async def expect_sendack(self, timeout_s: float = WAIT_S) -> SendAck:
        got = await self.next_frame(timeout_s)
        assert isinstance(got, SendAck), f"expected SENDACK, got {got}"
        return got

    async def expect_recv(self, timeout_s: float = WAIT_S) -> Recv:
        got = await self.next_frame(timeout_s)
        assert isinstance(got, Recv), f"expected RECV, got {got}"
        return got

    async def chat(self, channel_id: str, channel_type: int, text: bytes, **kw: Any) -> SendAck:
        """SEND and wait for its SENDACK; other frames that come first go to `skipped`."""
        seq = await self.send(channel_id, channel_type, text, **kw)
        async with asyncio.timeout(WAIT_S):
            while True:
                got = await self.next_frame()
                if isinstance(got, SendAck) and got.client_seq == seq:
                    return got
                self.skipped.append(got)

    def open(self, m: Recv) -> bytes:
        """Verify the msgKey and decrypt, as the JS SDK does (spec §5.4)."""
        if self.keys is None:
            assert m.msg_key == ""
            return m.payload
        expected = self.keys.recv_msg_key(m)
        assert m.msg_key == expected, f"RECV msgKey {m.msg_key!r} != {expected!r}"
        return self.keys.decrypt(m.payload)

    async def ack(self, m: Recv) -> None:
        flags = m.flags & (RED_DOT | SYNC_ONCE | NO_PERSIST)
        await self.write(frame(RECVACK, flags, struct.pack(">qI", m.message_id, m.message_seq)))


# ---------------------------------------------------------------------------------------------
# HTTP and the node


class Api:
    """The node's HTTP API, returning (status, parsed JSON or text)."""

    def __init__(self, port: int) -> None:
        self.base = f"http://{HOST}:{port}"
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def post(self, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        async with self.session.post(self.base + path, data=data, headers=headers) as resp:
            return resp.status, _json_or_text(await resp.text())

    async def ok(self, path: str, body: Any) -> Any:
        status, reply = await self.post(path, body)
        assert status == 200, (path, body, status, reply)
        return reply

    async def messages(self, login_uid: str, channel_id: str, channel_type: int) -> list[Any]:
        reply = await self.ok(
            "/channel/messagesync",
            {
                "login_uid": login_uid,
                "channel_id": channel_id,
                "channel_type": channel_type,
                "start_message_seq": 0,
                "end_message_seq": 0,
                "limit": 10000,
                "pull_mode": 1,
            },
        )
        return list(reply["messages"])


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class Node:
    running: app.RunningApp
    api: Api
    clients: list[WkClient]

    async def tcp(self) -> WkClient:
        return await WkClient(self.clients).open_tcp(self.running.tcp_port)

    async def ws(self, path: str = "/") -> WkClient:
        return await WkClient(self.clients).open_ws(self.running.ws_port, path)

    async def client(self, transport: str) -> WkClient:
        return await (self.tcp() if transport == "tcp" else self.ws())

    async def online(self, uid: str, transport: str = "tcp", **kw: Any) -> WkClient:
        conn = await self.client(transport)
        connack = await conn.connect(uid, **kw)
        assert connack.reason == 1, connack
        return conn


def unique(prefix: str) -> str:
    return f"{prefix}{os.urandom(4).hex()}"


@asynccontextmanager
async def serve(data_dir: Path, **overrides: Any) -> AsyncIterator[Node]:
    """Start a real node on 127.0.0.1 (ports 0). On exit every client is closed and every WS
    connection is checked for the one-frame-per-message rule."""
    config = Config(
        data_dir=data_dir,
        tcp_addr=f"{HOST}:0",
        ws_addr=f"{HOST}:0",
        http_addr=f"{HOST}:0",
        **overrides,
    )
    running = await app.start(config)
    node = Node(running, Api(running.http_port), [])
    try:
        yield node
    finally:
        for conn in node.clients:
            await conn.close()
        await node.api.close()
        await running.stop()
    violations = [v for conn in node.clients for v in conn.ws_violations]
    assert not violations, violations


async def chat_works(node: Node, transport: str = "tcp") -> None:
    """A fresh pair of clients can connect and exchange a message both ways."""
    a_uid, b_uid = unique("fa"), unique("fb")
    a = await node.online(a_uid, transport)
    b = await node.online(b_uid, transport)
    try:
        for src, dst in ((a, b), (b, a)):
            text = f"health {src.uid}".encode()
            ack = await src.chat(dst.uid, 1, text)
            assert ack.reason == 1, ack
            m = await dst.expect_recv()
            assert dst.open(m) == text
            assert m.channel_id == src.uid
            await dst.ack(m)
    finally:
        await a.close()
        await b.close()
