"""The official JS SDK (npm wukongimjssdk 1.0.4, protocol v2, WebSocket) against our server.

Each user is a Node process (tests/interop/sdk_user.mjs). Every message must be acknowledged
with reason 1, delivered exactly once to every other member, in messageSeq order, intact.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.interop.harness import Event, SdkUser, ServerAddrs, sdk_users

pytestmark = pytest.mark.interop

PERSON = 1
GROUP = 2

# Text that stresses the payload path: JSON escapes, multi-byte UTF-8, a long body.
TEXTS = [
    "hello",
    "悟空 👋 héllo",
    'quote " backslash \\ newline \n tab \t',
    "x" * 2000,
]


def text_for(sender: str, n: int) -> str:
    return f"{sender}#{n}: {TEXTS[n % len(TEXTS)]}"


async def all_sent(user: SdkUser, count: int) -> None:
    """Wait until the SDK has taken `count` messages (ChatManager.send resolved)."""
    await user.wait_count(lambda e: e["ev"] == "sent", count)


async def acked(user: SdkUser, count: int) -> dict[str, Event]:
    """Wait for `count` SENDACKs; return them by the clientMsgNo of the matching send."""
    acks = await user.wait_count(lambda e: e["ev"] == "sendack", count)
    sent = {e["clientSeq"]: e["clientMsgNo"] for e in user.of_kind("sent")}
    seqs = [a["clientSeq"] for a in acks]
    assert len(seqs) == len(set(seqs)), f"{user.uid}: duplicate SENDACK: {acks}"
    assert set(seqs) == set(sent), f"{user.uid}: SENDACKs {seqs} for sends {sorted(sent)}"
    for ack in acks:
        assert ack["reasonCode"] == 1, f"{user.uid}: SENDACK not ok: {ack}"
        assert ack["messageSeq"] > 0
    return {sent[a["clientSeq"]]: a for a in acks}


def assert_received(
    recipient: SdkUser,
    expected: list[dict[str, Any]],
    all_acks: dict[str, Event],
) -> None:
    """`expected`: dicts with clientMsgNo, fromUid, channelId, channelType, text."""
    got = recipient.of_kind("recv")
    numbers = [e["clientMsgNo"] for e in got]
    assert len(numbers) == len(set(numbers)), f"{recipient.uid}: duplicate delivery: {numbers}"
    assert sorted(numbers) == sorted(m["clientMsgNo"] for m in expected)
    seqs = [e["messageSeq"] for e in got]
    assert seqs == sorted(seqs), f"{recipient.uid}: not in seq order: {seqs}"
    by_no = {m["clientMsgNo"]: m for m in expected}
    for event in got:
        want = by_no[event["clientMsgNo"]]
        ack = all_acks[event["clientMsgNo"]]
        assert event["text"] == want["text"]
        assert event["payload"] == {"type": 1, "content": want["text"]}
        assert event["contentType"] == 1
        assert event["fromUid"] == want["fromUid"]
        assert event["channelId"] == want["channelId"]
        assert event["channelType"] == want["channelType"]
        assert event["messageId"] == ack["messageId"]
        assert event["messageSeq"] == ack["messageSeq"]


def sent_messages(user: SdkUser, texts: list[str], channel_id: str, channel_type: int) -> list[Any]:
    sends = user.of_kind("sent")
    assert len(sends) == len(texts)
    return [
        {
            "clientMsgNo": s["clientMsgNo"],
            "text": text,
            "fromUid": user.uid,
            "channelId": channel_id,
            "channelType": channel_type,
        }
        for s, text in zip(sends, texts, strict=True)
    ]


async def test_person_chat_both_ways(sdk_driver: Path, server: ServerAddrs) -> None:
    async with sdk_users(sdk_driver, ["jsa", "jsb"]) as users:
        a, b = users["jsa"], users["jsb"]
        await a.connect(server.ws_url)
        await b.connect(server.ws_url)
        a_texts = [text_for("jsa", n) for n in range(6)]
        b_texts = [text_for("jsb", n) for n in range(6)]
        # Interleave the two directions; both share one person channel and its seq.
        for text_a, text_b in zip(a_texts, b_texts, strict=True):
            await a.send("jsb", PERSON, text_a)
            await b.send("jsa", PERSON, text_b)
        await all_sent(a, len(a_texts))
        await all_sent(b, len(b_texts))
        acks = await acked(a, len(a_texts)) | await acked(b, len(b_texts))
        seqs = sorted(ack["messageSeq"] for ack in acks.values())
        assert seqs == list(range(1, len(acks) + 1)), f"person channel seqs: {seqs}"

        # The recipient sees the person channel under the sender's uid (spec §7.2).
        await b.wait_count(lambda e: e["ev"] == "recv", len(a_texts))
        await a.wait_count(lambda e: e["ev"] == "recv", len(b_texts))
        assert_received(b, sent_messages(a, a_texts, "jsa", PERSON), acks)
        assert_received(a, sent_messages(b, b_texts, "jsb", PERSON), acks)


async def create_group(server: ServerAddrs, channel_id: str, members: list[str]) -> None:
    body = {"channel_id": channel_id, "channel_type": GROUP, "subscribers": members}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{server.http_url}/channel", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        assert await response.json() == {"status": 200}


async def test_group_chat(sdk_driver: Path, server: ServerAddrs) -> None:
    members = ["jsg1", "jsg2", "jsg3"]
    await create_group(server, "js-group", members)
    async with sdk_users(sdk_driver, members) as users:
        for user in users.values():
            await user.connect(server.ws_url)
        texts = {uid: [text_for(uid, n) for n in range(4)] for uid in members}
        for n in range(4):
            for uid in members:
                await users[uid].send("js-group", GROUP, texts[uid][n])
        acks: dict[str, Event] = {}
        for uid in members:
            await all_sent(users[uid], len(texts[uid]))
            acks |= await acked(users[uid], len(texts[uid]))
        seqs = sorted(ack["messageSeq"] for ack in acks.values())
        assert seqs == list(range(1, len(acks) + 1)), f"group seqs: {seqs}"

        for uid in members:
            others = [o for o in members if o != uid]
            expected = list(
                itertools.chain.from_iterable(
                    sent_messages(users[o], texts[o], "js-group", GROUP) for o in others
                )
            )
            # The sending connection itself gets no RECV of its own message (spec §3.5).
            await users[uid].wait_count(lambda e: e["ev"] == "recv", len(expected))
            assert_received(users[uid], expected, acks)


async def test_group_send_by_non_member_is_rejected(sdk_driver: Path, server: ServerAddrs) -> None:
    await create_group(server, "js-closed", ["jsm1"])
    async with sdk_users(sdk_driver, ["jsm1", "jsout"]) as users:
        member, outsider = users["jsm1"], users["jsout"]
        await member.connect(server.ws_url)
        await outsider.connect(server.ws_url)
        await outsider.send("js-closed", GROUP, "let me in")
        ack = await outsider.wait_for(lambda e: e["ev"] == "sendack")
        assert ack["reasonCode"] == 3  # SubscriberNotExist
        await member.send("js-closed", GROUP, "members only")
        member_ack = await member.wait_for(lambda e: e["ev"] == "sendack")
        assert member_ack["reasonCode"] == 1
        assert member_ack["messageSeq"] == 1  # the rejected SEND took no seq
        assert member.of_kind("recv") == []


async def test_burst_survives_legacy_sdk_reassembly(sdk_driver: Path, server: ServerAddrs) -> None:
    """SDK 1.0.4 mis-parses a WS message holding several frames (spec §1.2, §11.12), so a burst
    of SENDACKs and RECVs only arrives intact if the server writes one frame per WS message."""
    count = 150
    async with sdk_users(sdk_driver, ["jsburst1", "jsburst2"]) as users:
        a, b = users["jsburst1"], users["jsburst2"]
        await a.connect(server.ws_url)
        await b.connect(server.ws_url)
        texts = [f"burst {n}" for n in range(count)]
        for text in texts:  # no waiting between sends: the SDK writes them back to back
            await a.send("jsburst2", PERSON, text)
        await all_sent(a, count)
        acks = await acked(a, count)
        assert sorted(ack["messageSeq"] for ack in acks.values()) == list(range(1, count + 1))
        await b.wait_count(lambda e: e["ev"] == "recv", count)
        assert_received(b, sent_messages(a, texts, "jsburst1", PERSON), acks)
        assert [e["text"] for e in b.of_kind("recv")] == texts


async def test_token_update_kicks_the_legacy_sdk(sdk_driver: Path, server: ServerAddrs) -> None:
    """A master-level token update kicks the uid's WEB connections with DISCONNECT(12); the SDK
    decodes it, reports ConnectKick with reason 12 and does not reconnect (spec §1.4, §3.8)."""
    async with sdk_users(sdk_driver, ["jskick"]) as users:
        user = users["jskick"]
        await user.connect(server.ws_url)
        body = {"uid": "jskick", "token": "fresh", "device_flag": 1, "device_level": 1}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{server.http_url}/user/token", json=body) as response,
        ):
            assert response.status == 200, await response.text()
        kicked = await user.wait_for(lambda e: e["ev"] == "status" and e["name"] != "Connected")
        assert kicked["name"] == "ConnectKick"
        assert kicked["reasonCode"] == 12
