"""Our Python WKClient over TCP (protocol v2 and v5) chatting with a JS SDK user over WebSocket.

The two clients disagree on everything the server must bridge: transport (TCP vs WS), protocol
version (the SEND/RECV layouts differ, spec §2.5), and each connection has its own keys.
"""

from __future__ import annotations

import json
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.interop.harness import SdkUser, ServerAddrs, sdk_users
from tests.interop.test_js_sdk import GROUP, PERSON, TEXTS, acked, all_sent, create_group
from wukongim.client.wkclient import Received, WKClient

pytestmark = pytest.mark.interop

# v2 and v5 are the two SDK generations; v3 (adds expire) and v4 (CONNACK serverVersion, nodeId)
# are the steps between them (spec §2.5).
VERSIONS = [pytest.param(v, id=f"v{v}") for v in (2, 3, 4, 5)]


def text_payload(text: str) -> bytes:
    return json.dumps({"type": 1, "content": text}, ensure_ascii=False).encode()


async def receive(client: WKClient, count: int) -> list[Received]:
    return [await client.recv(timeout_s=15) for _ in range(count)]


async def assert_no_more(client: WKClient) -> None:
    """A PING round trip orders after any RECV already written: nothing else may have come."""
    await client.ping()
    with pytest.raises(TimeoutError):  # timeout 0: returns a queued RECV, else times out at once
        await client.recv(timeout_s=0)


@pytest.mark.parametrize("version", VERSIONS)
async def test_person_chat_python_tcp_with_js_ws(
    sdk_driver: Path, server: ServerAddrs, version: int
) -> None:
    py_uid, js_uid = f"py{version}", f"jsp{version}"
    async with sdk_users(sdk_driver, [js_uid]) as users:
        js: SdkUser = users[js_uid]
        await js.connect(server.ws_url)
        client = await WKClient.connect_tcp(
            server.host, server.tcp_port, py_uid, "token", version=version
        )
        async with client:
            assert client.connack is not None
            assert client.connack.reason_code == 1
            assert client.connack.server_version == (version if version > 3 else 0)
            py_texts = [f"py#{n}: {TEXTS[n % len(TEXTS)]}" for n in range(4)]
            py_acks = [await client.send(js_uid, PERSON, text_payload(t)) for t in py_texts]
            assert [a.reason_code for a in py_acks] == [1] * len(py_texts)

            js_texts = [f"js#{n}: {TEXTS[n % len(TEXTS)]}" for n in range(4)]
            for text in js_texts:
                await js.send(py_uid, PERSON, text)
            await all_sent(js, len(js_texts))
            js_acks = await acked(js, len(js_texts))

            # Python -> JS
            got = await js.wait_count(lambda e: e["ev"] == "recv", len(py_texts))
            assert [e["text"] for e in got] == py_texts
            assert [e["messageSeq"] for e in got] == [a.message_seq for a in py_acks]
            assert [e["messageId"] for e in got] == [str(a.message_id) for a in py_acks]
            assert {(e["fromUid"], e["channelId"], e["channelType"]) for e in got} == {
                (py_uid, py_uid, PERSON)
            }

            # JS -> Python
            received = await receive(client, len(js_texts))
            sent_nos = [e["clientMsgNo"] for e in js.of_kind("sent")]
            assert [r.frame.client_msg_no for r in received] == sent_nos
            assert [json.loads(r.payload) for r in received] == [
                {"content": t, "type": 1} for t in js_texts
            ]
            for r in received:
                ack = js_acks[r.frame.client_msg_no]
                assert r.frame.from_uid == js_uid
                assert r.frame.channel_id == js_uid  # rewritten to the peer (spec §7.2)
                assert r.frame.channel_type == PERSON
                assert r.frame.message_seq == ack["messageSeq"]
                assert str(r.frame.message_id) == ack["messageId"]
            assert client.bad_msg_keys == 0
            await assert_no_more(client)

            seqs = sorted(
                [a.message_seq for a in py_acks] + [r.frame.message_seq for r in received]
            )
            assert seqs == list(range(1, len(seqs) + 1))
            assert len(js.of_kind("recv")) == len(py_texts)


async def test_group_chat_mixed_clients(sdk_driver: Path, server: ServerAddrs) -> None:
    """A JS SDK user (v2 over WS) and Python users at v2 and v5 (TCP) and v5 (WS) in one group."""
    members = ["mjs", "mpy2", "mpy5", "mws5"]
    await create_group(server, "mixed", members)
    async with sdk_users(sdk_driver, ["mjs"]) as users, AsyncExitStack() as stack:
        js = users["mjs"]
        await js.connect(server.ws_url)
        clients = {
            "mpy2": await WKClient.connect_tcp(
                server.host, server.tcp_port, "mpy2", "token", version=2
            ),
            "mpy5": await WKClient.connect_tcp(
                server.host, server.tcp_port, "mpy5", "token", version=5
            ),
            "mws5": await WKClient.connect_ws(server.ws_url, "mws5", "token", version=5),
        }
        for client in clients.values():
            await stack.enter_async_context(client)

        sent: dict[str, tuple[str, str]] = {}  # clientMsgNo -> (sender, text)
        for n in range(3):
            for uid, client in clients.items():
                text = f"{uid}#{n}"
                no = f"{uid}-{n}"
                ack = await client.send("mixed", GROUP, text_payload(text), client_msg_no=no)
                assert ack.reason_code == 1
                sent[no] = (uid, text)
            await js.send("mixed", GROUP, f"mjs#{n}")
        await all_sent(js, 3)
        js_acks = await acked(js, 3)
        for e in js.of_kind("sent"):
            sent[e["clientMsgNo"]] = ("mjs", "")

        for uid, client in clients.items():
            expected = {no for no, (sender, _) in sent.items() if sender != uid}
            received = await receive(client, len(expected))
            assert {r.frame.client_msg_no for r in received} == expected
            seqs = [r.frame.message_seq for r in received]
            assert seqs == sorted(seqs)
            for r in received:
                sender, text = sent[r.frame.client_msg_no]
                assert r.frame.from_uid == sender
                assert r.frame.channel_id == "mixed"
                body = json.loads(r.payload)
                if sender == "mjs":
                    assert body["content"].startswith("mjs#")
                    assert r.frame.message_seq == js_acks[r.frame.client_msg_no]["messageSeq"]
                else:
                    assert body == {"type": 1, "content": text}
            assert client.bad_msg_keys == 0
            await assert_no_more(client)

        got = await js.wait_count(lambda e: e["ev"] == "recv", 9)
        assert len(got) == 9
        assert {e["clientMsgNo"] for e in got} == {no for no, (s, _) in sent.items() if s != "mjs"}
        assert [e["messageSeq"] for e in got] == sorted(e["messageSeq"] for e in got)
        for e in got:
            assert e["text"] == sent[e["clientMsgNo"]][1]
