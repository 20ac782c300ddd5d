"""The project's own WKClient against a real node (TCP and WS, protocol 2 and 5)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.integration.node_harness import HOST, Http, running_node
from wukongim.client.wkclient import ConnectRejectedError, WKClient

pytestmark = pytest.mark.integration

N_MESSAGES = 50


async def _client(node: object, transport: str, uid: str, version: int, **kw: object) -> WKClient:
    if transport == "tcp":
        return await WKClient.connect_tcp(HOST, node.tcp_port, uid, "", version=version, **kw)  # type: ignore[attr-defined,arg-type]
    url = f"ws://{HOST}:{node.ws_port}/"  # type: ignore[attr-defined]
    return await WKClient.connect_ws(url, uid, "", version=version, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("transport", "version"), [("tcp", 5), ("ws", 5), ("tcp", 2), ("ws", 2)])
async def test_pipelined_one_to_one_exactly_once_in_order(
    tmp_path: Path, transport: str, version: int
) -> None:
    async with running_node(tmp_path) as node:
        a = await _client(node, transport, "a", version)
        b = await _client(node, "tcp" if transport == "ws" else "ws", "b", 5)
        try:
            futures = [a.send_nowait("b", 1, f"m{i}".encode()) for i in range(N_MESSAGES)]
            await a.drain()
            acks = await asyncio.gather(*futures)
            assert [ack.reason_code for ack in acks] == [1] * N_MESSAGES
            assert [ack.message_seq for ack in acks] == list(range(1, N_MESSAGES + 1))
            got = [await b.recv() for _ in range(N_MESSAGES)]
            assert [m.payload for m in got] == [f"m{i}".encode() for i in range(N_MESSAGES)]
            assert [m.frame.message_seq for m in got] == list(range(1, N_MESSAGES + 1))
            assert b.bad_msg_keys == 0
            reply = await b.send("a", 1, b"pong")
            assert reply.message_seq == N_MESSAGES + 1
            back = await a.recv()
            assert back.payload == b"pong"
            assert back.frame.channel_id == "b"
            await a.ping()
            await node_quiet(node)
        finally:
            await a.close()
            await b.close()


async def node_quiet(node: object) -> None:
    """Every RECV was acknowledged by the auto-acking clients."""
    from tests.waiting import wait_until  # noqa: PLC0415

    await wait_until(lambda: not any(s.pending_recv for s in node.registry))  # type: ignore[attr-defined]


async def test_group_with_wkclient(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node:
        http = Http(node.http_port)
        members = ["g1", "g2", "g3"]
        clients = []
        try:
            await http.post(
                "/channel", {"channel_id": "team", "channel_type": 2, "subscribers": members}
            )
            clients = [await _client(node, "tcp", uid, 5) for uid in members]
            futures = [
                c.send_nowait("team", 2, f"from {uid}".encode())
                for c, uid in zip(clients, members, strict=True)
            ]
            acks = await asyncio.gather(*futures)
            assert sorted(ack.message_seq for ack in acks) == [1, 2, 3]
            for client, uid in zip(clients, members, strict=True):
                got = [await client.recv() for _ in range(2)]
                assert sorted(m.payload for m in got) == sorted(
                    f"from {other}".encode() for other in members if other != uid
                )
        finally:
            for client in clients:
                await client.close()
            await http.close()


async def test_wkclient_sees_auth_failure(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_auth_on=True) as node:
        with pytest.raises(ConnectRejectedError) as refused:
            await WKClient.connect_tcp(HOST, node.tcp_port, "nobody", "bad")
        assert refused.value.reason_code == 2
