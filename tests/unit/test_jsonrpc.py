"""JSON-RPC (§8): parsing client messages into frames, rendering server frames, splitting."""

from __future__ import annotations

import base64
import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wukongim.protocol.errors import RemoteProtocolError
from wukongim.protocol.jsonrpc import (
    BadRequest,
    JsonRpcDecoder,
    Request,
    looks_like_json,
    parse_message,
    render_connack,
    render_disconnect,
    render_error,
    render_event,
    render_pong,
    render_recv,
    render_sendack,
)
from wukongim.protocol.wkproto import (
    PING,
    SETTING_RECEIPT,
    SETTING_TOPIC,
    Connack,
    Connect,
    Disconnect,
    Event,
    Recv,
    RecvAck,
    Send,
    SendAck,
)

PLAIN = b'{"content":"hello","type":1}'

# ---------------------------------------------------------------------------------------------
# §8.2 outputs


def test_render_connect_result() -> None:
    text = render_connack("req-conn-1", Connack(-12, 1, server_version=5, node_id=1))
    assert text == (
        '{"jsonrpc":"2.0","id":"req-conn-1","result":'
        '{"serverVersion":5,"timeDiff":-12,"reasonCode":1,"nodeId":1}}'
    )


def test_render_connect_failure_is_an_error_object() -> None:
    assert render_connack("c", Connack(0, 2)) == (
        '{"jsonrpc":"2.0","id":"c","error":{"code":2,"message":"ReasonAuthFail"}}'
    )
    assert '"message":"ReasonBan"' in render_connack("c", Connack(0, 19))


def test_render_send_result() -> None:
    text = render_sendack("req-send-1", SendAck(1234567890123456789, 0, 1, 1))
    assert text == (
        '{"jsonrpc":"2.0","id":"req-send-1","result":'
        '{"messageId":"1234567890123456789","messageSeq":1,"reasonCode":1}}'
    )


def test_render_send_result_with_flags_has_header_first() -> None:
    text = render_sendack("s", SendAck(5, 0, 2, 1, red_dot=True, no_persist=True))
    assert text == (
        '{"jsonrpc":"2.0","id":"s","result":{"header":{"noPersist":true,"redDot":true},'
        '"messageId":"5","messageSeq":2,"reasonCode":1}}'
    )


def test_render_pong_has_null_result() -> None:
    assert render_pong("req-ping-1") == '{"jsonrpc":"2.0","id":"req-ping-1","result":null}'


def test_render_recv() -> None:
    recv = Recv(
        0, "", "u1", "u1", 1, "cmn1", 1234567890123456789, 1, 1700000001, PLAIN, red_dot=True
    )
    assert render_recv(recv) == (
        '{"jsonrpc":"2.0","method":"recv","params":{"header":{"noPersist":false,"redDot":true,'
        '"syncOnce":false,"dup":false},"messageId":"1234567890123456789","messageSeq":1,'
        '"clientMsgNo":"cmn1","timestamp":1700000001,"channelId":"u1","channelType":1,'
        '"fromUid":"u1","payload":"eyJjb250ZW50IjoiaGVsbG8iLCJ0eXBlIjoxfQ=="}}'
    )


def test_render_recv_optional_members() -> None:
    recv = Recv(
        SETTING_RECEIPT | SETTING_TOPIC,
        "",
        "",
        "g1",
        2,
        "",
        7,
        3,
        5,
        b"",
        expire=60,
        topic="t",
    )
    params = json.loads(render_recv(recv))["params"]
    assert list(params) == [
        "header",
        "setting",
        "expire",
        "messageId",
        "messageSeq",
        "timestamp",
        "channelId",
        "channelType",
        "topic",
        "fromUid",
        "payload",
    ]
    assert params["setting"] == {"receipt": True, "signal": False, "stream": False, "topic": True}
    assert params["fromUid"] == ""


def test_render_disconnect() -> None:
    assert render_disconnect(Disconnect(12, "login in other device")) == (
        '{"jsonrpc":"2.0","method":"disconnect","params":'
        '{"reasonCode":12,"reason":"login in other device"}}'
    )


def test_render_event() -> None:
    event = Event("ev1", "___TextMessageStart", 1700000000123, b'{"a":1}')
    assert render_event(event) == (
        '{"jsonrpc":"2.0","method":"event","params":{"id":"ev1","type":"___TextMessageStart",'
        '"timestamp":1700000000123,"data":"{\\"a\\":1}"}}'
    )


def test_render_error() -> None:
    assert render_error("x", "jsonrpc: unknown method: foo") == (
        '{"jsonrpc":"2.0","id":"x","error":{"code":0,"message":"jsonrpc: unknown method: foo"}}'
    )
    assert render_error(None, "bad") == '{"jsonrpc":"2.0","error":{"code":0,"message":"bad"}}'


# ---------------------------------------------------------------------------------------------
# §8.1 inputs


def _parse(message: dict[str, object]) -> Request | BadRequest | None:
    return parse_message(json.dumps(message).encode())


def test_parse_connect() -> None:
    got = _parse(
        {
            "jsonrpc": "2.0",
            "id": "c1",
            "method": "connect",
            "params": {
                "uid": "u1",
                "token": "tk",
                "deviceFlag": 1,
                "deviceId": "d",
                "clientTimestamp": 5,
                "clientKey": "ignored",
            },
        }
    )
    assert got == Request("c1", "connect", Connect(5, 1, "d", "u1", "tk", 5, "ignored"))


def test_parse_connect_version_default_and_explicit() -> None:
    got = _parse({"id": "c", "method": "connect", "params": {"uid": "u", "token": ""}})
    assert isinstance(got, Request)
    assert isinstance(got.frame, Connect)
    assert got.frame.version == 5
    got = _parse(
        {"id": "c", "method": "connect", "params": {"uid": "u", "token": "", "version": 3}}
    )
    assert isinstance(got, Request)
    assert isinstance(got.frame, Connect)
    assert got.frame.version == 3


def test_parse_connect_requires_uid_and_token() -> None:
    assert isinstance(_parse({"id": "c", "method": "connect", "params": {"uid": "u"}}), BadRequest)


def test_parse_send() -> None:
    got = _parse(
        {
            "id": "s1",
            "method": "send",
            "params": {
                "channelId": "u2",
                "channelType": 1,
                "payload": base64.b64encode(PLAIN).decode(),
                "clientMsgNo": "cmn1",
                "header": {"redDot": True, "noPersist": True},
                "setting": {"receipt": True, "topic": True},
                "topic": "t",
                "expire": 9,
            },
        }
    )
    expected = Send(
        SETTING_RECEIPT | SETTING_TOPIC,
        0,
        "cmn1",
        "u2",
        1,
        PLAIN,
        expire=9,
        topic="t",
        red_dot=True,
        no_persist=True,
    )
    assert got == Request("s1", "send", expected)


def test_parse_send_accepts_a_legacy_json_payload() -> None:
    got = _parse(
        {"id": "s", "method": "send", "params": {"channelId": "g", "channelType": 2, "payload": {}}}
    )
    assert isinstance(got, Request)
    assert isinstance(got.frame, Send)
    assert got.frame.payload == b"{}"


def test_parse_send_with_bad_base64() -> None:
    got = _parse({"id": "s", "method": "send", "params": {"payload": "@@", "channelId": "g"}})
    assert isinstance(got, BadRequest)
    assert got.request_id == "s"


@pytest.mark.parametrize("request_id", [None, "r1"])
def test_parse_recvack_notification_or_request(request_id: str | None) -> None:
    message: dict[str, object] = {
        "method": "recvack",
        "params": {"messageId": "1234567890123456789", "messageSeq": 1, "header": {"redDot": True}},
    }
    if request_id:
        message["id"] = request_id
    expected = RecvAck(1234567890123456789, 1, red_dot=True)
    assert _parse(message) == Request(request_id, "recvack", expected)


@pytest.mark.parametrize("params", [None, {}])
def test_parse_ping(params: object) -> None:
    assert _parse({"id": "p", "method": "ping", "params": params}) == Request("p", "ping", PING)
    assert _parse({"id": "p", "method": "ping"}) == Request("p", "ping", PING)


def test_parse_disconnect() -> None:
    got = _parse({"id": "d", "method": "disconnect", "params": {"reasonCode": 1, "reason": "bye"}})
    assert got == Request("d", "disconnect", Disconnect(1, "bye"))


@pytest.mark.parametrize(
    ("raw", "request_id"),
    [
        (b'{"id":"x","method":"subscribe","params":{}}', "x"),
        (b'{"id":"x","method":"foo"}', "x"),
        (b'{"id":5,"method":"ping"}', None),
        (b'{"id":"x","jsonrpc":"1.0","method":"ping"}', "x"),
        (b'{"id":"x","method":"send","params":[1]}', "x"),
        (b'{"id":"x","method":"send","params":{"channelType":"1","payload":""}}', "x"),
        (b'{"id":"x","method":"recvack","params":{"messageId":"-1"}}', "x"),
        (b'{"id":"x","method":"recvack","params":{"messageId":"1","header":5}}', "x"),
        (b"{nope", None),
    ],
)
def test_bad_requests(raw: bytes, request_id: str | None) -> None:
    got = parse_message(raw)
    assert isinstance(got, BadRequest)
    assert got.request_id == request_id


def test_client_responses_are_ignored() -> None:
    assert parse_message(b'{"jsonrpc":"2.0","id":"1","result":{}}') is None


# ---------------------------------------------------------------------------------------------
# Detection and splitting


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"  \r\n\t{", True), (b"{}", True), (b"\x10\x48", False), (b"  ", None), (b"", None)],
)
def test_looks_like_json(data: bytes, expected: bool | None) -> None:
    assert looks_like_json(data) is expected


def test_split_concatenated_objects_with_whitespace() -> None:
    decoder = JsonRpcDecoder()
    data = b' {"a":"}{"}\n{"b":{"c":"\\"}"}}{"d":1}  {"e"'
    assert decoder.split(data) == [b'{"a":"}{"}', b'{"b":{"c":"\\"}"}}', b'{"d":1}']
    assert decoder.split(b":2}") == [b'{"e":2}']


def test_split_rejects_non_object_stream() -> None:
    with pytest.raises(RemoteProtocolError):
        JsonRpcDecoder().split(b'{"a":1} [1]')


def test_split_limits_a_pending_object() -> None:
    decoder = JsonRpcDecoder(frame_bytes_max=10)
    with pytest.raises(RemoteProtocolError):
        decoder.split(b'{"a":"0123456789')


def test_split_limits_a_complete_object() -> None:
    assert JsonRpcDecoder(frame_bytes_max=10).split(b'{"a":"01"}') == [b'{"a":"01"}']
    with pytest.raises(RemoteProtocolError):
        JsonRpcDecoder(frame_bytes_max=10).split(b'{"a":"012"}')


def test_feed_parses_and_skips_responses() -> None:
    decoder = JsonRpcDecoder()
    got = decoder.feed(b'{"id":"p","method":"ping"}{"id":"r","result":null}{"id":"q","method":"x"}')
    assert got == [Request("p", "ping", PING), BadRequest("q", "jsonrpc: unknown method: x")]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
OBJECTS = st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=4)


@given(
    st.lists(OBJECTS, min_size=1, max_size=5),
    st.lists(st.sampled_from(["", " ", "\n", "\r\n\t"]), min_size=5, max_size=5),
    st.lists(st.integers(0, 2000), max_size=6),
)
def test_split_at_any_point_yields_the_same_objects(
    objects: list[dict[str, object]], gaps: list[str], cuts: list[int]
) -> None:
    texts = [json.dumps(o, ensure_ascii=False).encode() for o in objects]
    data = b"".join(gap.encode() + text for gap, text in zip(gaps, texts, strict=False))
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder = JsonRpcDecoder()
    got: list[bytes] = []
    start = 0
    for point in [*points, len(data)]:
        got.extend(decoder.split(data[start:point]))
        start = point
    assert [json.loads(g) for g in got] == objects


@given(st.binary(max_size=200))
def test_arbitrary_bytes_split_or_raise_remote_error(data: bytes) -> None:
    decoder = JsonRpcDecoder(frame_bytes_max=100)
    with contextlib.suppress(RemoteProtocolError):
        for raw in decoder.split(data):
            parse_message(raw)
