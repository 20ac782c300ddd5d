"""WKProto over TCP (:5100): an asyncio Protocol per connection, feeding a `Session`.

`data_received` hands each read to the session, which decodes every complete frame in it.
Output frames of one loop turn reach `write_frames` together and leave in one `transport.write`.
An optional PROXY protocol header (v1 text or v2 binary) before CONNECT is stripped; it only
names the client's address (wkproto §1.1).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import cast

from wukongim.server.sessions import Session

log = logging.getLogger(__name__)

SessionFactory = Callable[["TcpLink"], Session]


class TcpLink:
    """`Link` over an asyncio transport."""

    __slots__ = ("_transport", "remote")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    def write_frames(self, frames: list[bytes]) -> None:
        if len(frames) == 1:
            self._transport.write(frames[0])
        else:
            self._transport.write(b"".join(frames))

    def buffered_bytes(self) -> int:
        return self._transport.get_write_buffer_size()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()


PROXY_V1_PREFIX = b"PROXY "
PROXY_V1_BYTES_MAX = 107
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_PROXY_V2_HEADER = 16


def strip_proxy_header(buf: bytes) -> tuple[bytes | None, str | None]:
    """(the bytes after a PROXY header, the client address it names); (None, None) while the
    header is incomplete. Bytes that do not start a PROXY header come back unchanged."""
    if buf.startswith(PROXY_V1_PREFIX[: len(buf)]) and buf[:1] == b"P":
        end = buf.find(b"\r\n", 0, PROXY_V1_BYTES_MAX + 1)
        if end < 0:
            return (None, None) if len(buf) <= PROXY_V1_BYTES_MAX else (buf, None)
        parts = buf[:end].decode("ascii", errors="replace").split(" ")
        address = f"{parts[2]}:{parts[4]}" if len(parts) == 6 else None
        return buf[end + 2 :], address
    if buf.startswith(PROXY_V2_SIGNATURE[: len(buf)]) and buf[:1] == b"\r":
        if len(buf) < _PROXY_V2_HEADER:
            return None, None
        end = _PROXY_V2_HEADER + int.from_bytes(buf[14:16])
        if len(buf) < end:
            return None, None
        return buf[end:], _proxy_v2_address(buf[13], buf[_PROXY_V2_HEADER:end])
    return buf, None


def _proxy_v2_address(family: int, body: bytes) -> str | None:
    if family >> 4 == 1 and len(body) >= 12:  # AF_INET
        return f"{ipaddress.IPv4Address(body[0:4])}:{int.from_bytes(body[8:10])}"
    if family >> 4 == 2 and len(body) >= 36:  # AF_INET6
        return f"[{ipaddress.IPv6Address(body[0:16])}]:{int.from_bytes(body[32:34])}"
    return None


class TcpConnection(asyncio.Protocol):
    """One client TCP connection."""

    __slots__ = ("_factory", "_link", "_preamble", "_session")

    def __init__(self, factory: SessionFactory) -> None:
        self._factory = factory
        self._session: Session | None = None
        self._link: TcpLink | None = None
        self._preamble: bytes | None = b""  # None once past a (possible) PROXY header

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it
        self._link = TcpLink(cast(asyncio.Transport, transport))
        self._session = self._factory(self._link)

    def data_received(self, data: bytes) -> None:
        session = self._session
        if session is None:
            return
        if self._preamble is not None:
            rest, address = strip_proxy_header(self._preamble + data)
            if rest is None:
                self._preamble += data
                return
            self._preamble = None
            if address is not None and self._link is not None:
                self._link.remote = address
            data = rest
            if not data:
                return
        try:
            session.feed(data)
        except Exception:  # connection boundary: one bad connection must not hurt the others
            log.exception("closing %r after an internal error", session)
            session.abort()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session is not None:
            self._session.closed()
            self._session = None


async def start_tcp_gateway(
    host: str, port: int, factory: SessionFactory, *, backlog: int = 4096
) -> asyncio.Server:
    """Listen for WKProto/TCP clients; `factory` builds the session of each connection."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: TcpConnection(factory), host, port, backlog=backlog, reuse_address=True
    )
