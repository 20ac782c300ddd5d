"""WKProto over WebSocket (:5200, any path), on aiohttp.

Inbound: the payloads of all data messages (binary or text) form ONE byte stream, so a frame may
span messages and a message may hold several frames (wkproto §1.2). Outbound: exactly one frame
per binary message; the legacy JS SDK mis-parses coalesced frames.

Outbound frames of a loop turn leave in ONE `transport.write`, like on TCP: we frame the WS
messages ourselves (a server frame is a 2-10 byte header, unmasked) instead of awaiting aiohttp's
`send_bytes` once per message, which cost a socket write per WKProto frame. That needs messages
without permessage-deflate, so the handshake does not offer it (`compress=False`); encrypted
payloads would not compress anyway. aiohttp still reads, answers pings and closes. Output the
socket has not taken stays in the transport's buffer, which the session's output cap watches.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import cast

from aiohttp import WSMsgType, web

from wukongim.protocol.errors import RemoteProtocolError
from wukongim.server.jsonrpc import JsonRpcLink, JsonRpcTranslator, looks_like_json
from wukongim.server.sessions import Session

log = logging.getLogger(__name__)

WS_MESSAGE_BYTES_MAX = 4 * 1024 * 1024
WS_MESSAGE_OVERHEAD_BYTES = 64  # queue slot + object + WS header, roughly


def ws_message(opcode_byte: int, payload: bytes) -> bytes:
    """One unmasked, unfragmented WS message (RFC 6455 §5.2) as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((opcode_byte, n)) + payload
    if n < 65536:
        return b"".join((bytes((opcode_byte, 126)), n.to_bytes(2), payload))
    return b"".join((bytes((opcode_byte, 127)), n.to_bytes(8), payload))


_BINARY = 0x82  # FIN + binary
_TEXT = 0x81  # FIN + text
_SMALL_HEADERS = tuple(bytes((_BINARY, n)) for n in range(126))


class WsLink:
    """`Link` over an aiohttp WebSocketResponse (see the module docstring for the writes)."""

    __slots__ = ("_aborted", "_bytes", "_closing", "_queue", "_transport", "_wake", "_ws", "remote")

    def __init__(
        self, ws: web.WebSocketResponse, remote: str, transport: asyncio.Transport | None = None
    ) -> None:
        self.remote = remote
        self._ws = ws
        # None: every message goes through aiohttp's writer task (compression or no transport)
        self._transport = transport
        self._queue: deque[bytes | str] = deque()
        self._bytes = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._aborted = False

    def write_frames(self, frames: list[bytes]) -> None:
        if self._closing:
            return
        transport = self._transport
        if transport is not None:
            if transport.is_closing():
                return
            headers = _SMALL_HEADERS
            transport.write(
                b"".join(
                    [
                        headers[len(f)] + f if len(f) < 126 else ws_message(_BINARY, f)
                        for f in frames
                    ]
                )
            )
            return
        self._queue.extend(frames)
        for frame in frames:
            self._bytes += len(frame)
        self._wake.set()

    def write_texts(self, texts: list[str]) -> None:
        """JSON-RPC replies: one WS text message each."""
        if self._closing:
            return
        transport = self._transport
        if transport is not None:
            if not transport.is_closing():
                transport.write(b"".join(ws_message(_TEXT, t.encode()) for t in texts))
            return
        self._queue.extend(texts)
        for text in texts:
            self._bytes += len(text)
        self._wake.set()

    def buffered_bytes(self) -> int:
        # Each queued item is a WS message of its own: count its overhead too, so that a flood
        # of tiny frames reaches the output cap like a flood of big ones.
        queued = self._bytes + len(self._queue) * WS_MESSAGE_OVERHEAD_BYTES
        transport = self._transport
        return queued if transport is None else queued + transport.get_write_buffer_size()

    def close(self) -> None:
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        self._aborted = True
        self._queue.clear()
        self._bytes = 0
        self.close()

    async def run_writer(self) -> None:
        """Send queued frames one per message until closed; then close the WebSocket."""
        ws = self._ws
        queue = self._queue
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while queue:
                    item = queue.popleft()
                    self._bytes -= len(item)
                    if type(item) is bytes:
                        await ws.send_bytes(item)
                    else:
                        await ws.send_str(item)  # type: ignore[arg-type]
                if self._closing:
                    break
        except ConnectionError as exc:
            log.debug("ws %s: write failed: %s", self.remote, exc)
        except Exception:  # connection boundary: log it, close this socket, keep serving
            log.exception("ws %s: writer failed", self.remote)
        finally:
            queue.clear()
            await ws.close()


SessionFactory = Callable[[WsLink], Session]


def _remote(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


def make_ws_app(factory: SessionFactory, *, jsonrpc: bool = True) -> web.Application:
    """An aiohttp app accepting WKProto (and, unless disabled, JSON-RPC) WebSocket clients on
    any path."""

    async def handle(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=WS_MESSAGE_BYTES_MAX, autoping=True, compress=False)
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="expected a WebSocket upgrade")
        await ws.prepare(request)
        transport = request.transport
        raw = cast("asyncio.Transport", transport) if not ws.compress else None
        link = WsLink(ws, _remote(request), raw)
        session = factory(link)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(link.run_writer())
                try:
                    await _read_loop(ws, session, link if jsonrpc else None)
                finally:
                    link.close()
        finally:
            session.closed()
        return ws

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", handle)
    return app


async def _read_loop(
    ws: web.WebSocketResponse, session: Session, jsonrpc_link: WsLink | None
) -> None:
    """Feed every data message to the session; the first one decides between WKProto and
    JSON-RPC (wkproto §1.3) when `jsonrpc_link` is given."""
    translator: JsonRpcTranslator | None = None
    first = True
    async for msg in ws:
        if msg.type is WSMsgType.BINARY:
            data = msg.data
        elif msg.type is WSMsgType.TEXT:
            data = msg.data.encode()
        else:
            break
        try:
            if first and jsonrpc_link is not None and looks_like_json(data):
                translator = JsonRpcTranslator()
                session.use_jsonrpc(JsonRpcLink(jsonrpc_link, translator))
            first = False
            if translator is not None:
                data, replies = translator.inbound(data.decode(errors="replace"))
                if replies:
                    jsonrpc_link.write_texts(replies)  # type: ignore[union-attr]
            session.feed(data)
        except RemoteProtocolError as exc:
            log.info("closing %r: %s", session, exc)
            session.abort()
            return
        except Exception:  # connection boundary: one bad connection must not hurt the others
            log.exception("closing %r after an internal error", session)
            session.abort()
            return
