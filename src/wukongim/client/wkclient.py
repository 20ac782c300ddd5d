"""An asyncio WKProto client over TCP or WebSocket: for tests, interop checks, bots and the bench.

    client = await WKClient.connect_tcp("127.0.0.1", 5100, "u1", "tk")  # or connect_ws(url, ...)
    ack = await client.send("u2", 1, b'{"type":1,"content":"hi"}')   # -> SendAck
    message = await client.recv()                                    # -> Received
    async for message in client: ...                                 # until the connection ends
    fut = client.send_nowait("g1", 2, payload)                       # pipelining (bench)
    await client.ping(); await client.close()

`connect_*` return once the CONNACK arrived and raise `ConnectRejectedError(reason_code)` when the
server refused. RECV payloads are decrypted and their msgKey checked (a RECV with a bad msgKey is
dropped and counted, as the JS SDK does, so the server retries it). RECVACK is sent automatically
unless `auto_recvack=False` (then call `recvack(message)`).

Layering: imports only wukongim.protocol, asyncio and aiohttp. One reader task per client (and
one writer task for WebSocket, whose send is a coroutine); both are owned by the client and
cancelled and awaited by `close()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

import aiohttp

from wukongim.protocol.crypto import ClientKeyPair, SessionCrypto
from wukongim.protocol.errors import CryptoError, ProtocolError
from wukongim.protocol.wkproto import (
    PING_BYTES,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Event,
    Frame,
    Pong,
    Recv,
    RecvAck,
    Send,
    SendAck,
    Side,
    SubAck,
    encode,
    negotiate_version,
)

logger = logging.getLogger(__name__)
_Q = TypeVar("_Q")

DEVICE_FLAG_WEB: Final = 1
_READ_BYTES: Final = 65_536
_REASON_SUCCESS: Final = 1


class ClientError(Exception):
    """Base class of the client's errors."""


class ConnectRejectedError(ClientError):
    """The server answered CONNACK with a reason other than 1 (Success)."""

    def __init__(self, connack: Connack) -> None:
        super().__init__(f"connect rejected: reason {connack.reason_code}")
        self.connack = connack
        self.reason_code = connack.reason_code


class ConnectionClosedError(ClientError):
    """The connection ended (closed by us, by the server, or after a DISCONNECT)."""

    def __init__(self, message: str, disconnect: Disconnect | None = None) -> None:
        super().__init__(message)
        self.disconnect = disconnect


@dataclass(frozen=True, slots=True)
class Received:
    """A RECV whose msgKey checked out, with its decrypted payload."""

    frame: Recv
    payload: bytes


def _now_ms() -> int:
    # The client is a shell (like clock.py): it may read the wall clock for CONNECT's timestamp.
    return time.time_ns() // 1_000_000


def _random_id() -> str:
    return os.urandom(16).hex()


# ---------------------------------------------------------------------------------------------
# Transports: the same three calls over TCP and WebSocket.


class _Transport(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    async def read(self) -> bytes:
        """Next chunk of bytes; b"" at end of stream."""
        ...

    async def close(self) -> None: ...


class _TcpTransport:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    async def read(self) -> bytes:
        return await self._reader.read(_READ_BYTES)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await self._writer.wait_closed()


class _WsTransport:
    """One WKProto frame per binary WS message out; any data message in."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        owns_http: bool,
        pending_frames_max: int,
    ) -> None:
        self._http = http
        self._ws = ws
        self._owns_http = owns_http
        self._pending: deque[bytes] = deque()
        self._pending_frames_max = pending_frames_max
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._writer_task = asyncio.create_task(self._write_loop(), name="wkclient-ws-writer")

    def write(self, data: bytes) -> None:
        if len(self._pending) >= self._pending_frames_max:
            raise ConnectionClosedError("WebSocket output queue is full")
        self._pending.append(data)
        self._drained.clear()
        self._wakeup.set()

    async def drain(self) -> None:
        await self._drained.wait()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    await self._ws.send_bytes(self._pending.popleft())
                self._drained.set()
        except (ConnectionError, aiohttp.ClientError) as exc:
            # The reader sees the close too and ends the client; nothing more to write.
            logger.debug("WebSocket write failed: %s", exc)
            self._pending.clear()
            self._drained.set()

    async def read(self) -> bytes:
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type is aiohttp.WSMsgType.TEXT:
                return str(msg.data).encode()
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return b""

    async def close(self) -> None:
        self._writer_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer_task
        await self._ws.close()
        if self._owns_http:
            await self._http.close()


# ---------------------------------------------------------------------------------------------


class WKClient:
    """One authenticated WKProto connection. Create it with `connect_tcp` or `connect_ws`."""

    def __init__(
        self,
        transport: _Transport,
        *,
        version: int,
        auto_recvack: bool,
        recv_queue_max: int,
    ) -> None:
        self._transport = transport
        self.version = negotiate_version(version)
        self.auto_recvack = auto_recvack
        self._decoder = Decoder(Side.CLIENT, self.version)
        self.connack: Connack | None = None
        self.crypto: SessionCrypto | None = None
        self.disconnect: Disconnect | None = None
        self.bad_msg_keys = 0  # RECVs dropped because their msgKey or payload did not verify
        self.events: asyncio.Queue[Event] = asyncio.Queue(recv_queue_max)
        self.sub_acks: asyncio.Queue[SubAck] = asyncio.Queue(recv_queue_max)
        self._received: asyncio.Queue[Received | None] = asyncio.Queue(max(recv_queue_max, 1))
        self._acks: dict[int, asyncio.Future[SendAck]] = {}
        self._pongs: deque[asyncio.Future[None]] = deque()
        self._client_seq = 0
        self._reader_task: asyncio.Task[None] | None = None
        self._closed: ConnectionClosedError | None = None

    # ---- construction

    @classmethod
    async def connect_tcp(
        cls,
        host: str,
        port: int,
        uid: str,
        token: str,
        *,
        device_flag: int = DEVICE_FLAG_WEB,
        device_id: str | None = None,
        version: int = 5,
        auto_recvack: bool = True,
        recv_queue_max: int = 10_000,
        key_pair: ClientKeyPair | None = None,
        timeout_s: float = 10.0,
        now_ms: Callable[[], int] = _now_ms,
    ) -> WKClient:
        """Open TCP, authenticate, start reading. Raises ConnectRejectedError on a refusal."""
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
        client = cls(
            _TcpTransport(reader, writer),
            version=version,
            auto_recvack=auto_recvack,
            recv_queue_max=recv_queue_max,
        )
        await client._handshake(
            uid=uid,
            token=token,
            device_flag=device_flag,
            device_id=device_id,
            key_pair=key_pair,
            timeout_s=timeout_s,
            now_ms=now_ms,
        )
        return client

    @classmethod
    async def connect_ws(
        cls,
        url: str,
        uid: str,
        token: str,
        *,
        http: aiohttp.ClientSession | None = None,
        device_flag: int = DEVICE_FLAG_WEB,
        device_id: str | None = None,
        version: int = 5,
        auto_recvack: bool = True,
        recv_queue_max: int = 10_000,
        key_pair: ClientKeyPair | None = None,
        timeout_s: float = 10.0,
        now_ms: Callable[[], int] = _now_ms,
    ) -> WKClient:
        """Open a WebSocket (binary frames), authenticate, start reading."""
        owns_http = http is None
        session = aiohttp.ClientSession() if http is None else http
        try:
            async with asyncio.timeout(timeout_s):
                ws = await session.ws_connect(url, autoping=True)
        except BaseException:
            if owns_http:
                await session.close()
            raise
        transport = _WsTransport(
            session, ws, owns_http=owns_http, pending_frames_max=max(recv_queue_max, 1)
        )
        client = cls(
            transport, version=version, auto_recvack=auto_recvack, recv_queue_max=recv_queue_max
        )
        await client._handshake(
            uid=uid,
            token=token,
            device_flag=device_flag,
            device_id=device_id,
            key_pair=key_pair,
            timeout_s=timeout_s,
            now_ms=now_ms,
        )
        return client

    async def _handshake(
        self,
        *,
        uid: str,
        token: str,
        device_flag: int,
        device_id: str | None,
        key_pair: ClientKeyPair | None,
        timeout_s: float,
        now_ms: Callable[[], int],
    ) -> None:
        keys = key_pair or ClientKeyPair.generate()
        connect = Connect(
            self.version,
            device_flag,
            device_id or _random_id() + "W",
            uid,
            token,
            now_ms(),
            keys.client_key,
        )
        try:
            self._transport.write(encode(connect, self.version))
            async with asyncio.timeout(timeout_s):
                connack, rest = await self._read_connack()
            if connack.reason_code != _REASON_SUCCESS:
                raise ConnectRejectedError(connack)
            self.connack = connack
            if connack.server_version:
                self.version = connack.server_version
            if connack.server_key:
                self.crypto = keys.session(connack.server_key, connack.salt)
        except BaseException:
            await self._transport.close()
            raise
        for frame in rest:
            received = self._dispatch(frame)
            if received is not None:
                self._offer(self._received, received)
        self._reader_task = asyncio.create_task(self._read_loop(), name="wkclient-reader")

    async def _read_connack(self) -> tuple[Connack, list[Frame]]:
        while True:
            data = await self._transport.read()
            if not data:
                raise ConnectionClosedError("connection closed before CONNACK")
            frames = self._decoder.feed(data)
            if frames:
                first, rest = frames[0], frames[1:]
                if not isinstance(first, Connack):
                    raise ConnectionClosedError(f"expected CONNACK, got {type(first).__name__}")
                return first, rest

    # ---- sending

    def send_nowait(
        self,
        channel_id: str,
        channel_type: int,
        payload: bytes,
        *,
        client_msg_no: str | None = None,
        setting: int = 0,
        expire: int = 0,
        topic: str = "",
        red_dot: bool = True,
        sync_once: bool = False,
        no_persist: bool = False,
        dup: bool = False,
    ) -> asyncio.Future[SendAck]:
        """Write a SEND now; the future resolves with its SENDACK (matched by clientSeq).

        The caller should `await drain()` now and then when pipelining many sends.
        """
        self._check_open()
        self._client_seq = client_seq = (self._client_seq % 0xFFFFFFFF) + 1
        client_msg_no = client_msg_no or _random_id()
        msg_key = ""
        if self.crypto is not None:
            payload = self.crypto.encrypt_payload(payload)
            msg_key = self.crypto.send_msg_key(
                client_seq, client_msg_no, channel_id, channel_type, payload
            )
        frame = Send(
            setting,
            client_seq,
            client_msg_no,
            channel_id,
            channel_type,
            payload,
            msg_key,
            expire,
            "",
            topic,
            dup,
            sync_once,
            red_dot,
            no_persist,
        )
        future: asyncio.Future[SendAck] = asyncio.get_running_loop().create_future()
        self._acks[client_seq] = future
        self._transport.write(encode(frame, self.version))
        return future

    async def send(
        self,
        channel_id: str,
        channel_type: int,
        payload: bytes,
        *,
        timeout_s: float = 10.0,
        client_msg_no: str | None = None,
        setting: int = 0,
        expire: int = 0,
        topic: str = "",
        red_dot: bool = True,
        sync_once: bool = False,
        no_persist: bool = False,
        dup: bool = False,
    ) -> SendAck:
        """Send one message and wait for its SENDACK (any reason code; check `.reason_code`)."""
        future = self.send_nowait(
            channel_id,
            channel_type,
            payload,
            client_msg_no=client_msg_no,
            setting=setting,
            expire=expire,
            topic=topic,
            red_dot=red_dot,
            sync_once=sync_once,
            no_persist=no_persist,
            dup=dup,
        )
        await self._transport.drain()
        async with asyncio.timeout(timeout_s):
            return await future

    def write_frame(self, frame: Frame) -> None:
        """Write any frame as is (SUB, DISCONNECT, a hand-made SEND, ...). Low level."""
        self._check_open()
        self._transport.write(encode(frame, self.version))

    def write_raw(self, data: bytes) -> None:
        """Write raw bytes (protocol tests). Low level."""
        self._check_open()
        self._transport.write(data)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is flushed enough."""
        await self._transport.drain()

    def recvack(self, message: Received | Recv) -> None:
        """Acknowledge a RECV (needed only with auto_recvack=False)."""
        frame = message.frame if isinstance(message, Received) else message
        self._check_open()
        ack = RecvAck(
            frame.message_id,
            frame.message_seq,
            sync_once=frame.sync_once,
            red_dot=frame.red_dot,
            no_persist=frame.no_persist,
        )
        self._transport.write(encode(ack, self.version))

    async def ping(self, *, timeout_s: float = 10.0) -> None:
        """Send PING and wait for a PONG."""
        self._check_open()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        self._transport.write(PING_BYTES)
        async with asyncio.timeout(timeout_s):
            await future

    # ---- receiving

    async def recv(self, *, timeout_s: float | None = 10.0) -> Received:
        """The next verified RECV. Raises ConnectionClosedError when the connection ended."""
        async with asyncio.timeout(timeout_s):
            item = await self._received.get()
        if item is None:
            self._received.put_nowait(None)  # keep the end marker for later callers
            raise self._closed or ConnectionClosedError("closed")
        return item

    async def __aiter__(self) -> AsyncIterator[Received]:
        while True:
            item = await self._received.get()
            if item is None:
                self._received.put_nowait(None)
                return
            yield item

    @property
    def pending_acks(self) -> int:
        """SENDs still waiting for their SENDACK."""
        return len(self._acks)

    @property
    def closed(self) -> bool:
        return self._closed is not None

    # ---- reader

    async def _read_loop(self) -> None:
        reason = "connection closed by the server"
        try:
            while True:
                data = await self._transport.read()
                if not data:
                    break
                for frame in self._decoder.feed(data):
                    received = self._dispatch(frame)
                    if received is not None:
                        # A full queue stops the reading, so TCP pushes back on the server.
                        await self._received.put(received)
        except ProtocolError as exc:
            logger.warning("closing: server sent bad data: %s", exc)
            reason = f"protocol error: {exc}"
        except (OSError, ConnectionError) as exc:
            reason = f"connection lost: {exc}"
        finally:
            self._finish(ConnectionClosedError(reason, self.disconnect))

    def _dispatch(self, frame: Frame) -> Received | None:
        """Handle one frame; a verified RECV is returned for the caller to queue."""
        if isinstance(frame, Recv):
            return self._on_recv(frame)
        if isinstance(frame, SendAck):
            future = self._acks.pop(frame.client_seq, None)
            if future is not None and not future.done():
                future.set_result(frame)
        elif isinstance(frame, Pong):
            while self._pongs:
                waiter = self._pongs.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    break
        elif isinstance(frame, Disconnect):
            self.disconnect = frame
        elif isinstance(frame, Event):
            self._offer(self.events, frame)
        elif isinstance(frame, SubAck):
            self._offer(self.sub_acks, frame)
        else:
            logger.warning("ignoring unexpected %s", type(frame).__name__)
        return None

    def _on_recv(self, frame: Recv) -> Received | None:
        payload = frame.payload
        crypto = self.crypto
        if crypto is not None:
            expected = crypto.recv_msg_key(
                frame.message_id,
                frame.message_seq,
                frame.client_msg_no,
                frame.timestamp_s,
                frame.from_uid,
                frame.channel_id,
                frame.channel_type,
                payload,
            )
            try:
                if expected != frame.msg_key:
                    raise CryptoError("msgKey mismatch")
                payload = crypto.decrypt_payload(payload)
            except CryptoError as exc:
                self.bad_msg_keys += 1
                logger.warning("dropping RECV %d: %s", frame.message_id, exc)
                return None
        if self.auto_recvack:
            self.recvack(frame)
        return Received(frame, payload)

    @staticmethod
    def _offer(queue: asyncio.Queue[_Q], item: _Q) -> None:
        # For the rare frames (EVENT, SUBACK) a full queue drops instead of blocking the reader.
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            logger.warning("client queue full: dropping %s", type(item).__name__)

    def _finish(self, error: ConnectionClosedError) -> None:
        if self._closed is not None:
            return
        self._closed = error
        for future in self._acks.values():
            if not future.done():
                future.set_exception(error)
        self._acks.clear()
        for waiter in self._pongs:
            if not waiter.done():
                waiter.set_exception(error)
        self._pongs.clear()
        with contextlib.suppress(asyncio.QueueFull):
            self._received.put_nowait(None)
        if self._received.full():
            # Make room for the end marker: the oldest unread message is lost only at close.
            self._received.get_nowait()
            self._received.put_nowait(None)

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed

    # ---- closing

    async def close(self) -> None:
        """Close the connection and stop the reader. Pending sends fail. Idempotent."""
        self._finish(ConnectionClosedError("closed by the client", self.disconnect))
        task, self._reader_task = self._reader_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._transport.close()

    async def wait_closed(self, *, timeout_s: float = 10.0) -> ConnectionClosedError:
        """Wait until the server ends the connection; returns why."""
        task = self._reader_task
        if task is not None:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(task)
        assert self._closed is not None
        return self._closed

    async def __aenter__(self) -> WKClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
