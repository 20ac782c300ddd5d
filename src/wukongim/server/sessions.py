"""Client connections: one `Session` per TCP or WebSocket connection, whatever the transport.

Rules of this file:

* A session is the connection's life cycle and nothing else: AWAIT_CONNECT -> OPEN -> CLOSING
  -> CLOSED. Transitions happen only in `_open`, `kick` and `_closed` (plus `abort`/`close`).
* The transport hides behind a `Link` (gateway_tcp.py, gateway_ws.py). Output is coalesced: every
  frame written in one loop turn goes to the link in one call at the end of the turn (`flush`).
  The link decides how frames become bytes on the wire (TCP: concatenated; WS: one frame per
  message).
* What a frame *means* (auth, SEND, RECVACK) is decided by the `FrameHandler` (gateway.py); the
  session only decodes, dispatches and writes.
* Idle timeouts and RECV retries come from ONE periodic sweep over all sessions
  (`SessionRegistry.sweep`), never a timer per connection. Reads only set `touched`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import msgspec

from wukongim.protocol.errors import RemoteProtocolError
from wukongim.protocol.wkproto import (
    PING,
    PONG_BYTES,
    Connect,
    Decoder,
    Disconnect,
    Frame,
    RecvAck,
    Send,
    Side,
    encode,
)

if TYPE_CHECKING:
    from wukongim.protocol.crypto import SessionCrypto

log = logging.getLogger(__name__)

CLOSING_TIMEOUT_S = 30.0  # a kicked session is aborted if its socket is not closed by then
# Control frames (PING, SUB, and anything else that is neither SEND nor RECVACK) each cost a
# reply. SDKs send one PING a minute and SUB now and then; a flood of them (a WS message per
# PONG) would hold the loop for seconds and delay everybody. Each connection has a budget:
# CONTROL_FRAMES_BURST at once, refilled at CONTROL_FRAMES_PER_S by the idle sweep. A connection
# that overdraws it is closed as a flood (docs/conformance-findings.md F6).
CONTROL_FRAMES_BURST = 10_000
CONTROL_FRAMES_PER_S = 1_000


class ConnState(enum.Enum):
    AWAIT_CONNECT = 1  # only CONNECT is acceptable
    OPEN = 2  # authenticated: SEND / RECVACK / PING
    CLOSING = 3  # kicked or failed: output drains, then the link closes; input is ignored
    CLOSED = 4


# module globals: cheaper than enum attribute lookups on the hot path
_OPEN, _CLOSING, _CLOSED = ConnState.OPEN, ConnState.CLOSING, ConnState.CLOSED


class Link(Protocol):
    """The transport under a session."""

    remote: str

    def write_frames(self, frames: list[bytes]) -> None:
        """Queue whole frames for the peer, in order."""
        ...

    def buffered_bytes(self) -> int:
        """Bytes accepted by `write_frames` and not yet handed to the kernel."""
        ...

    def close(self) -> None:
        """Send what is queued, then close."""
        ...

    def abort(self) -> None:
        """Close now, dropping queued output."""
        ...


class FrameHandler(Protocol):
    """The meaning of client frames (implemented in gateway.py)."""

    def on_connect(self, session: Session, frame: Connect) -> None: ...

    def on_frame(self, session: Session, frame: Frame) -> None:
        """Any frame of an OPEN session except PING."""
        ...

    def on_closed(self, session: Session) -> None: ...


class PendingRecv(msgspec.Struct, gc=False):
    """A persisted RECV waiting for its RECVACK on this connection (a Struct: one per RECV, and
    ~0.15 us to build where a slotted dataclass takes ~0.5 us)."""

    frame: bytes
    sent_at_s: float
    attempts: int  # re-sends so far
    storage_channel_id: str  # set for SyncOnce messages (their RECVACK moves a read pointer)
    channel_type: int


class Session:
    """One client connection. Created by a gateway when the transport connects."""

    __slots__ = (
        "_decoder",
        "_handler",
        "_link",
        "_loop",
        "_out",
        "_output_bytes_max",
        "conn_id",
        "control_budget",
        "crypto",
        "device_flag",
        "device_id",
        "device_level",
        "idle_since_s",
        "jsonrpc",
        "pending_recv",
        "registry",
        "state",
        "touched",
        "uid",
        "version",
    )

    def __init__(
        self,
        conn_id: int,
        link: Link,
        handler: FrameHandler,
        registry: SessionRegistry,
        *,
        frame_bytes_max: int,
        output_bytes_max: int,
        now_s: float,
    ) -> None:
        self.conn_id = conn_id
        self.state = ConnState.AWAIT_CONNECT
        self.version = 0
        self.uid = ""
        self.device_flag = 0
        self.device_id = ""
        self.device_level = 0
        self.crypto: SessionCrypto | None = None
        self.jsonrpc = False  # JSON-RPC connections carry no encryption (wkproto §8)
        self.pending_recv: dict[int, PendingRecv] = {}
        self.control_budget = float(CONTROL_FRAMES_BURST)  # see CONTROL_FRAMES_PER_S
        self.touched = False
        self.idle_since_s = now_s
        self.registry = registry
        self._decoder = Decoder(Side.SERVER, frame_bytes_max=frame_bytes_max)
        self._handler = handler
        self._link = link
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []
        self._output_bytes_max = output_bytes_max
        registry.add(self)

    def __repr__(self) -> str:
        return f"<Session {self.conn_id} {self.uid or '-'} {self.state.name} {self._link.remote}>"

    @property
    def is_open(self) -> bool:
        return self.state is ConnState.OPEN

    # ---- input -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the transport: decode every complete frame and dispatch it in order."""
        state = self.state
        if state is _CLOSING or state is _CLOSED:
            return
        self.touched = True
        try:
            frames = self._decoder.feed(data)
        except RemoteProtocolError as exc:
            log.info("closing %r: %s", self, exc)
            self.abort()
            return
        handler = self._handler
        for frame in frames:
            state = self.state
            if state is _OPEN:
                kind = type(frame)
                if kind is Send or kind is RecvAck:
                    handler.on_frame(self, frame)
                    continue
                self.control_budget -= 1
                if self.control_budget < 0:
                    log.warning("closing %r: flood of %s frames", self, kind.__name__)
                    self.abort()
                    return
                if frame is PING:  # the decoder returns the singleton
                    self.write(PONG_BYTES)
                else:
                    handler.on_frame(self, frame)
            elif state is ConnState.AWAIT_CONNECT:
                if type(frame) is not Connect:
                    log.info("closing %r: first frame is %s", self, type(frame).__name__)
                    self.abort()
                    return
                handler.on_connect(self, frame)
            else:
                return

    # ---- output ------------------------------------------------------------------------

    def write(self, frame: bytes) -> None:
        """Queue one encoded frame; it leaves at the end of this loop turn."""
        if self.state is _CLOSED:
            return
        out = self._out
        if not out:  # the first frame of this turn: the registry flushes us at its end
            self.registry.flush_later(self)
        out.append(frame)

    def write_frame(self, frame: Frame) -> None:
        self.write(encode(frame, self.version))

    def flush(self) -> None:
        """Hand the queued frames to the link (called once per loop turn)."""
        if not self._out or self.state is _CLOSED:
            return
        out, self._out = self._out, []
        link = self._link
        link.write_frames(out)
        # What the peer has not taken yet stays buffered in the link: past the cap the peer is
        # a slow consumer, and holding more for it would cost the whole node memory.
        if link.buffered_bytes() > self._output_bytes_max:
            log.warning("closing slow consumer %r: %d bytes unsent", self, link.buffered_bytes())
            self.abort()

    # ---- life cycle ----------------------------------------------------------------------

    def open(self, *, uid: str, device_flag: int, device_id: str, device_level: int) -> None:
        """Authentication succeeded (the CONNACK is already written)."""
        assert self.state is ConnState.AWAIT_CONNECT, self.state
        self.uid = uid
        self.device_flag = device_flag
        self.device_id = device_id
        self.device_level = device_level
        self.state = ConnState.OPEN

    def use_jsonrpc(self, link: Link) -> None:
        """The connection speaks JSON-RPC: frames now go out through `link` (a translator)."""
        assert self.state is ConnState.AWAIT_CONNECT, self.state
        self.jsonrpc = True
        self._link = link

    def set_version(self, version: int) -> None:
        self.version = version
        self._decoder.version = version

    def kick(self, disconnect: Disconnect | None, close_delay_s: float) -> None:
        """Stop serving: optionally send DISCONNECT, then close after `close_delay_s`."""
        if self.state is ConnState.CLOSED or self.state is ConnState.CLOSING:
            return
        was_open = self.state is ConnState.OPEN
        self.state = ConnState.CLOSING
        self.touched = True  # the sweep measures CLOSING_TIMEOUT_S from here
        if disconnect is not None:
            self.write_frame(disconnect)
        if was_open:
            self._handler.on_closed(self)
        if close_delay_s <= 0:
            self._loop.call_soon(self.close)
        else:
            self._loop.call_later(close_delay_s, self.close)

    def close(self) -> None:
        """Flush queued output and close the transport."""
        if self.state is ConnState.CLOSED:
            return
        self.flush()
        self._link.close()

    def abort(self) -> None:
        """Close at once (protocol error, slow consumer, idle timeout)."""
        if self.state is ConnState.CLOSED:
            return
        self._out.clear()
        self._link.abort()
        self.closed()

    def closed(self) -> None:
        """The transport is gone (called by the gateway; idempotent)."""
        if self.state is ConnState.CLOSED:
            return
        was_open = self.state is ConnState.OPEN
        self.state = ConnState.CLOSED
        self._out.clear()
        self.pending_recv.clear()
        self.registry.remove(self)
        if was_open:
            self._handler.on_closed(self)


class SessionRegistry:
    """Every live session of this node, and the one sweep that times them out."""

    def __init__(self, *, auth_idle_timeout_s: float, idle_timeout_s: float) -> None:
        self._sessions: dict[int, Session] = {}
        self._next_id = 0
        self._to_flush: list[Session] = []
        self._last_sweep_s: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.auth_idle_timeout_s = auth_idle_timeout_s
        self.idle_timeout_s = idle_timeout_s

    def next_conn_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def add(self, session: Session) -> None:
        self._sessions[session.conn_id] = session

    def flush_later(self, session: Session) -> None:
        """Flush `session` at the end of this loop turn: ONE callback per turn flushes every
        session written to in it (not one callback per session)."""
        to_flush = self._to_flush
        if not to_flush:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self.flush_all)
        to_flush.append(session)

    def flush_all(self) -> None:
        """Flush every session written to since the last flush (normally at the end of the
        turn; the send path calls it early, as soon as a batch is acknowledged)."""
        sessions, self._to_flush = self._to_flush, []
        for session in sessions:
            try:
                session.flush()
            except Exception:  # connection boundary: one broken link must not stall the rest
                log.exception("closing %r after a failed write", session)
                session.abort()

    def remove(self, session: Session) -> None:
        self._sessions.pop(session.conn_id, None)

    def get(self, conn_id: int) -> Session | None:
        return self._sessions.get(conn_id)

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def sweep_idle(self, now_s: float) -> None:
        """Close sessions idle past their deadline: 4 s before auth, connIdleTime after. Refill
        every session's control-frame budget for the time since the last sweep."""
        last, self._last_sweep_s = self._last_sweep_s, now_s
        refill = CONTROL_FRAMES_PER_S * (now_s - last) if last is not None else 0.0
        for session in list(self._sessions.values()):
            if session.control_budget < CONTROL_FRAMES_BURST:
                session.control_budget = min(
                    float(CONTROL_FRAMES_BURST), session.control_budget + refill
                )
            if session.touched:
                session.touched = False
                session.idle_since_s = now_s
                continue
            state = session.state
            if state is ConnState.AWAIT_CONNECT:
                limit = self.auth_idle_timeout_s
            elif state is ConnState.OPEN:
                limit = self.idle_timeout_s
            else:  # CLOSING: a peer that never reads must not keep its socket forever
                limit = CLOSING_TIMEOUT_S
            if now_s - session.idle_since_s >= limit:
                log.info("closing idle %r", session)
                session.abort()

    def abort_all(self) -> None:
        for session in list(self._sessions.values()):
            session.abort()
