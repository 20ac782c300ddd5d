"""The WUKONG node-to-node framing (spec wkproto §9): vectors, round trips, fuzzing, splits."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wukongim.protocol.errors import LocalProtocolError, RemoteProtocolError
from wukongim.protocol.nodewire import (
    HEARTBEAT_BYTES,
    BatchMessage,
    Connack,
    Connect,
    Frame,
    Heartbeat,
    Message,
    NodeWireDecoder,
    Request,
    Response,
    encode,
    encode_batch,
    split_batch,
)

# spec wkproto §9.4, byte for byte
VECTORS: list[tuple[Frame, str]] = [
    (Heartbeat(), "57554b4f4e4705"),
    (
        Connect(id=1, uid="2", token="", body=b""),
        "57554b4f4e4701 00000011 0100000000000000 0100 32 0000 00000000",
    ),
    (Connack(id=1, status=0), "57554b4f4e4702 0000000d 0100000000000000 00 00000000"),
    (
        Request(id=7, path="/rpc/channel/getConfig", body=b"abc"),
        "57554b4f4e4703 00000027 0700000000000000 1600 "
        "2f7270632f6368616e6e656c2f676574436f6e666967 03000000 616263",
    ),
    (
        Response(id=7, status=0, timestamp_ms=1700000000000, body=b"ok"),
        "57554b4f4e4704 00000017 0700000000000000 00 0068e5cf8b010000 02000000 6f6b",
    ),
    (
        Message(id=9, msg_type=2001, timestamp=0, content=b"xyz"),
        "57554b4f4e4706 0000001b 0900000000000000 d1070000 0000000000000000 03000000 78797a",
    ),
    (
        BatchMessage(
            (
                Message(id=9, msg_type=2001, timestamp=0, content=b"xyz"),
                Message(id=10, msg_type=3002, timestamp=0, content=b""),
            )
        ),
        "57554b4f4e4707 00000037 02000000 "
        "0900000000000000d107000000000000000000000300000078797a "
        "0a00000000000000ba0b0000000000000000000000000000",
    ),
]


@pytest.mark.parametrize(("frame", "hex_"), VECTORS)
def test_vector_encodes_byte_for_byte(frame: Frame, hex_: str) -> None:
    assert encode(frame).hex() == hex_.replace(" ", "")


@pytest.mark.parametrize(("frame", "hex_"), VECTORS)
def test_vector_decodes_all_at_once_bytewise_and_with_trailing(frame: Frame, hex_: str) -> None:
    wire = bytes.fromhex(hex_.replace(" ", ""))
    assert NodeWireDecoder().receive_data(wire) == [frame]

    decoder = NodeWireDecoder()
    frames: list[Frame] = []
    for i in range(len(wire)):
        frames += decoder.receive_data(wire[i : i + 1])
    assert frames == [frame]

    decoder = NodeWireDecoder()
    assert decoder.receive_data(wire + HEARTBEAT_BYTES[:3]) == [frame]
    assert decoder.buffered_bytes == 3


def test_encode_batch_matches_encode_of_batch_message() -> None:
    messages = [Message(1, 1, 5, b"a"), Message(2, 1, 6, b"bc")]
    assert encode_batch(messages) == encode(BatchMessage(tuple(messages)))


def test_wrong_magic_is_a_remote_error() -> None:
    with pytest.raises(RemoteProtocolError):
        NodeWireDecoder().receive_data(b"WUKONX\x05")


def test_wrong_magic_detected_from_a_partial_prefix() -> None:
    with pytest.raises(RemoteProtocolError):
        NodeWireDecoder().receive_data(b"WX")


def test_oversized_length_is_a_remote_error_before_the_body_arrives() -> None:
    decoder = NodeWireDecoder(frame_bytes_max=100)
    with pytest.raises(RemoteProtocolError):
        decoder.receive_data(b"WUKONG\x06" + (101).to_bytes(4, "big"))


def test_unknown_frame_type_is_a_remote_error() -> None:
    for frame_type in (0, 8, 255):
        with pytest.raises(RemoteProtocolError):
            NodeWireDecoder().receive_data(b"WUKONG" + bytes([frame_type]) + bytes(4))


def test_truncated_body_and_trailing_body_bytes_are_remote_errors() -> None:
    with pytest.raises(RemoteProtocolError):  # Connack body one byte short
        NodeWireDecoder().receive_data(b"WUKONG\x02" + (12).to_bytes(4, "big") + bytes(12))
    with pytest.raises(RemoteProtocolError):  # Connack body one byte long
        NodeWireDecoder().receive_data(b"WUKONG\x02" + (14).to_bytes(4, "big") + bytes(14))


def test_batch_count_larger_than_body_is_a_remote_error() -> None:
    body = (1_000_000).to_bytes(4, "little")
    with pytest.raises(RemoteProtocolError):
        NodeWireDecoder().receive_data(b"WUKONG\x07" + len(body).to_bytes(4, "big") + body)


def test_invalid_utf8_path_is_a_remote_error() -> None:
    body = bytes(8) + (1).to_bytes(2, "little") + b"\xff" + bytes(4)
    with pytest.raises(RemoteProtocolError):
        NodeWireDecoder().receive_data(b"WUKONG\x03" + len(body).to_bytes(4, "big") + body)


def test_values_out_of_range_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Message(id=2**64, msg_type=1))
    with pytest.raises(LocalProtocolError):
        encode(Connack(id=1, status=256))
    with pytest.raises(LocalProtocolError):
        encode(Request(id=1, path="x" * 70_000))


def test_split_batch_respects_the_byte_budget() -> None:
    messages = [Message(i, 1, 0, bytes(100)) for i in range(10)]
    runs = split_batch(messages, batch_bytes_max=4 + 3 * (24 + 100))
    assert [len(r) for r in runs] == [3, 3, 3, 1]
    assert [m for r in runs for m in r] == messages
    assert split_batch([Message(0, 1, 0, bytes(1000))], 10) == [[Message(0, 1, 0, bytes(1000))]]


# --------------------------------------------------------------------------------------------
# Properties

u8 = st.integers(0, 255)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
short_text = st.text(max_size=20)
blob = st.binary(max_size=64)

messages = st.builds(Message, u64, u32, u64, blob)
frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(Connect, u64, short_text, short_text, blob),
    st.builds(Connack, u64, u8, blob),
    st.builds(Request, u64, short_text, blob),
    st.builds(Response, u64, u8, i64, blob),
    st.just(Heartbeat()),
    messages,
    st.builds(BatchMessage, st.lists(messages, max_size=5).map(tuple)),
)


@given(frames)
def test_round_trip(frame: Frame) -> None:
    assert NodeWireDecoder().receive_data(encode(frame)) == [frame]


@given(st.lists(frames, max_size=8), st.data())
def test_split_stream_gives_the_same_frames(sequence: list[Frame], data: st.DataObject) -> None:
    wire = b"".join(encode(f) for f in sequence)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder = NodeWireDecoder()
    out: list[Frame] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        out += decoder.receive_data(wire[start:cut])
        start = cut
    assert out == sequence
    assert decoder.buffered_bytes == 0


@given(st.binary(max_size=200))
@example(b"WUKONG\x07\x00\x00\x00\x04\xff\xff\xff\xff")
@example(b"WUKONG\x01\x00\x00\x00\x0e" + bytes(8) + b"\x01\x00\xc3\x00\x00" + bytes(3))
def test_arbitrary_bytes_decode_or_raise_remote_error(wire: bytes) -> None:
    decoder = NodeWireDecoder(frame_bytes_max=1024)
    with contextlib.suppress(RemoteProtocolError):
        decoder.receive_data(wire)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_after_magic_decode_or_raise_remote_error(tail: bytes) -> None:
    decoder = NodeWireDecoder(frame_bytes_max=1024)
    try:
        for frame in decoder.receive_data(b"WUKONG" + tail):
            assert isinstance(frame, Frame)
    except RemoteProtocolError:
        pass
