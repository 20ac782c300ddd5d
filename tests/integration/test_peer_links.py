"""Peer links over loopback: delivery, batching, reconnect, bounded queues, requests, liveness."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.waiting import wait_until
from wukongim.ids import NodeId
from wukongim.protocol import nodewire as nw
from wukongim.server.peer_links import (
    DropPolicy,
    PeerLinks,
    PeerLinksConfig,
    PeerUnavailableError,
)

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
FAST = PeerLinksConfig(reconnect_delay_min_s=0.01, reconnect_delay_max_s=0.05)


class Inbox:
    def __init__(self) -> None:
        self.calls: list[tuple[NodeId, list[nw.Message]]] = []

    def __call__(self, peer: NodeId, messages: list[nw.Message]) -> None:
        self.calls.append((peer, messages))

    @property
    def messages(self) -> list[nw.Message]:
        return [m for _, batch in self.calls for m in batch]


@asynccontextmanager
async def node(
    node_id: int,
    inbox: Inbox,
    *,
    port: int = 0,
    config: PeerLinksConfig = FAST,
    handler=None,
) -> AsyncIterator[PeerLinks]:
    links = PeerLinks(
        NodeId(node_id),
        (HOST, port),
        {},
        inbox,
        request_handler=handler,
        config=config,
        rng=random.Random(node_id),
    )
    async with links:
        yield links


def msg(i: int, size: int = 10) -> nw.Message:
    return nw.Message(i, 1, 0, bytes([i % 256]) * size)


async def test_messages_are_delivered_both_ways_with_the_sender_id() -> None:
    inbox_a, inbox_b = Inbox(), Inbox()
    async with node(1, inbox_a) as a, node(2, inbox_b) as b:
        a.add_peer(NodeId(2), (HOST, b.listen_port))
        b.add_peer(NodeId(1), (HOST, a.listen_port))
        a.send(NodeId(2), msg(1))
        b.send(NodeId(1), msg(2))
        await wait_until(lambda: bool(inbox_a.messages and inbox_b.messages))
        assert inbox_b.calls == [(NodeId(1), [msg(1)])]
        assert inbox_a.calls == [(NodeId(2), [msg(2)])]


async def test_everything_queued_in_one_turn_leaves_as_one_batch() -> None:
    inbox = Inbox()
    async with node(1, Inbox()) as a, node(2, inbox) as b:
        a.add_peer(NodeId(2), (HOST, b.listen_port))
        await wait_until(lambda: a.is_connected(NodeId(2)))
        for i in range(100):
            a.send(NodeId(2), msg(i))
        a.send_many(NodeId(2), [msg(i) for i in range(100, 200)])
        await wait_until(lambda: len(inbox.messages) == 200)
        assert len(inbox.calls) == 1
        assert inbox.messages == [msg(i) for i in range(200)]
        assert a.stats(NodeId(2)).sent_batches == 1
        assert a.stats(NodeId(2)).sent_messages == 200


async def test_large_queues_are_split_under_the_batch_byte_limit() -> None:
    inbox = Inbox()
    config = PeerLinksConfig(batch_bytes_max=10_000)
    async with node(1, Inbox(), config=config) as a, node(2, inbox) as b:
        a.add_peer(NodeId(2), (HOST, b.listen_port))
        await wait_until(lambda: a.is_connected(NodeId(2)))
        a.send_many(NodeId(2), [msg(i, 1000) for i in range(50)])
        await wait_until(lambda: len(inbox.messages) == 50)
        assert inbox.messages == [msg(i, 1000) for i in range(50)]
        assert a.stats(NodeId(2)).sent_batches > 1


async def test_link_reconnects_after_the_peer_restarts() -> None:
    inbox1, inbox2 = Inbox(), Inbox()
    async with node(1, Inbox()) as a:
        async with node(2, inbox1) as b:
            port = b.listen_port
            a.add_peer(NodeId(2), (HOST, port))
            a.send(NodeId(2), msg(1))
            await wait_until(lambda: bool(inbox1.messages))
        await wait_until(lambda: not a.is_connected(NodeId(2)))
        a.send(NodeId(2), msg(2))  # queued while the peer is down
        async with node(2, inbox2, port=port):
            await wait_until(lambda: bool(inbox2.messages))
            assert inbox2.messages == [msg(2)]
            assert a.stats(NodeId(2)).connects == 2


@pytest.mark.parametrize(
    ("policy", "kept"),
    [(DropPolicy.DROP_OLDEST, range(15, 25)), (DropPolicy.DROP_NEW, range(10))],
)
async def test_queue_is_bounded_while_the_peer_is_down(policy: DropPolicy, kept: range) -> None:
    inbox = Inbox()
    async with node(2, Inbox()) as probe:
        port = probe.listen_port  # a port that was just free; nobody listens after this block
    config = PeerLinksConfig(
        queue_messages_max=10,
        drop_policy=policy,
        reconnect_delay_min_s=0.01,
        reconnect_delay_max_s=0.05,
    )
    async with node(1, Inbox(), config=config) as a:
        a.add_peer(NodeId(2), (HOST, port))
        results = [a.send(NodeId(2), msg(i)) for i in range(25)]
        assert results.count(False) == 15
        assert a.stats(NodeId(2)).dropped_messages == 15
        async with node(2, inbox, port=port):
            await wait_until(lambda: len(inbox.messages) == 10)
            assert inbox.messages == [msg(i) for i in kept]


@pytest.mark.parametrize(
    ("policy", "kept"),
    [(DropPolicy.DROP_OLDEST, [2, 3, 4]), (DropPolicy.DROP_NEW, [0, 1, 2])],
)
async def test_queue_is_bounded_in_bytes_too(policy: DropPolicy, kept: list[int]) -> None:
    inbox = Inbox()
    async with node(2, Inbox()) as probe:
        port = probe.listen_port
    config = PeerLinksConfig(
        queue_bytes_max=1000,
        drop_policy=policy,
        reconnect_delay_min_s=0.01,
        reconnect_delay_max_s=0.05,
    )
    async with node(1, Inbox(), config=config) as a:
        a.add_peer(NodeId(2), (HOST, port))
        assert [a.send(NodeId(2), msg(i, 300)) for i in range(5)] == [True] * 3 + [False] * 2
        assert a.send(NodeId(2), msg(9, 2000)) is False  # larger than the bound on its own
        assert a.stats(NodeId(2)).dropped_messages == 3
        async with node(2, inbox, port=port):
            await wait_until(lambda: len(inbox.messages) == 3)
            assert inbox.messages == [msg(i, 300) for i in kept]


async def test_request_gets_its_response_and_unknown_paths_time_out() -> None:
    async def handler(peer: NodeId, request: nw.Request) -> nw.Response | None:
        if request.path == "/echo":
            return nw.Response(request.id, nw.Status.OK, 0, request.body + str(peer).encode())
        if request.path == "/boom":
            raise ValueError("boom")
        return None

    async with node(1, Inbox()) as a, node(2, Inbox(), handler=handler) as b:
        a.add_peer(NodeId(2), (HOST, b.listen_port))
        replies = await asyncio.gather(
            *(a.request(NodeId(2), "/echo", f"hi{i}-".encode()) for i in range(5))
        )
        assert [r.body for r in replies] == [f"hi{i}-1".encode() for i in range(5)]
        failed = await a.request(NodeId(2), "/boom")
        assert (failed.status, failed.body) == (nw.Status.ERROR, b"boom")
        with pytest.raises(TimeoutError):
            await a.request(NodeId(2), "/nowhere", timeout_s=0.2)
        with pytest.raises(PeerUnavailableError):
            await a.request(NodeId(9), "/echo")


async def test_silent_peer_gets_heartbeats_then_the_link_is_dropped() -> None:
    received: list[nw.Frame] = []

    async def mute_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = nw.NodeWireDecoder()
        while data := await reader.read(4096):
            for frame in decoder.receive_data(data):
                received.append(frame)
                if isinstance(frame, nw.Connect):  # accept, then never say anything again
                    writer.write(nw.encode(nw.Connack(frame.id)))
        writer.close()

    server = await asyncio.start_server(mute_peer, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    config = PeerLinksConfig(
        tick_s=0.02,
        heartbeat_idle_s=0.1,
        silence_max_s=0.3,
        reconnect_delay_min_s=0.01,
        reconnect_delay_max_s=0.05,
    )
    async with server, node(1, Inbox(), config=config) as a:
        a.add_peer(NodeId(2), (HOST, port))
        await wait_until(lambda: a.stats(NodeId(2)).disconnects >= 1)
        assert isinstance(received[0], nw.Connect)
        assert received[0].uid == "1"
        assert any(isinstance(f, nw.Heartbeat) for f in received)


async def test_listener_answers_heartbeats_and_closes_on_garbage() -> None:
    async with node(2, Inbox()) as b:
        reader, writer = await asyncio.open_connection(HOST, b.listen_port)
        writer.write(nw.encode(nw.Connect(5, "7")) + nw.HEARTBEAT_BYTES)
        decoder = nw.NodeWireDecoder()
        frames: list[nw.Frame] = []
        async with asyncio.timeout(10):
            while len(frames) < 2:
                frames += decoder.receive_data(await reader.read(4096))
        assert frames == [nw.Connack(5, nw.Status.OK), nw.Heartbeat()]
        writer.write(b"NOT A WUKONG FRAME")
        async with asyncio.timeout(10):
            assert await reader.read(4096) == b""
        writer.close()


async def test_inbound_link_must_open_with_connect() -> None:
    async with node(2, Inbox()) as b:
        reader, writer = await asyncio.open_connection(HOST, b.listen_port)
        writer.write(nw.encode(nw.Message(1, 1)))
        async with asyncio.timeout(10):
            assert await reader.read(4096) == b""
        writer.close()


async def test_pending_requests_fail_when_the_link_breaks() -> None:
    started = asyncio.Event()

    async def hang(peer: NodeId, request: nw.Request) -> nw.Response | None:
        started.set()
        await asyncio.Event().wait()  # never answers
        return None

    async with node(1, Inbox()) as a:
        async with node(2, Inbox(), handler=hang) as b:
            a.add_peer(NodeId(2), (HOST, b.listen_port))
            pending = asyncio.ensure_future(a.request(NodeId(2), "/hang"))
            await started.wait()
        with pytest.raises(PeerUnavailableError):
            await pending


async def test_removed_peer_gets_nothing() -> None:
    inbox = Inbox()
    async with node(1, Inbox()) as a, node(2, inbox) as b:
        a.add_peer(NodeId(2), (HOST, b.listen_port))
        await wait_until(lambda: a.is_connected(NodeId(2)))
        a.remove_peer(NodeId(2))
        assert a.peers() == []
        assert a.send(NodeId(2), msg(1)) is False
        assert a.send_many(NodeId(2), [msg(2), msg(3)]) == 2
        with pytest.raises(PeerUnavailableError):
            await a.request(NodeId(2), "/x")
        assert inbox.messages == []
