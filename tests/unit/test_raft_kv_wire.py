"""The bench's client-port fast paths (bench/raft_kv_client.py) agree with the generic nodewire
codec: the servers' RequestReader, the OK-response encoder and the load generator's reply scan."""

from __future__ import annotations

import pytest
from bench.raft_kv_client import (
    LoadConfig,
    LoadConn,
    LoadGen,
    RequestReader,
    ok_responses,
    parse_put_body,
    put_body,
)

from wukongim.protocol import nodewire as nw
from wukongim.protocol.errors import RemoteProtocolError

FRAMES: list[nw.Frame] = [
    nw.Request(1, "/put", put_body(b"k1", b"v" * 100)),
    nw.Request(2, "/status"),
    nw.Heartbeat(),
    nw.Request(3, "/put", put_body(b"key", b"")),
    nw.Request(2**64 - 1, "/put", b""),  # an empty body is still a /put (the server rejects it)
    nw.Request(5, "/putx", b"abc"),
    nw.Request(6, "/put", put_body(b"k6", b"w" * 3)),
    nw.Heartbeat(),
]
STREAM = b"".join(nw.encode(f) for f in FRAMES)


def expected() -> tuple[list[int], list[bytes], list[nw.Frame]]:
    puts = [f for f in FRAMES if isinstance(f, nw.Request) and f.path == "/put"]
    others: list[nw.Frame] = [f for f in FRAMES if isinstance(f, nw.Request) and f.path != "/put"]
    return [p.id for p in puts], [p.body for p in puts], others


def read_in(chunks: list[bytes]) -> tuple[list[int], list[bytes], list[nw.Frame]]:
    reader = RequestReader()
    ids: list[int] = []
    bodies: list[bytes] = []
    others: list[nw.Frame] = []
    for chunk in chunks:
        i, b, o = reader.receive(chunk)
        ids += i
        bodies += b
        others += o
    assert reader.rest == b""
    return ids, bodies, others


def test_request_reader_all_at_once() -> None:
    assert read_in([STREAM]) == expected()


def test_request_reader_byte_by_byte() -> None:
    assert read_in([STREAM[i : i + 1] for i in range(len(STREAM))]) == expected()


def test_request_reader_split_anywhere() -> None:
    for cut in range(len(STREAM)):
        assert read_in([STREAM[:cut], STREAM[cut:]]) == expected()


def test_request_reader_keeps_trailing_bytes_for_later() -> None:
    reader = RequestReader()
    whole = nw.encode(FRAMES[0])
    ids, _, _ = reader.receive(whole + whole[:5])
    assert ids == [1]
    assert reader.rest == whole[:5]


def test_request_reader_rejects_bad_magic() -> None:
    with pytest.raises(RemoteProtocolError):
        RequestReader().receive(b"WUKONX" + STREAM[6:])


def test_request_reader_rejects_a_put_whose_body_length_lies() -> None:
    frame = bytearray(nw.encode(nw.Request(1, "/put", b"abcd")))
    frame[-8] += 1  # the u32 body length, 4 bytes before the 4-byte body
    with pytest.raises(RemoteProtocolError):
        RequestReader().receive(bytes(frame))


def test_request_reader_rejects_a_frame_too_large_to_buffer() -> None:
    header = nw.MAGIC + bytes([nw.FrameType.REQUEST]) + (2**31).to_bytes(4, "big")
    with pytest.raises(RemoteProtocolError):
        RequestReader().receive(header + bytes(40))


def test_ok_responses_decode_as_ok_responses() -> None:
    ids = [0, 1, 77, 2**64 - 1]
    frames = nw.NodeWireDecoder().receive_data(ok_responses(ids))
    assert frames == [nw.Response(i, nw.Status.OK) for i in ids]


class Recorder(LoadGen):
    def __init__(self) -> None:
        super().__init__(LoadConfig("127.0.0.1", 0, keys=10))
        self.replies: list[tuple[int, int]] = []

    def on_replies(self, conn: LoadConn, ok: list[int], failed: list[int], arrived: float) -> None:
        self.replies += [(i, 0) for i in ok] + [(i, 1) for i in failed]


async def test_load_connection_scans_replies_however_they_are_split() -> None:
    stream = (
        ok_responses([1, 2])
        + nw.encode(nw.Response(3, nw.Status.ERROR, 0, b"notleader:2"))
        + nw.HEARTBEAT_BYTES
        + ok_responses([4])
    )
    for cut in range(len(stream)):
        gen = Recorder()
        conn = LoadConn(gen)
        conn.data_received(stream[:cut])
        conn.data_received(stream[cut:])
        assert sorted(gen.replies) == [(1, 0), (2, 0), (3, 1), (4, 0)], cut
        assert conn.buf == b""


async def test_load_generator_requests_are_puts_of_every_key_in_turn() -> None:
    gen = LoadGen(LoadConfig("127.0.0.1", 0, keys=10))
    conn = LoadConn(gen)
    gen.measuring = True
    gen.issue(conn, 25)
    ids, bodies, others = RequestReader().receive(b"".join(conn.out))
    assert ids == list(range(1, 26))
    assert others == []
    keys = [parse_put_body(b)[0] for b in bodies]
    assert sorted(keys[:10]) == [b"key%08d" % i for i in range(10)]  # a permutation, cycled
    assert keys[10:20] == keys[:10]
    assert {len(parse_put_body(b)[1]) for b in bodies} == {100}
    assert sorted(conn.started) == ids
    assert gen.window_pending == 25
