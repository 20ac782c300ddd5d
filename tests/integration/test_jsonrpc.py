"""JSON-RPC over WebSocket (wkproto §8) against a real node, next to binary clients."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.node_harness import HOST, RawConn, running_node
from tests.waiting import wait_until
from wukongim.protocol import wkproto as wk

pytestmark = pytest.mark.integration


class JsonConn:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def call(self, method: str, params: Any = None, request_id: str | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if request_id is not None:
            message["id"] = request_id
        await self.ws.send_str(json.dumps(message))

    async def next(self) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=10)
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        value: dict[str, Any] = json.loads(msg.data)
        return value


@asynccontextmanager
async def json_ws(port: int) -> AsyncIterator[JsonConn]:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"http://{HOST}:{port}/jsonrpc") as ws,
    ):
        yield JsonConn(ws)


async def test_connect_send_recv_ping(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, json_ws(node.ws_port) as conn:
        await conn.call("connect", {"uid": "json", "token": "", "deviceFlag": 1}, "c1")
        reply = await conn.next()
        assert reply["id"] == "c1"
        assert reply["result"]["reasonCode"] == 1
        assert reply["result"]["serverVersion"] == 5
        assert reply["result"]["nodeId"] == node.config.node_id
        assert "serverKey" not in reply["result"]

        peer = await RawConn.tcp(node.tcp_port)
        assert (await peer.connect("bin")).reason_code == 1

        payload = base64.b64encode(b'{"type":1,"content":"hi"}').decode()
        await conn.call(
            "send",
            {"channelId": "bin", "channelType": 1, "payload": payload, "header": {"redDot": True}},
            "s1",
        )
        sent = await conn.next()
        assert sent["id"] == "s1"
        assert sent["result"]["reasonCode"] == 1
        assert sent["result"]["messageSeq"] == 1
        assert isinstance(sent["result"]["messageId"], str)
        assert sent["result"]["header"]["redDot"] is True
        recv = await peer.expect(wk.Recv)
        assert peer.open_recv(recv) == b'{"type":1,"content":"hi"}'
        await peer.ack(recv)
        assert recv.from_uid == "json"
        assert str(recv.message_id) == sent["result"]["messageId"]

        await peer.send_text("json", 1, b"back at you", client_seq=1)
        assert (await peer.expect(wk.SendAck)).reason_code == 1
        note = await conn.next()
        assert note["method"] == "recv"
        params = note["params"]
        assert base64.b64decode(params["payload"]) == b"back at you"
        assert params["channelId"] == "bin"
        assert params["fromUid"] == "bin"
        assert params["messageSeq"] == 2
        assert params["header"] == {
            "noPersist": False,
            "redDot": True,
            "syncOnce": False,
            "dup": False,
        }
        await conn.call(
            "recvack", {"messageId": params["messageId"], "messageSeq": params["messageSeq"]}
        )
        await wait_until(lambda: not any(s.pending_recv for s in node.registry))

        await conn.call("ping", None, "p1")
        assert await conn.next() == {"jsonrpc": "2.0", "id": "p1", "result": None}
        await conn.call("subscribe", {"channelId": "x"}, "u1")
        error = await conn.next()
        assert error["id"] == "u1"
        assert "error" in error
        await conn.call("ping", {}, "p2")  # still open after an error
        assert (await conn.next())["id"] == "p2"


async def test_first_message_must_be_connect(tmp_path: Path) -> None:
    async with running_node(tmp_path) as node, json_ws(node.ws_port) as conn:
        await conn.call("ping", None, "p1")
        msg = await conn.ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_auth_failure_is_an_error_then_close(tmp_path: Path) -> None:
    async with (
        running_node(tmp_path, token_auth_on=True) as node,
        json_ws(node.ws_port) as conn,
    ):
        await conn.call("connect", {"uid": "json", "token": "nope"}, "c1")
        reply = await conn.next()
        assert reply["id"] == "c1"
        assert reply["error"]["code"] == 2
        assert reply["error"]["message"] == "ReasonAuthFail"
        msg = await conn.ws.receive(timeout=10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
