"""The PyPI JSON-RPC client `wukong-easy-sdk` (WebSocket, JSON-RPC 2.0, spec §8) chatting with a
JS SDK user (binary WKProto v2 over WebSocket) through our server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from wukong_easy_sdk import WKIM, AuthOptions, WKIMChannelType, WKIMEvent

from tests.interop.harness import ServerAddrs, sdk_users
from tests.interop.test_js_sdk import PERSON, acked, all_sent

pytestmark = pytest.mark.interop


class Inbox:
    """Collects `message` events of a WKIM client; `wait(n)` waits until n have arrived."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._changed = asyncio.Condition()

    async def on_message(self, message: dict[str, Any]) -> None:
        async with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    async def wait(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(lambda: len(self.messages) >= count)
        return self.messages


async def test_person_chat_jsonrpc_with_js_sdk(sdk_driver: Path, server: ServerAddrs) -> None:
    inbox = Inbox()
    async with (
        sdk_users(sdk_driver, ["jsr"]) as users,
        WKIM(server.ws_url, AuthOptions(uid="rpc1", token="token")) as rpc,
    ):
        js = users["jsr"]
        await js.connect(server.ws_url)
        rpc.on(WKIMEvent.MESSAGE, inbox.on_message)
        connected = await rpc.connect()
        assert connected["reasonCode"] == 1
        await rpc.ping()  # the SDK insists on `"result": null` in the pong (spec §8.3)

        rpc_texts = ["from rpc", '悟空 "quoted" \\ 👋']
        results = [
            await rpc.send("jsr", WKIMChannelType.PERSON, {"type": 1, "content": text})
            for text in rpc_texts
        ]
        assert [r["reasonCode"] for r in results] == [1, 1]

        js_texts = ["from js 1", "from js 2 ✓"]
        for text in js_texts:
            await js.send("rpc1", PERSON, text)
        await all_sent(js, len(js_texts))
        js_acks = await acked(js, len(js_texts))

        got = await js.wait_count(lambda e: e["ev"] == "recv", len(rpc_texts))
        assert [e["text"] for e in got] == rpc_texts
        assert [e["messageId"] for e in got] == [r["messageId"] for r in results]
        assert [e["messageSeq"] for e in got] == [r["messageSeq"] for r in results]
        assert {(e["fromUid"], e["channelId"]) for e in got} == {("rpc1", "rpc1")}

        messages = await inbox.wait(len(js_texts))
        assert len(messages) == len(js_texts)
        assert [m["payload"] for m in messages] == [{"content": t, "type": 1} for t in js_texts]
        for m in messages:
            ack = js_acks[m["clientMsgNo"]]
            assert m["fromUid"] == "jsr"
            assert m["channelId"] == "jsr"
            assert m["channelType"] == PERSON
            assert m["messageId"] == ack["messageId"]
            assert m["messageSeq"] == ack["messageSeq"]
        seqs = sorted([r["messageSeq"] for r in results] + [m["messageSeq"] for m in messages])
        assert seqs == [1, 2, 3, 4]
