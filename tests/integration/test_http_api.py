"""The HTTP API against a real node: shapes, envelopes and 400s (http-api §0.3, §1)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.node_harness import Http, RawConn, running_node
from wukongim import app
from wukongim.protocol import wkproto as wk

pytestmark = pytest.mark.integration

OK = {"status": 200}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[app.RunningApp]:
    async with running_node(tmp_path) as running:
        yield running


@pytest.fixture
async def http(node: app.RunningApp) -> AsyncIterator[Http]:
    client = Http(node.http_port)
    try:
        yield client
    finally:
        await client.close()


def assert_err(result: tuple[int, Any]) -> None:
    status, body = result
    assert status == 400, body
    assert body["status"] == 400
    assert isinstance(body["msg"], str)
    assert body["msg"]


async def test_health_route_and_404(node: app.RunningApp, http: Http) -> None:
    assert await http.get("/health") == (200, {"status": "ok"})
    status, route = await http.get("/route?uid=x")
    assert status == 200
    assert route["tcp_addr"] == f"127.0.0.1:{node.tcp_port}"
    assert route["ws_addr"] == f"ws://127.0.0.1:{node.ws_port}"
    assert await http.get("/route?uid=x&intranet=1") == (
        200,
        {"tcp_addr": f"127.0.0.1:{node.tcp_port}", "ws_addr": "", "wss_addr": ""},
    )
    assert await http.get("/no/such/path") == (404, "404 page not found")
    assert await http.get("/user/token") == (404, "404 page not found")


async def test_user_token_validation(http: Http) -> None:
    assert await http.post("/user/token", {"uid": "u", "token": "t"}) == (200, OK)
    assert_err(await http.post("/user/token", {"token": "t"}))
    assert_err(await http.post("/user/token", {"uid": "u"}))
    assert_err(await http.post("/user/token", {"uid": "a@b", "token": "t"}))
    assert_err(await http.post("/user/token", {"uid": "____system", "token": "t"}))
    assert_err(await http.post("/user/token", {"uid": "u", "token": "t", "device_flag": "1"}))
    assert_err(await http.post("/user/token", {"uid": "u", "token": 5}))
    assert_err(await http.post("/user/token", raw=b"{not json"))
    assert_err(await http.post("/user/token", raw=b"[1,2]"))
    await http.post("/channel/info", {"channel_id": "banned", "channel_type": 1, "ban": 1})
    assert await http.post("/user/token", {"uid": "banned", "token": "t"}) == (200, {"status": 19})


async def test_channel_endpoints(node: app.RunningApp, http: Http) -> None:
    assert_err(await http.post("/channel", {"channel_id": "", "channel_type": 2}))
    assert_err(await http.post("/channel", {"channel_id": "g", "channel_type": 0}))
    assert_err(await http.post("/channel", {"channel_id": "g#1", "channel_type": 2}))
    assert_err(
        await http.post("/channel", {"channel_id": "p", "channel_type": 1, "subscribers": ["a"]})
    )
    assert_err(await http.post("/channel", {"channel_id": "g", "channel_type": "2"}))
    assert_err(await http.post("/channel", {"channel_id": "g", "channel_type": 300}))
    body = {"channel_id": "g", "channel_type": 2, "subscribers": ["a", "b"]}
    assert await http.post("/channel", body) == (200, OK)
    assert node.machine.subscribers("g", 2) == ["a", "b"]
    add = {"channel_id": "g", "channel_type": 2, "subscribers": ["c"]}
    assert await http.post("/channel/subscriber_add", add) == (200, OK)
    assert node.machine.subscribers("g", 2) == ["a", "b", "c"]
    remove = {"channel_id": "g", "channel_type": 2, "subscribers": ["a"]}
    assert await http.post("/channel/subscriber_remove", remove) == (200, OK)
    assert node.machine.subscribers("g", 2) == ["b", "c"]
    # type 0 defaults to group for subscriber_add
    assert await http.post(
        "/channel/subscriber_add", {"channel_id": "g2", "subscribers": ["x"]}
    ) == (200, OK)
    assert node.machine.subscribers("g2", 2) == ["x"]
    assert_err(await http.post("/channel/subscriber_add", {"channel_id": "g", "subscribers": []}))
    assert_err(
        await http.post("/channel/subscriber_add", {"channel_id": "g", "subscribers": [" "]})
    )
    assert_err(
        await http.post(
            "/channel/subscriber_add", {"channel_id": "u", "channel_type": 1, "subscribers": ["x"]}
        )
    )
    assert_err(
        await http.post(
            "/channel/subscriber_add",
            {"channel_id": "g", "channel_type": 2, "subscribers": ["x"], "temp_subscriber": 1},
        )
    )
    assert_err(await http.post("/channel/delete", {"channel_id": "u", "channel_type": 1}))
    assert await http.post("/channel/delete", {"channel_id": "g", "channel_type": 2}) == (200, OK)
    info = node.machine.channel_info("g", 2)
    assert info is not None
    assert info.disband
    # a disbanded group rejects sends with 24 (TCP) but the API still answers 200
    member = await RawConn.tcp(node.tcp_port)
    assert (await member.connect("b")).reason_code == 1
    await member.send_text("g", 2, b"anyone?", client_seq=1)
    ack = await member.expect(wk.SendAck)
    assert (ack.reason_code, ack.message_seq) == (24, 0)
    status, sent = await http.post(
        "/message/send", {"channel_id": "g", "channel_type": 2, "payload": b64(b"x")}
    )
    assert status == 200
    assert sent["status"] == 200
    assert sent["data"]["message_seq"] == 0
    assert await http.post("/channel/info", {"channel_id": "g", "channel_type": 2, "ban": 0}) == (
        200,
        OK,
    )
    info = node.machine.channel_info("g", 2)
    assert info is not None
    assert not info.disband


async def test_message_send_and_sync(node: app.RunningApp, http: Http) -> None:
    bob = await RawConn.tcp(node.tcp_port)
    assert (await bob.connect("bob", version=4)).reason_code == 1
    results = []
    for i in range(1, 4):
        status, body = await http.post(
            "/message/send",
            {
                "header": {"red_dot": 1},
                "from_uid": "alice",
                "channel_id": "bob",
                "channel_type": 1,
                "client_msg_no": f"api-{i}" if i != 2 else "",
                "payload": b64(f"hi {i}".encode()),
            },
        )
        assert status == 200, body
        results.append(body["data"])
    assert [r["message_seq"] for r in results] == [1, 2, 3]
    assert results[0]["client_msg_no"] == "api-1"
    assert len(results[1]["client_msg_no"]) == 33
    for i, result in enumerate(results, 1):
        recv = await bob.expect(wk.Recv)
        assert bob.open_recv(recv) == f"hi {i}".encode()
        assert (recv.message_id, recv.message_seq) == (result["message_id"], i)
        assert recv.channel_id == "alice"
        assert recv.from_uid == "alice"
        assert recv.red_dot
    status, sync = await http.post(
        "/channel/messagesync",
        {"login_uid": "bob", "channel_id": "alice", "channel_type": 1, "limit": 2},
    )
    assert status == 200
    assert (sync["start_message_seq"], sync["end_message_seq"], sync["more"]) == (0, 0, 1)
    first, second = sync["messages"]
    assert (first["message_seq"], second["message_seq"]) == (2, 3)
    assert second["message_id"] == results[2]["message_id"]
    assert second["message_idstr"] == str(results[2]["message_id"])
    assert second["from_uid"] == "alice"
    assert second["channel_id"] == "bob"
    assert second["header"] == {"no_persist": 0, "red_dot": 1, "sync_once": 0}
    assert base64.b64decode(second["payload"]) == b"hi 3"
    status, up = await http.post(
        "/channel/messagesync",
        {
            "login_uid": "alice",
            "channel_id": "bob",
            "channel_type": 1,
            "start_message_seq": 2,
            "pull_mode": 1,
            "limit": 10,
        },
    )
    assert [m["message_seq"] for m in up["messages"]] == [2, 3]
    assert up["more"] == 0
    # a system message: blank from_uid, masked in the answer
    status, body = await http.post(
        "/message/send", {"channel_id": "g9", "channel_type": 2, "payload": b64(b"sys")}
    )
    assert status == 200
    _, sync = await http.post(
        "/channel/messagesync",
        {"login_uid": "x", "channel_id": "g9", "channel_type": 2, "limit": 5},
    )
    assert [m["from_uid"] for m in sync["messages"]] == [""]
    assert await http.post(
        "/channel/messagesync",
        {"login_uid": "x", "channel_id": "nobody", "channel_type": 2, "limit": 5},
    ) == (200, {"start_message_seq": 0, "end_message_seq": 0, "more": 0, "messages": []})


async def test_message_send_validation(http: Http) -> None:
    base = {"from_uid": "a", "channel_id": "b", "channel_type": 1, "payload": b64(b"x")}
    assert (await http.post("/message/send", base))[0] == 200
    assert_err(await http.post("/message/send", {**base, "payload": ""}))
    assert_err(await http.post("/message/send", {**base, "payload": "%%%not base64"}))
    assert_err(await http.post("/message/send", {**base, "channel_id": ""}))
    assert_err(await http.post("/message/send", {**base, "channel_id": "a@b"}))
    assert_err(await http.post("/message/send", {**base, "channel_type": "1"}))
    assert_err(await http.post("/message/send", {**base, "subscribers": ["x"]}))
    assert_err(await http.post("/message/send", {**base, "header": {"no_persist": "1"}}))
    cmd = {**base, "channel_id": "", "subscribers": ["x"], "header": {"sync_once": 1}}
    assert await http.post("/message/send", cmd) == (200, OK)
    assert_err(await http.post("/channel/messagesync", {"channel_id": "b", "limit": 1}))
    assert_err(await http.post("/channel/messagesync", {"login_uid": "a", "limit": 1}))
    assert_err(
        await http.post("/channel/messagesync", {"login_uid": "a", "channel_id": "b", "limit": "1"})
    )


async def test_online_status(node: app.RunningApp, http: Http) -> None:
    assert await http.post("/user/onlinestatus", []) == (200, OK)
    assert_err(await http.post("/user/onlinestatus", {"uids": ["a"]}))
    one = await RawConn.tcp(node.tcp_port)
    assert (await one.connect("on", device_flag=0)).reason_code == 1
    two = await RawConn.ws(node.ws_port)
    assert (await two.connect("on", device_flag=1)).reason_code == 1
    status, body = await http.post("/user/onlinestatus", ["off", "on"])
    assert status == 200
    assert sorted(body, key=lambda e: e["device_flag"]) == [
        {"uid": "on", "device_flag": 0, "online": 1},
        {"uid": "on", "device_flag": 1, "online": 1},
    ]


async def test_cors_and_preflight(http: Http) -> None:
    async with http.session.options(http.base + "/message/send") as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    async with http.session.get(http.base + "/health") as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_manager_token_guards_every_path(tmp_path: Path) -> None:
    async with running_node(tmp_path, manager_token="secret") as running:
        client = Http(running.http_port)
        try:
            async with client.session.get(client.base + "/health") as resp:
                assert resp.status == 401
                assert await resp.read() == b""
            headers = {"token": "secret"}
            async with client.session.get(client.base + "/health", headers=headers) as resp:
                assert resp.status == 200
            async with client.session.get(client.base + "/nope", headers={"token": "x"}) as resp:
                assert resp.status == 401
        finally:
            await client.close()


async def test_device_quit_blanks_the_token_and_kicks(tmp_path: Path) -> None:
    async with running_node(tmp_path, token_auth_on=True, kick_close_delay_s=0.05) as running:
        client = Http(running.http_port)
        try:
            body = {"uid": "q", "token": "t", "device_flag": 1}
            assert await client.post("/user/token", body) == (200, OK)
            conn = await RawConn.tcp(running.tcp_port)
            assert (await conn.connect("q", token="t")).reason_code == 1
            assert await client.post("/user/device_quit", {"uid": "q", "device_flag": 1}) == (
                200,
                OK,
            )
            frames = await conn.wait_closed()
            assert frames == [wk.Disconnect(12, "")]
            again = await RawConn.tcp(running.tcp_port)
            assert (await again.connect("q", token="t")).reason_code == 2
            # no device record for that flag: still OK, nothing happens
            assert await client.post("/user/device_quit", {"uid": "q", "device_flag": 0}) == (
                200,
                OK,
            )
        finally:
            await client.close()


async def test_deny_and_allow_lists(node: app.RunningApp, http: Http) -> None:
    members = {"channel_id": "club", "channel_type": 2, "subscribers": ["in", "out", "vip"]}
    assert await http.post("/channel", members) == (200, OK)
    conns = {}
    for uid in ("in", "out", "vip"):
        conns[uid] = await RawConn.tcp(node.tcp_port)
        assert (await conns[uid].connect(uid)).reason_code == 1
    ref = {"channel_id": "club", "channel_type": 2}
    assert await http.post("/channel/blacklist_add", {**ref, "uids": ["out"]}) == (200, OK)
    await conns["out"].send_text("club", 2, b"hi", client_seq=1)
    assert (await conns["out"].expect(wk.SendAck)).reason_code == 4
    assert await http.post("/channel/blacklist_remove", {**ref, "uids": ["out"]}) == (200, OK)
    assert await http.post("/channel/whitelist_add", {**ref, "uids": ["vip"]}) == (200, OK)
    await conns["in"].send_text("club", 2, b"hi", client_seq=1)
    assert (await conns["in"].expect(wk.SendAck)).reason_code == 13
    await conns["vip"].send_text("club", 2, b"hi", client_seq=1)
    assert (await conns["vip"].expect(wk.SendAck)).reason_code == 1
    assert await http.post("/channel/whitelist_remove_all", ref) == (200, OK)
    await conns["in"].send_text("club", 2, b"hi", client_seq=2)
    while isinstance(frame := await conns["in"].next_frame(), wk.Recv):
        await conns["in"].ack(frame)
    assert isinstance(frame, wk.SendAck)
    assert frame.reason_code == 1
    assert_err(await http.post("/channel/blacklist_add", {**ref, "uids": []}))
    assert_err(await http.post("/channel/whitelist_add", {"channel_id": "club", "uids": ["x"]}))
    assert await http.post("/channel/subscriber_remove_all", ref) == (200, OK)
    assert node.machine.subscribers("club", 2) == []


async def test_system_uids_and_sendbatch(node: app.RunningApp, http: Http) -> None:
    assert await http.post("/user/systemuids_add", {"uids": ["bot", " "]}) == (200, OK)
    assert await http.get("/user/systemuids") == (200, ["bot"])
    assert await http.post("/user/systemuids_add_to_cache", {"uids": ["x"]}) == (200, OK)
    assert await http.post("/user/systemuids_remove", {"uids": ["bot"]}) == (200, OK)
    assert await http.get("/user/systemuids") == (200, [])
    base = {"from_uid": "srv", "subscribers": ["r1", "a#b"], "payload": b64(b"hi")}
    status, reply = await http.post("/message/sendbatch", base)
    assert status == 200
    assert reply["fail_uids"] == ["a#b"]
    assert len(reply["reason"]) == 1
    assert_err(await http.post("/message/sendbatch", {**base, "from_uid": ""}))
    assert_err(await http.post("/message/sendbatch", {**base, "subscribers": []}))
    assert_err(await http.post("/message/sendbatch", {**base, "payload": ""}))
    _, sync = await http.post(
        "/channel/messagesync",
        {"login_uid": "r1", "channel_id": "srv", "channel_type": 1, "limit": 5},
    )
    assert [base64.b64decode(m["payload"]) for m in sync["messages"]] == [b"hi"]
