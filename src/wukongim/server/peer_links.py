"""Peer links: the node-to-node transport over TCP, in the WUKONG framing (spec wkproto §9).

Shape (one object per node, owned by app.py):

* **Outbound**: one TCP connection per peer, dialled by a task that sends Connect (uid = our node
  id in decimal), waits up to `connect_timeout_s` for a matching Connack, then carries our
  Messages and Requests to that peer. Lost links are redialled with exponential backoff + jitter.
* **Inbound**: a listener on the cluster port. A peer must open with Connect; afterwards its
  Messages are handed to `on_messages(peer, messages)` and its Requests to `request_handler`.
  Every heartbeat is answered with a heartbeat.
* **Batching**: `send()` only queues. Once per loop turn (a `call_soon` flush) everything queued
  for a peer leaves as ONE BatchMessage write, so the Raft messages of many groups to one peer
  share a frame and a syscall.
* **Bounded queues**: each peer queue holds at most `queue_messages_max` messages and
  `queue_bytes_max` content bytes; past that the oldest (or the new) message is dropped and
  counted. Raft tolerates loss; it does not tolerate
  a node running out of memory because one peer is down.
* **Liveness** (§9.3): a tick every `tick_s`; a link that received nothing for
  `heartbeat_idle_s` sends a heartbeat, one silent for `silence_max_s` is dropped (redialled).

Callbacks run on the event loop and must not block.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from wukongim.clock import Clock, SystemClock
from wukongim.ids import NodeId
from wukongim.protocol import nodewire as nw
from wukongim.protocol.errors import RemoteProtocolError

__all__ = [
    "DropPolicy",
    "MessagesCallback",
    "PeerLinks",
    "PeerLinksConfig",
    "PeerStats",
    "PeerUnavailableError",
    "RequestHandler",
]

log = logging.getLogger(__name__)

_BATCH_OVERHEAD_BYTES = 64  # envelope + batch count + one message header, rounded up

Address = tuple[str, int]
MessagesCallback = Callable[[NodeId, list[nw.Message]], None]
# Returns the Response body and status; None means "unknown path": no reply (spec §9.3).
RequestHandler = Callable[[NodeId, nw.Request], Awaitable[nw.Response | None]]


class DropPolicy(enum.Enum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEW = "drop_new"


class PeerUnavailableError(ConnectionError):
    """The peer is unknown, not connected in time, or the link broke before the reply."""


@dataclass(frozen=True, slots=True)
class PeerLinksConfig:
    connect_timeout_s: float = 4.0
    tick_s: float = 0.1
    heartbeat_idle_s: float = 1.0
    silence_max_s: float = 2.0
    request_timeout_s: float = 10.0
    queue_messages_max: int = 10_000
    queue_bytes_max: int = 64 * 1024 * 1024  # message content bytes waiting for one peer
    drop_policy: DropPolicy = DropPolicy.DROP_OLDEST
    reconnect_delay_min_s: float = 0.05
    reconnect_delay_max_s: float = 2.0
    batch_bytes_max: int = 4 * 1024 * 1024
    frame_bytes_max: int = nw.FRAME_BYTES_MAX_DEFAULT
    write_buffer_high_bytes: int = 8 * 1024 * 1024


@dataclass(slots=True)
class PeerStats:
    sent_messages: int = 0
    sent_batches: int = 0
    sent_bytes: int = 0  # message bytes (content + per-message header), without envelopes
    dropped_messages: int = 0
    received_messages: int = 0
    connects: int = 0
    disconnects: int = 0


# --------------------------------------------------------------------------------------------
# One TCP connection (either direction)


class _Conn(asyncio.Protocol):
    """Decodes frames and hands them to `on_frames`; tracks receive time and write pausing."""

    def __init__(self, links: PeerLinks, on_frames: Callable[[_Conn, list[nw.Frame]], None]):
        self.links = links
        self.on_frames = on_frames
        self.decoder = nw.NodeWireDecoder(links.config.frame_bytes_max)
        self.transport: asyncio.Transport | None = None
        self.peer: NodeId | None = None
        self.last_recv_s = links.clock.monotonic_s()
        self.last_heartbeat_s = 0.0
        self.paused = False
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, do not assert.
        self.transport = cast(asyncio.Transport, transport)
        high = self.links.config.write_buffer_high_bytes
        self.transport.set_write_buffer_limits(high=high, low=high // 4)

    def data_received(self, data: bytes) -> None:
        self.last_recv_s = self.links.clock.monotonic_s()
        try:
            frames = self.decoder.receive_data(data)
        except RemoteProtocolError as exc:
            log.warning("peer %s: protocol error: %s", self.peer, exc)
            self.abort()
            return
        if frames:
            self.on_frames(self, frames)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.links.on_writable(self)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(None)
        self.links.on_conn_lost(self)


# --------------------------------------------------------------------------------------------
# Outbound link to one peer


class _PeerLink:
    """Our outbound connection to one peer, its bounded queue and its pending requests."""

    def __init__(self, node_id: NodeId, addr: Address) -> None:
        self.node_id = node_id
        self.addr = addr
        self.queue: deque[nw.Message] = deque()
        self.queued_bytes = 0  # content bytes in `queue`
        self.conn: _Conn | None = None  # set once the handshake completed
        self.connack: asyncio.Future[nw.Connack] | None = None
        self.pending: dict[int, asyncio.Future[nw.Response]] = {}
        self.request_ids = itertools.count(1)
        self.connect_ids = itertools.count(1)
        self.connected = asyncio.Event()
        self.stats = PeerStats()
        self.task: asyncio.Task[None] | None = None

    def fail_pending(self, reason: str) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(PeerUnavailableError(reason))
        self.pending.clear()


class PeerLinks:
    """All links of one node. Use `async with PeerLinks(...) as links:`, or start() and close()
    from the same task (the links' tasks live in a TaskGroup entered by start())."""

    def __init__(
        self,
        node_id: NodeId,
        listen: Address | None,
        peers: Mapping[NodeId, Address],
        on_messages: MessagesCallback,
        *,
        request_handler: RequestHandler | None = None,
        config: PeerLinksConfig | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.node_id = node_id
        self.config = config or PeerLinksConfig()
        self.clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random(int.from_bytes(os.urandom(8), "little"))
        self._listen = listen
        self._on_messages = on_messages
        self._request_handler = request_handler
        self._links: dict[NodeId, _PeerLink] = {}
        self._initial_peers = dict(peers)
        self._inbound: set[_Conn] = set()
        self._dirty: dict[NodeId, None] = {}
        self._flush_scheduled = False
        self._server: asyncio.Server | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._task_set: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # ---- lifecycle

    async def start(self) -> None:
        """Bind the listener (if any) and start dialling every peer."""
        self._loop = asyncio.get_running_loop()
        if self._listen is not None:
            host, port = self._listen
            self._server = await self._loop.create_server(self._new_inbound, host, port)
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._spawn(self._tick_loop(), "peer-links-tick")
        for node_id, addr in self._initial_peers.items():
            self.add_peer(node_id, addr)

    async def close(self) -> None:
        """Stop dialling, close every connection, fail pending requests."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for link in self._links.values():
            link.fail_pending("peer links closed")
            if link.task is not None:
                link.task.cancel()
            if link.conn is not None:
                link.conn.abort()
        for conn in list(self._inbound):
            conn.abort()
        if self._tasks is not None:
            for task in list(self._task_set):
                task.cancel()
            await self._tasks.__aexit__(None, None, None)
            self._tasks = None
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> PeerLinks:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def _spawn(self, coro: Coroutine[object, object, None], name: str) -> asyncio.Task[None]:
        assert self._tasks is not None, "start() first"
        task = self._tasks.create_task(coro, name=name)
        self._task_set.add(task)
        task.add_done_callback(self._task_set.discard)
        return task

    @property
    def listen_port(self) -> int:
        assert self._server is not None
        assert self._server.sockets
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def add_peer(self, node_id: NodeId, addr: Address) -> None:
        """Start dialling a peer (idempotent for the same address)."""
        old = self._links.get(node_id)
        if old is not None and old.addr == addr:
            return
        if old is not None:
            self.remove_peer(node_id)
        link = _PeerLink(node_id, addr)
        self._links[node_id] = link
        link.task = self._spawn(self._dial_loop(link), f"peer-link-{node_id}")

    def remove_peer(self, node_id: NodeId) -> None:
        link = self._links.pop(node_id, None)
        if link is None:
            return
        link.fail_pending("peer removed")
        if link.task is not None:
            link.task.cancel()
        if link.conn is not None:
            link.conn.abort()

    # ---- queries

    def peers(self) -> list[NodeId]:
        return sorted(self._links)

    def is_connected(self, node_id: NodeId) -> bool:
        link = self._links.get(node_id)
        return link is not None and link.conn is not None

    def stats(self, node_id: NodeId) -> PeerStats:
        return self._links[node_id].stats

    # ---- sending

    def send(self, node_id: NodeId, message: nw.Message) -> bool:
        """Queue one message for the peer; it leaves with this loop turn's batch.

        Returns False if a message was dropped because the queue was full (the new one under
        DROP_NEW, the oldest under DROP_OLDEST) or the peer is unknown."""
        link = self._links.get(node_id)
        if link is None:
            return False
        kept = self._enqueue(link, message)
        self._mark_dirty(node_id)
        return kept

    def send_many(self, node_id: NodeId, messages: Iterable[nw.Message]) -> int:
        """Queue several messages; returns how many were dropped."""
        link = self._links.get(node_id)
        if link is None:
            return sum(1 for _ in messages)
        dropped = sum(0 if self._enqueue(link, m) else 1 for m in messages)
        self._mark_dirty(node_id)
        return dropped

    def _enqueue(self, link: _PeerLink, message: nw.Message) -> bool:
        """Queue within both bounds (messages and content bytes); True if nothing dropped."""
        cfg = self.config
        size = len(message.content)
        queue = link.queue
        if (
            len(queue) < cfg.queue_messages_max
            and link.queued_bytes + size <= cfg.queue_bytes_max
            and size <= cfg.frame_bytes_max - _BATCH_OVERHEAD_BYTES
        ):
            queue.append(message)
            link.queued_bytes += size
            return True
        stats = link.stats
        fits_alone = size <= min(cfg.queue_bytes_max, cfg.frame_bytes_max - _BATCH_OVERHEAD_BYTES)
        if cfg.drop_policy is DropPolicy.DROP_OLDEST and fits_alone:
            while queue and (
                len(queue) >= cfg.queue_messages_max
                or link.queued_bytes + size > cfg.queue_bytes_max
            ):
                link.queued_bytes -= len(queue.popleft().content)
                stats.dropped_messages += 1
            queue.append(message)
            link.queued_bytes += size
            return False
        stats.dropped_messages += 1  # DROP_NEW, or one message larger than a bound on its own
        if not fits_alone:
            log.warning("peer %s: dropped a %d-byte message (too large)", link.node_id, size)
        return False

    def _mark_dirty(self, node_id: NodeId) -> None:
        self._dirty[node_id] = None
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def flush(self) -> None:
        """Write every queued message now (normally done by the per-turn callback)."""
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        dirty, self._dirty = self._dirty, {}
        for node_id in dirty:
            link = self._links.get(node_id)
            if link is not None:
                self._flush_link(link)

    def _flush_link(self, link: _PeerLink) -> None:
        conn = link.conn
        if conn is None or conn.paused or not link.queue:
            return  # kept (bounded) until the link is up or writable again
        messages = list(link.queue)
        link.queue.clear()
        link.queued_bytes = 0
        total = sum(len(m.content) for m in messages) + 24 * len(messages)
        runs = (
            [messages]
            if total <= self.config.batch_bytes_max
            else nw.split_batch(messages, self.config.batch_bytes_max)
        )
        for run in runs:
            conn.write(nw.encode_batch(run))
        stats = link.stats
        stats.sent_batches += len(runs)
        stats.sent_messages += len(messages)
        stats.sent_bytes += total

    def on_writable(self, conn: _Conn) -> None:
        if conn.peer is not None and not self._is_inbound(conn):
            self._mark_dirty(conn.peer)

    # ---- requests

    async def request(
        self, node_id: NodeId, path: str, body: bytes = b"", timeout_s: float | None = None
    ) -> nw.Response:
        """Send a Request to the peer and wait for its Response (spec §9.3: 10 s default).

        Raises PeerUnavailableError (unknown peer, link lost) or TimeoutError."""
        link = self._links.get(node_id)
        if link is None:
            raise PeerUnavailableError(f"unknown peer {node_id}")
        timeout = self.config.request_timeout_s if timeout_s is None else timeout_s
        request_id = next(link.request_ids)
        async with asyncio.timeout(timeout):
            await link.connected.wait()
            conn = link.conn
            if conn is None:
                raise PeerUnavailableError(f"peer {node_id} disconnected")
            future: asyncio.Future[nw.Response] = asyncio.get_running_loop().create_future()
            link.pending[request_id] = future
            try:
                conn.write(nw.encode(nw.Request(request_id, path, body)))
                return await future
            finally:
                link.pending.pop(request_id, None)

    # ---- dialling

    async def _dial_loop(self, link: _PeerLink) -> None:
        attempt = 0
        while not self._closing:
            try:
                conn = await self._dial(link)
            except (OSError, TimeoutError, RemoteProtocolError) as exc:
                log.debug("node %s: dial %s failed: %r", self.node_id, link.node_id, exc)
            except Exception:  # task boundary: log, back off, keep trying
                log.exception("node %s: dial %s crashed", self.node_id, link.node_id)
            else:
                attempt = 0
                await self._run_link(link, conn)
            attempt += 1
            await asyncio.sleep(self._backoff_s(attempt))

    def _backoff_s(self, attempt: int) -> float:
        cfg = self.config
        delay = min(cfg.reconnect_delay_max_s, cfg.reconnect_delay_min_s * 2.0 ** min(attempt, 30))
        return delay * self._rng.uniform(0.5, 1.0)

    async def _dial(self, link: _PeerLink) -> _Conn:
        assert self._loop is not None
        host, port = link.addr
        async with asyncio.timeout(self.config.connect_timeout_s):
            _, conn = await self._loop.create_connection(
                lambda: _Conn(self, self._on_outbound_frames), host, port
            )
            conn.peer = link.node_id
            connect_id = next(link.connect_ids)
            link.connack = connack_future = self._loop.create_future()
            conn.closed.add_done_callback(lambda _: _fail(connack_future, "closed before Connack"))
            conn.write(nw.encode(nw.Connect(connect_id, str(self.node_id))))
            try:
                connack = await connack_future
            except BaseException:
                conn.abort()
                raise
        if connack.id != connect_id or connack.status != nw.Status.OK:
            conn.abort()
            raise RemoteProtocolError(f"peer {link.node_id} refused: {connack}")
        return conn

    async def _run_link(self, link: _PeerLink, conn: _Conn) -> None:
        link.conn = conn
        link.connected.set()
        link.stats.connects += 1
        log.info("node %s: link to %s up", self.node_id, link.node_id)
        self._mark_dirty(link.node_id)
        try:
            await conn.closed
        finally:
            link.conn = None
            link.connected.clear()
            link.stats.disconnects += 1
            link.fail_pending("link lost")
            conn.abort()
            log.info("node %s: link to %s down", self.node_id, link.node_id)

    def _on_outbound_frames(self, conn: _Conn, frames: list[nw.Frame]) -> None:
        assert conn.peer is not None
        link = self._links.get(conn.peer)
        if link is None:
            conn.abort()
            return
        messages: list[nw.Message] = []
        for frame in frames:
            if isinstance(frame, nw.Response):
                future = link.pending.get(frame.id)
                if future is not None and not future.done():
                    future.set_result(frame)
            elif isinstance(frame, nw.Connack):
                if link.connack is not None and not link.connack.done():
                    link.connack.set_result(frame)
            elif isinstance(frame, nw.Message | nw.BatchMessage):
                _collect(frame, messages)
        if messages:
            link.stats.received_messages += len(messages)
            self._on_messages(conn.peer, messages)

    # ---- accepting

    def _new_inbound(self) -> _Conn:
        conn = _Conn(self, self._on_inbound_frames)
        self._inbound.add(conn)
        return conn

    def _is_inbound(self, conn: _Conn) -> bool:
        return conn in self._inbound

    def _on_inbound_frames(self, conn: _Conn, frames: list[nw.Frame]) -> None:
        messages: list[nw.Message] = []
        for frame in frames:
            if conn.peer is None:
                if not self._accept_connect(conn, frame):
                    return
            elif isinstance(frame, nw.Message | nw.BatchMessage):
                _collect(frame, messages)
            elif isinstance(frame, nw.Heartbeat):
                conn.write(nw.HEARTBEAT_BYTES)
            elif isinstance(frame, nw.Request):
                self._start_request(conn, conn.peer, frame)
        if messages and conn.peer is not None:
            link = self._links.get(conn.peer)
            if link is not None:
                link.stats.received_messages += len(messages)
            self._on_messages(conn.peer, messages)

    def _accept_connect(self, conn: _Conn, frame: nw.Frame) -> bool:
        """The first frame of an inbound link must be Connect with a numeric uid."""
        if isinstance(frame, nw.Heartbeat):
            conn.write(nw.HEARTBEAT_BYTES)
            return True
        if not isinstance(frame, nw.Connect) or not frame.uid.isdigit():
            log.warning("inbound peer link: expected Connect, got %r", frame)
            conn.abort()
            return False
        conn.peer = NodeId(int(frame.uid))
        conn.write(nw.encode(nw.Connack(frame.id, nw.Status.OK)))
        return True

    def _start_request(self, conn: _Conn, peer: NodeId, request: nw.Request) -> None:
        if self._request_handler is None or self._tasks is None:
            return  # unknown path: no reply (spec §9.3)
        self._spawn(self._serve_request(conn, peer, request), f"peer-request-{request.id}")

    async def _serve_request(self, conn: _Conn, peer: NodeId, request: nw.Request) -> None:
        assert self._request_handler is not None
        try:
            response = await self._request_handler(peer, request)
        except Exception as exc:  # request boundary: answer with the error, keep the link
            log.warning("request %s from %s failed", request.path, peer, exc_info=True)
            response = nw.Response(
                request.id, nw.Status.ERROR, self.clock.now_ms(), str(exc).encode()
            )
        if response is not None:
            conn.write(nw.encode(response))

    def on_conn_lost(self, conn: _Conn) -> None:
        self._inbound.discard(conn)

    # ---- liveness

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_s)
            try:
                self._tick()
            except Exception:  # task boundary: one bad tick must not stop liveness checks
                log.exception("peer links tick failed")

    def _tick(self) -> None:
        now = self.clock.monotonic_s()
        cfg = self.config
        for link in self._links.values():
            conn = link.conn
            if conn is None:
                continue
            silent_s = now - conn.last_recv_s
            if silent_s >= cfg.silence_max_s:
                log.info("node %s: link to %s silent, dropping", self.node_id, link.node_id)
                conn.abort()
            elif silent_s >= cfg.heartbeat_idle_s and now - conn.last_heartbeat_s >= cfg.tick_s:
                conn.last_heartbeat_s = now
                conn.write(nw.HEARTBEAT_BYTES)
        for conn in list(self._inbound):
            if now - conn.last_recv_s >= cfg.silence_max_s:
                conn.abort()


def _collect(frame: nw.Message | nw.BatchMessage, out: list[nw.Message]) -> None:
    if isinstance(frame, nw.Message):
        out.append(frame)
    else:
        out.extend(frame.messages)


def _fail(future: asyncio.Future[nw.Connack], reason: str) -> None:
    if not future.done():
        future.set_exception(PeerUnavailableError(reason))
