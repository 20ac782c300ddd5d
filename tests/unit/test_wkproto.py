"""WKProto codec: every §10 vector byte for byte, error handling, and hypothesis properties."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from wukongim.protocol.errors import LocalProtocolError, RemoteProtocolError
from wukongim.protocol.wkproto import (
    PING,
    PONG,
    SETTING_STREAM,
    SETTING_TOPIC,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Event,
    Frame,
    Recv,
    RecvAck,
    Send,
    SendAck,
    Side,
    Sub,
    SubAck,
    connack_server_version,
    describe,
    encode,
    encode_recv,
    encode_sendack,
    negotiate_version,
    person_channel_id,
)

# ---------------------------------------------------------------------------------------------
# §10 vectors

PONG_BYTES_FOR_TEST = b"\x80"

CLIENT_KEY = "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4="
SERVER_KEY = "gyi6Dzmb3lRWxOKYuc4vNZ3WL22Wi9J00XhqMc2PX2E="
SALT = "Salt0123456789AB"
WIRE_PAYLOAD = b"EmhRRe9O+j/I95nIOcxqOO6jATBGfjjN9lgNeGn3wuQ="
MESSAGE_ID = 1234567890123456789

CONNECT_V5 = (
    "1048050100056465763157000275310003746b310000018bcfe56800002c686c4637774d4f6636486133"
    "5a47793134303767506139787a4c7257644644426170634b324d7641506e343d"
)
CONNECT_V2 = CONNECT_V5[:4] + "02" + CONNECT_V5[6:]
CONNACK_V2 = (
    "2049000000000000007801002c67796936447a6d62336c5257784f4b59756334764e5a33574c32325769"
    "394a30305868714d6332505832453d001053616c74303132333435363738394142"
)
CONNACK_V5 = (
    "215205000000000000007801002c67796936447a6d62336c5257784f4b59756334764e5a33574c3232"
    "5769394a30305868714d6332505832453d001053616c743031323334353637383941420000000000000001"
)
SEND_V2 = (
    "325e00000000010004636d6e31000275320100203665636365366130616339373430393065303237343432"
    "633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a41544247666a6a4e396c"
    "674e65476e337775513d"
)
SEND_V5 = (
    "326200000000010004636d6e3100027532010000000000203665636365366130616339373430393065303237"
    "343432633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a41544247666a6a4e"
    "396c674e65476e337775513d"
)
SENDACK = "4211112210f47de98115000000010000000101"
RECV_V2 = (
    "526e00002063323531333538303264383535353334613038616432333165623765346339330002753100"
    "027531010004636d6e31112210f47de98115000000016553f101456d68525265394f2b6a2f4939356e494f"
    "6378714f4f366a41544247666a6a4e396c674e65476e337775513d"
)
RECV_V5 = (
    "52720000206332353133353830326438353535333461303861643233316562376534633933000275310002"
    "753101000000000004636d6e31112210f47de98115000000016553f101456d68525265394f2b6a2f493935"
    "6e494f6378714f4f366a41544247666a6a4e396c674e65476e337775513d"
)
RECVACK = "620c112210f47de9811500000001"
DISCONNECT = "90180c00156c6f67696e20696e206f7468657220646576696365"
SUB = "a00f000004737562310002673102000000"
SUBACK = "b00d00047375623100026731020001"
EVENT = "c029000365763100135f5f5f546578744d65737361676553746172740000018bcfe5687b7b2261223a317d"


def _connect(version: int) -> Connect:
    return Connect(version, 1, "dev1W", "u1", "tk1", 1_700_000_000_000, CLIENT_KEY)


def _send(expire: int = 0) -> Send:
    return Send(
        setting=0,
        client_seq=1,
        client_msg_no="cmn1",
        channel_id="u2",
        channel_type=1,
        payload=WIRE_PAYLOAD,
        msg_key="6ecce6a0ac974090e027442c7e9da1e9",
        expire=expire,
        red_dot=True,
    )


RECV_FRAME = Recv(
    setting=0,
    msg_key="c25135802d855534a08ad231eb7e4c93",
    from_uid="u1",
    channel_id="u1",
    channel_type=1,
    client_msg_no="cmn1",
    message_id=MESSAGE_ID,
    message_seq=1,
    timestamp_s=1_700_000_001,
    payload=WIRE_PAYLOAD,
    red_dot=True,
)

# (side, version, hex, frame)
VECTORS: list[tuple[Side, int, str, Frame]] = [
    (Side.SERVER, 5, CONNECT_V5, _connect(5)),
    (Side.SERVER, 2, CONNECT_V2, _connect(2)),
    (Side.CLIENT, 2, CONNACK_V2, Connack(120, 1, SERVER_KEY, SALT)),
    (Side.CLIENT, 5, CONNACK_V5, Connack(120, 1, SERVER_KEY, SALT, server_version=5, node_id=1)),
    (Side.SERVER, 2, SEND_V2, _send()),
    (Side.SERVER, 5, SEND_V5, _send()),
    (Side.CLIENT, 5, SENDACK, SendAck(MESSAGE_ID, 1, 1, 1, red_dot=True)),
    (Side.CLIENT, 2, RECV_V2, RECV_FRAME),
    (Side.CLIENT, 5, RECV_V5, RECV_FRAME),
    (Side.SERVER, 5, RECVACK, RecvAck(MESSAGE_ID, 1, red_dot=True)),
    (Side.SERVER, 5, "70", PING),
    (Side.CLIENT, 5, "80", PONG),
    (Side.CLIENT, 5, DISCONNECT, Disconnect(12, "login in other device")),
    (Side.SERVER, 5, DISCONNECT, Disconnect(12, "login in other device")),
    (Side.SERVER, 5, SUB, Sub(0, "sub1", "g1", 2, 0, "")),
    (Side.CLIENT, 5, SUBACK, SubAck("sub1", "g1", 2, 0, 1)),
    (Side.CLIENT, 5, EVENT, Event("ev1", "___TextMessageStart", 1_700_000_000_123, b'{"a":1}')),
]
VECTOR_IDS = [f"{side.value}-v{v}-{hx[:2]}" for side, v, hx, _ in VECTORS]


@pytest.mark.parametrize(("side", "version", "hexstr", "frame"), VECTORS, ids=VECTOR_IDS)
def test_vector_encodes_byte_for_byte(side: Side, version: int, hexstr: str, frame: Frame) -> None:
    assert encode(frame, version).hex() == hexstr


@pytest.mark.parametrize(("side", "version", "hexstr", "frame"), VECTORS, ids=VECTOR_IDS)
def test_vector_decodes_all_at_once(side: Side, version: int, hexstr: str, frame: Frame) -> None:
    decoder = Decoder(side, version)
    assert decoder.feed(bytes.fromhex(hexstr)) == [frame]
    assert decoder.buffered_bytes == 0


@pytest.mark.parametrize(("side", "version", "hexstr", "frame"), VECTORS, ids=VECTOR_IDS)
def test_vector_decodes_one_byte_at_a_time(
    side: Side, version: int, hexstr: str, frame: Frame
) -> None:
    decoder = Decoder(side, version)
    data = bytes.fromhex(hexstr)
    got: list[Frame] = []
    for i in range(len(data)):
        out = decoder.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert out == []
        got.extend(out)
    assert got == [frame]


@pytest.mark.parametrize(("side", "version", "hexstr", "frame"), VECTORS, ids=VECTOR_IDS)
def test_vector_decodes_with_trailing_bytes(
    side: Side, version: int, hexstr: str, frame: Frame
) -> None:
    decoder = Decoder(side, version)
    data = bytes.fromhex(hexstr)
    # Trailing: the first half of the same frame. It must stay buffered, then complete.
    half = data[: max(1, len(data) // 2)] if len(data) > 1 else b""
    assert decoder.feed(data + half) == [frame]
    assert decoder.buffered_bytes == len(half)
    if half:
        assert decoder.feed(data[len(half) :]) == [frame]
    # Trailing single-byte frame.
    single = b"\x70" if side is Side.SERVER else b"\x80"
    expected_single = PING if side is Side.SERVER else PONG
    assert Decoder(side, version).feed(data + single) == [frame, expected_single]


def test_large_frame_in_many_chunks() -> None:
    event = Event("e", "t", 1, bytes(range(256)) * 2000)  # 512 000-byte payload
    data = encode(event, 5) + PONG_BYTES_FOR_TEST
    decoder = Decoder(Side.CLIENT)
    got: list[Frame] = []
    for i in range(0, len(data), 1000):
        got.extend(decoder.feed(data[i : i + 1000]))
        if i + 1000 < len(data) - 1:
            assert got == []
            assert decoder.buffered_bytes == i + 1000
    assert got == [event, PONG]


def test_decoder_returns_many_frames_per_read() -> None:
    data = bytes.fromhex(CONNECT_V5 + SEND_V5 + "70" + RECVACK + "70")
    frames = Decoder(Side.SERVER).feed(data)
    assert frames == [_connect(5), _send(), PING, RecvAck(MESSAGE_ID, 1, red_dot=True), PING]


def test_server_decoder_adopts_version_from_connect_in_same_read() -> None:
    # The decoder starts at v5, CONNECT says v2: the SEND right behind it is a v2 SEND.
    decoder = Decoder(Side.SERVER, version=5)
    frames = decoder.feed(bytes.fromhex(CONNECT_V2 + SEND_V2))
    assert frames == [_connect(2), _send()]
    assert decoder.version == 2


def test_client_decoder_adopts_server_version_from_connack() -> None:
    decoder = Decoder(Side.CLIENT, version=2)
    frames = decoder.feed(bytes.fromhex(CONNACK_V5 + RECV_V5))
    assert frames == [Connack(120, 1, SERVER_KEY, SALT, 5, 1), RECV_FRAME]
    assert decoder.version == 5


def test_version_is_settable_after_connect() -> None:
    decoder = Decoder(Side.SERVER, version=5)
    decoder.version = 2
    assert decoder.feed(bytes.fromhex(SEND_V2)) == [_send()]


def test_multibyte_remaining_length_f2_03() -> None:
    # SEND v2 body: setting+clientSeq 5, "cmn1" 6, "u2" 4, channelType 1, msgKey 34 = 50.
    send = Send(0, 1, "cmn1", "u2", 1, b"x" * (498 - 50), msg_key="k" * 32)
    data = encode(send, 2)
    assert data[:3] == bytes.fromhex("30f203")
    assert len(data) == 3 + 498
    assert Decoder(Side.SERVER, 2).feed(data) == [send]


def test_utf8_string_length_is_in_bytes() -> None:
    connect = Connect(2, 1, "dev1W", "悟空", "tk1", 0, CLIENT_KEY)
    data = encode(connect, 2)
    assert bytes.fromhex("0006e6829fe7a9ba") in data
    assert Decoder(Side.SERVER).feed(data) == [connect]


@pytest.mark.parametrize(
    ("value", "hexstr"),
    [(0x4E, "4e"), (200, "c801"), (321, "c102"), (498, "f203"), (16_384, "808001")],
)
def test_remaining_length_table(value: int, hexstr: str) -> None:
    data = encode(Event("", "", 0, b"x" * (value - 12)), 5)
    assert data[1 : 1 + len(hexstr) // 2].hex() == hexstr


def test_person_channel_id() -> None:
    assert person_channel_id("u2", "u1") == "u2@u1"
    assert person_channel_id("u1", "u2") == "u2@u1"
    assert person_channel_id("me", "me") == "me@me"


def test_person_channel_id_tie_gives_sender_at_peer() -> None:
    # "plumless" and "buckeroo" are a well-known CRC-32 collision.
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    assert person_channel_id("plumless", "buckeroo") == "buckeroo@plumless"
    assert person_channel_id("buckeroo", "plumless") == "plumless@buckeroo"


@pytest.mark.parametrize(
    ("client", "version", "server_version"),
    [(0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 3, 0), (4, 4, 4), (5, 5, 5), (6, 5, 5), (255, 5, 5)],
)
def test_version_negotiation(client: int, version: int, server_version: int) -> None:
    assert negotiate_version(client) == version
    assert connack_server_version(client) == server_version


def test_connack_layout_follows_server_version() -> None:
    no_flag = encode(Connack(0, 1, "", "", server_version=0, node_id=7), 5)
    assert no_flag[0] == 0x20
    assert len(no_flag) == 2 + 9 + 2 + 2  # nodeId not written without serverVersion
    v3 = encode(Connack(0, 1, "", "", server_version=3, node_id=0), 5)
    assert v3[0] == 0x21
    assert len(v3) == 2 + 1 + 9 + 4


def test_fast_paths_match_dataclass_encoding() -> None:
    assert encode_sendack(0x02, MESSAGE_ID, 1, 1, 1).hex() == SENDACK
    for version, hexstr in ((2, RECV_V2), (5, RECV_V5)):
        data = encode_recv(
            version,
            flags=0x02,
            setting=0,
            msg_key=RECV_FRAME.msg_key,
            from_uid="u1",
            channel_id="u1",
            channel_type=1,
            client_msg_no="cmn1",
            message_id=MESSAGE_ID,
            message_seq=1,
            timestamp_s=1_700_000_001,
            payload=WIRE_PAYLOAD,
        )
        assert data.hex() == hexstr


def test_describe_is_one_line() -> None:
    assert describe(_send()) == (
        "SEND(setting=0, client_seq=1, client_msg_no='cmn1', channel_id='u2', channel_type=1, "
        "payload=<44 bytes>, msg_key='6ecce6a0ac974090e027442c7e9da1e9', red_dot=True)"
    )
    assert describe(PING) == "PING()"


def test_flags_property() -> None:
    assert _send().flags == 0x02
    assert SendAck(1, 1, 1, 1, dup=True, no_persist=True).flags == 0x09
    assert RecvAck(1, 1, sync_once=True).flags == 0x04


# ---------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("kind", [0, 13, 14, 15])
@pytest.mark.parametrize("side", list(Side))
def test_reserved_frame_types_raise(kind: int, side: Side) -> None:
    with pytest.raises(RemoteProtocolError):
        Decoder(side).feed(bytes((kind << 4, 1, 0)))


@pytest.mark.parametrize("hexstr", [SENDACK, RECV_V5, CONNACK_V5, "80", EVENT, SUBACK])
def test_server_rejects_server_frames(hexstr: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Decoder(Side.SERVER).feed(bytes.fromhex(hexstr))


@pytest.mark.parametrize("hexstr", [CONNECT_V5, SEND_V5, RECVACK, "70", SUB])
def test_client_rejects_client_frames(hexstr: str) -> None:
    with pytest.raises(RemoteProtocolError):
        Decoder(Side.CLIENT).feed(bytes.fromhex(hexstr))


def test_varint_longer_than_four_bytes_raises() -> None:
    with pytest.raises(RemoteProtocolError):
        Decoder(Side.SERVER).feed(bytes.fromhex("30ffffffff01"))


def test_oversized_frame_raises_before_the_body_arrives() -> None:
    decoder = Decoder(Side.SERVER)
    too_big = (1 << 20) + 1
    header = bytes((0x30, (too_big & 0x7F) | 0x80, ((too_big >> 7) & 0x7F) | 0x80, too_big >> 14))
    with pytest.raises(RemoteProtocolError):
        decoder.feed(header)


def test_frame_bytes_max_is_configurable() -> None:
    with pytest.raises(RemoteProtocolError):
        Decoder(Side.SERVER, frame_bytes_max=50).feed(bytes.fromhex(SEND_V5))
    assert Decoder(Side.SERVER, frame_bytes_max=98).feed(bytes.fromhex(SEND_V5)) == [_send()]


@pytest.mark.parametrize(
    "hexstr",
    [
        "3000",  # empty SEND body
        "3003000000",  # SEND cut inside clientSeq
        "600400000000",  # RECVACK too short
        "9001",  # DISCONNECT without any body byte... length says 1 but no string
        "900300ffff",  # string length past the end
        "a001",  # SUB truncated
        "1004050100ff",  # CONNECT with a string running past the end
    ],
)
def test_truncated_bodies_raise(hexstr: str) -> None:
    data = bytes.fromhex(hexstr)
    if len(data) - 2 < data[1]:
        data += b"\x00" * (data[1] - (len(data) - 2))
    with pytest.raises(RemoteProtocolError):
        Decoder(Side.SERVER).feed(data)


def test_invalid_utf8_raises() -> None:
    with pytest.raises(RemoteProtocolError):
        Decoder(Side.SERVER).feed(bytes.fromhex("9004000002c328"))


def _disconnect_with_reason_bytes(n: int) -> bytes:
    body = b"\x00" + n.to_bytes(2, "big") + b"x" * n
    length, varint = len(body), bytearray()
    while True:
        digit, length = length & 0x7F, length >> 7
        varint.append(digit | (0x80 if length else 0))
        if not length:
            break
    return b"\x90" + bytes(varint) + body


def test_string_longer_than_i16_is_a_remote_error() -> None:
    # Go decoders read string lengths as i16: 32768 and more is malformed input.
    with pytest.raises(RemoteProtocolError, match="exceeds 32767"):
        Decoder(Side.SERVER).feed(_disconnect_with_reason_bytes(32_768))
    frames = Decoder(Side.SERVER).feed(_disconnect_with_reason_bytes(32_767))
    assert frames == [Disconnect(0, "x" * 32_767)]


@pytest.mark.parametrize("field", ["msg_key", "from_uid", "channel_id", "client_msg_no"])
def test_recv_string_too_long_is_a_local_error(field: str) -> None:
    fields = {"msg_key": "k", "from_uid": "a", "channel_id": "b", "client_msg_no": "c"}
    fields[field] = "x" * 32_768
    numbers = {"flags": 0, "setting": 0, "channel_type": 1, "message_id": 1, "message_seq": 1}
    with pytest.raises(LocalProtocolError):
        encode_recv(5, timestamp_s=1, payload=b"p", **numbers, **fields)  # type: ignore[arg-type]
    fields[field] = "x" * 32_767
    frame = encode_recv(5, timestamp_s=1, payload=b"p", **numbers, **fields)  # type: ignore[arg-type]
    (recv,) = Decoder(Side.CLIENT).feed(frame)
    assert getattr(recv, field) == "x" * 32_767


def test_zero_length_body_is_written_as_one_byte() -> None:
    # No real frame has an empty body; the smallest has a 00 length only via the varint rule.
    assert encode(Disconnect(0, ""), 5) == bytes.fromhex("9003000000")


def test_string_too_long_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Disconnect(12, "x" * 40_000), 5)


@pytest.mark.parametrize(
    "frame",
    [
        SendAck(-1 << 70, 1, 1, 1),
        SendAck(1, 1 << 32, 1, 1),
        RecvAck(1, -1),
        Disconnect(256, ""),
        Connect(300, 1, "", "", "", 0, ""),
    ],
)
def test_out_of_range_integers_are_local_errors(frame: Frame) -> None:
    with pytest.raises(LocalProtocolError):
        encode(frame, 5)


def test_unpaired_surrogate_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Disconnect(1, "\ud800"), 5)


# ---------------------------------------------------------------------------------------------
# Hypothesis

VERSIONS = st.integers(min_value=2, max_value=5)
TEXT = st.text(max_size=12)
U8 = st.integers(0, 255)
U32 = st.integers(0, 2**32 - 1)
I32 = st.integers(-(2**31), 2**31 - 1)
I64 = st.integers(-(2**63), 2**63 - 1)
U64 = st.integers(0, 2**64 - 1)
BODY = st.binary(max_size=300)
BOOL = st.booleans()


@st.composite
def send_frames(draw: st.DrawFn, version: int) -> Send:
    setting = draw(U8)
    has_stream = bool(setting & SETTING_STREAM) and 2 <= version < 5
    return Send(
        setting=setting,
        client_seq=draw(U32),
        client_msg_no=draw(TEXT),
        channel_id=draw(TEXT),
        channel_type=draw(U8),
        payload=draw(BODY),
        msg_key=draw(TEXT),
        expire=draw(U32) if version >= 3 else 0,
        stream_no=draw(TEXT) if has_stream else "",
        topic=draw(TEXT) if setting & SETTING_TOPIC else "",
        dup=draw(BOOL),
        sync_once=draw(BOOL),
        red_dot=draw(BOOL),
        no_persist=draw(BOOL),
    )


@st.composite
def recv_frames(draw: st.DrawFn, version: int) -> Recv:
    setting = draw(U8)
    has_stream = bool(setting & SETTING_STREAM) and 2 <= version < 5
    return Recv(
        setting=setting,
        msg_key=draw(TEXT),
        from_uid=draw(TEXT),
        channel_id=draw(TEXT),
        channel_type=draw(U8),
        client_msg_no=draw(TEXT),
        message_id=draw(I64),
        message_seq=draw(U32),
        timestamp_s=draw(I32),
        payload=draw(BODY),
        expire=draw(U32) if version >= 3 else 0,
        stream_flag=draw(U8) if has_stream else 0,
        stream_no=draw(TEXT) if has_stream else "",
        stream_id=draw(U64) if has_stream else 0,
        topic=draw(TEXT) if setting & SETTING_TOPIC else "",
        dup=draw(BOOL),
        sync_once=draw(BOOL),
        red_dot=draw(BOOL),
        no_persist=draw(BOOL),
    )


@st.composite
def connack_frames(draw: st.DrawFn) -> Connack:
    server_version = draw(U8)
    return Connack(
        time_diff_ms=draw(I64),
        reason_code=draw(U8),
        server_key=draw(TEXT),
        salt=draw(TEXT),
        server_version=server_version,
        node_id=draw(U64) if server_version >= 4 else 0,
    )


def connect_frames(version: int) -> st.SearchStrategy[Connect]:
    return st.builds(Connect, st.just(version), U8, TEXT, TEXT, TEXT, I64, TEXT)


def server_bound_frames(version: int) -> st.SearchStrategy[Frame]:
    """Frames a client sends (decoded on the server side); CONNECT excluded (changes version)."""
    return st.one_of(
        send_frames(version),
        st.builds(RecvAck, I64, U32, BOOL, BOOL, BOOL, BOOL),
        st.just(PING),
        st.builds(Disconnect, U8, TEXT),
        st.builds(Sub, U8, TEXT, TEXT, U8, U8, TEXT),
    )


def client_bound_frames(version: int) -> st.SearchStrategy[Frame]:
    """Frames a server sends (decoded on the client side); CONNACK excluded (changes version)."""
    return st.one_of(
        st.builds(SendAck, I64, U32, U32, U8, BOOL, BOOL, BOOL, BOOL),
        recv_frames(version),
        st.just(PONG),
        st.builds(Disconnect, U8, TEXT),
        st.builds(SubAck, TEXT, TEXT, U8, U8, U8),
        st.builds(Event, TEXT, TEXT, I64, BODY),
    )


@given(st.data())
def test_roundtrip_every_frame_type(data: st.DataObject) -> None:
    version = data.draw(VERSIONS)
    side = data.draw(st.sampled_from(list(Side)))
    if side is Side.SERVER:
        frame = data.draw(st.one_of(connect_frames(version), server_bound_frames(version)))
    else:
        frame = data.draw(st.one_of(connack_frames(), client_bound_frames(version)))
    decoder = Decoder(side, version)
    assert decoder.feed(encode(frame, version)) == [frame]
    assert decoder.buffered_bytes == 0


@st.composite
def streams(draw: st.DrawFn) -> tuple[Side, int, list[Frame]]:
    version = draw(VERSIONS)
    side = draw(st.sampled_from(list(Side)))
    if side is Side.SERVER:
        first: Frame = draw(connect_frames(version))
        rest = draw(st.lists(server_bound_frames(version), max_size=8))
    else:
        first = Connack(0, 1, "k", "s", connack_server_version(version), 0)
        rest = draw(st.lists(client_bound_frames(version), max_size=8))
    return side, version, [first, *rest]


@given(streams(), st.lists(st.integers(0, 10_000), max_size=10))
def test_split_stream_yields_same_frames(
    stream: tuple[Side, int, list[Frame]], cuts: list[int]
) -> None:
    side, version, frames = stream
    data = b"".join(encode(f, version) for f in frames)
    points = sorted({c % (len(data) + 1) for c in cuts})
    decoder = Decoder(side, version)
    got: list[Frame] = []
    start = 0
    for point in [*points, len(data)]:
        got.extend(decoder.feed(memoryview(data)[start:point]))
        start = point
    assert got == frames
    assert decoder.buffered_bytes == 0


@settings(max_examples=300)
@given(st.binary(max_size=200), st.sampled_from(list(Side)), VERSIONS, st.integers(1, 50))
@example(bytes.fromhex("3000"), Side.SERVER, 5, 50)
@example(bytes.fromhex("00"), Side.CLIENT, 5, 50)
@example(bytes.fromhex("900300ffff"), Side.SERVER, 5, 1)
def test_arbitrary_bytes_decode_or_raise_remote_error(
    data: bytes, side: Side, version: int, chunk: int
) -> None:
    decoder = Decoder(side, version)
    with contextlib.suppress(RemoteProtocolError):
        for i in range(0, len(data), chunk):
            decoder.feed(data[i : i + chunk])


@given(st.binary(min_size=1, max_size=200), VERSIONS)
def test_garbage_after_good_frames_does_not_change_them(garbage: bytes, version: int) -> None:
    good = bytes.fromhex(CONNECT_V5 + RECVACK)
    decoder = Decoder(Side.SERVER, version)
    assert decoder.feed(good) == [_connect(5), RecvAck(MESSAGE_ID, 1, red_dot=True)]
    with contextlib.suppress(RemoteProtocolError):
        decoder.feed(garbage)
