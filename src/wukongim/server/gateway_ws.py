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
from collections.abc import Callable

from aiohttp import WSMsgType, web

from wukongim.protocol.errors import RemoteProtocolError
from wukongim.server.jsonrpc import JsonRpcLink, JsonRpcTranslator, looks_like_json
from wukongim.server.sessions import Session

log = logging.getLogger(__name__)

WS_MESSAGE_BYTES_MAX = 4 * 1024 * 1024


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
    """`Link` over an aiohttp WebSocketResponse: our WS messages go straight to its transport
    (see the module docstring); aiohttp only closes the WebSocket, in `run_closer`."""

    __slots__ = ("_closing", "_transport", "_wake", "_ws", "remote")

    def __init__(
        self, ws: web.WebSocketResponse, remote: str, transport: asyncio.Transport
    ) -> None:
        self.remote = remote
        self._ws = ws
        self._transport = transport
        self._wake = asyncio.Event()
        self._closing = False

    def write_frames(self, frames: list[bytes]) -> None:
        transport = self._transport
        if self._closing or transport.is_closing():
            return
        headers = _SMALL_HEADERS
        transport.write(
            b"".join(
                [headers[len(f)] + f if len(f) < 126 else ws_message(_BINARY, f) for f in frames]
            )
        )

    def write_texts(self, texts: list[str]) -> None:
        """JSON-RPC replies: one WS text message each."""
        transport = self._transport
        if self._closing or transport.is_closing():
            return
        transport.write(b"".join(ws_message(_TEXT, t.encode()) for t in texts))

    def buffered_bytes(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self) -> None:
        """Close the WebSocket (close handshake) once what was written has been sent."""
        self._closing = True
        self._wake.set()

    def abort(self) -> None:
        """Drop the connection and whatever it has not sent (protocol error, slow consumer)."""
        self._transport.abort()
        self.close()

    async def run_closer(self) -> None:
        """Wait for `close()`, then close the WebSocket."""
        await self._wake.wait()
        try:
            await self._ws.close()
        except ConnectionError as exc:
            log.debug("ws %s: close failed: %s", self.remote, exc)


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
        if transport is None:  # the peer left during the handshake
            return ws
        link = WsLink(ws, _remote(request), transport)
        session = factory(link)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(link.run_closer())
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
