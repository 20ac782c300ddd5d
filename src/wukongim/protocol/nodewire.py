"""The "WUKONG" node-to-node framing (spec wkproto §9), sans-I/O.

Rules of this file:

* No I/O, no clock: `encode(frame) -> bytes` and `NodeWireDecoder.receive_data(bytes) -> frames`.
* The envelope (§9.1) is `"WUKONG"`, a u8 frame type and a BIG-endian u32 body length; the
  heartbeat is the bare 7-byte prefix. The bodies (§9.2) are LITTLE-endian.
* Whatever the peer sends either decodes or raises `RemoteProtocolError` (the shell closes that
  link). Asking to encode something the layout cannot carry raises `LocalProtocolError`.

Frames are frozen dataclasses; the hot path is `Message` / `BatchMessage` (Raft traffic), which
is encoded with one `struct.pack` per message and decoded with `unpack_from` on a memoryview.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from wukongim.protocol.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "FRAME_BYTES_MAX_DEFAULT",
    "HEARTBEAT_BYTES",
    "MAGIC",
    "BatchMessage",
    "Connack",
    "Connect",
    "Frame",
    "FrameType",
    "Heartbeat",
    "Message",
    "NodeWireDecoder",
    "Request",
    "Response",
    "Status",
    "encode",
    "encode_batch",
    "encode_message",
]

MAGIC = b"WUKONG"
_MAGIC_LEN = len(MAGIC)
_PREFIX_LEN = _MAGIC_LEN + 1  # magic + type
_HEADER_LEN = _PREFIX_LEN + 4  # + u32 BE length
FRAME_BYTES_MAX_DEFAULT = 64 * 1024 * 1024


class FrameType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    REQUEST = 3
    RESPONSE = 4
    HEARTBEAT = 5
    MESSAGE = 6
    BATCH_MESSAGE = 7


class Status(IntEnum):
    OK = 0
    ERROR = 1
    NOT_FOUND = 2


HEARTBEAT_BYTES = MAGIC + bytes([FrameType.HEARTBEAT])


@dataclass(frozen=True, slots=True)
class Connect:
    """Sent by the dialer right after TCP connect; `uid` is its node id in decimal."""

    id: int
    uid: str
    token: str = ""
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Connack:
    id: int
    status: int = Status.OK
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    path: str
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Response:
    id: int
    status: int = Status.OK
    timestamp_ms: int = 0
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class Message:
    """Fire-and-forget. `msg_type` 1 = Raft messages (ours), 2001 = forward user event, ..."""

    id: int
    msg_type: int
    timestamp: int = 0
    content: bytes = b""


@dataclass(frozen=True, slots=True)
class BatchMessage:
    messages: tuple[Message, ...]


Frame = Connect | Connack | Request | Response | Heartbeat | Message | BatchMessage

# --------------------------------------------------------------------------------------------
# Encoding

_ENVELOPE = struct.Struct(">6sBI")
_BE_U32 = struct.Struct(">I")
_U64_ONLY = struct.Struct("<Q")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_CONNECT_ID = struct.Struct("<QH")
_CONNACK = struct.Struct("<QBI")
_REQUEST_ID = struct.Struct("<QH")
_RESPONSE = struct.Struct("<QBqI")
_MESSAGE = struct.Struct("<QIQI")


def _envelope(frame_type: int, body: bytes) -> bytes:
    return _ENVELOPE.pack(MAGIC, frame_type, len(body)) + body


def _pack(fmt: struct.Struct, *values: int) -> bytes:
    try:
        return fmt.pack(*values)
    except struct.error as exc:
        raise LocalProtocolError(f"value out of range for {fmt.format!r}: {values}") from exc


def _str16(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise LocalProtocolError("string longer than a u16 length")
    return _U16.pack(len(raw)) + raw


def _bytes32(raw: bytes) -> bytes:
    if len(raw) > 0xFFFFFFFF:
        raise LocalProtocolError("body longer than a u32 length")
    return _U32.pack(len(raw)) + raw


def encode_message(message: Message) -> bytes:
    """The body encoding of one Message (no envelope), as it appears inside a BatchMessage."""
    content = message.content
    header = _pack(_MESSAGE, message.id, message.msg_type, message.timestamp, len(content))
    return header + content


def encode_batch(messages: Iterable[Message]) -> bytes:
    """One BatchMessage frame (envelope included) carrying `messages` in order."""
    parts = [encode_message(m) for m in messages]
    body = _U32.pack(len(parts)) + b"".join(parts)
    return _envelope(FrameType.BATCH_MESSAGE, body)


def _encode_message_frame(frame: Message) -> bytes:
    return _envelope(FrameType.MESSAGE, encode_message(frame))


def _encode_batch_frame(frame: BatchMessage) -> bytes:
    return encode_batch(frame.messages)


def _encode_heartbeat(frame: Heartbeat) -> bytes:
    return HEARTBEAT_BYTES


def _encode_connect(frame: Connect) -> bytes:
    body = _pack(_U64_ONLY, frame.id) + _str16(frame.uid) + _str16(frame.token)
    return _envelope(FrameType.CONNECT, body + _bytes32(frame.body))


def _encode_connack(frame: Connack) -> bytes:
    body = _pack(_CONNACK, frame.id, frame.status, len(frame.body)) + frame.body
    return _envelope(FrameType.CONNACK, body)


def _encode_request(frame: Request) -> bytes:
    body = _pack(_U64_ONLY, frame.id) + _str16(frame.path) + _bytes32(frame.body)
    return _envelope(FrameType.REQUEST, body)


def _encode_response(frame: Response) -> bytes:
    fixed = _pack(_RESPONSE, frame.id, frame.status, frame.timestamp_ms, len(frame.body))
    return _envelope(FrameType.RESPONSE, fixed + frame.body)


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    Message: _encode_message_frame,
    BatchMessage: _encode_batch_frame,
    Heartbeat: _encode_heartbeat,
    Connect: _encode_connect,
    Connack: _encode_connack,
    Request: _encode_request,
    Response: _encode_response,
}


def encode(frame: Frame) -> bytes:
    """The full wire bytes (envelope + body) of one frame."""
    encoder = _ENCODERS.get(type(frame))
    if encoder is None:
        raise LocalProtocolError(f"not a nodewire frame: {frame!r}")
    return encoder(frame)


# --------------------------------------------------------------------------------------------
# Decoding

_HEARTBEAT = Heartbeat()


# Body decoders: (view, start, end) of one body -> frame. Every read is bounds-checked against
# `end`, so a lying length inside a body can only raise RemoteProtocolError.


def _truncated() -> RemoteProtocolError:
    return RemoteProtocolError("nodewire body truncated")


def _text(view: memoryview, start: int, end: int) -> str:
    try:
        return str(view[start:end], "utf-8")
    except UnicodeDecodeError as exc:
        raise RemoteProtocolError("invalid UTF-8 in nodewire string") from exc


def _str16_at(view: memoryview, pos: int, end: int) -> tuple[str, int]:
    if pos + 2 > end:
        raise _truncated()
    (n,) = _U16.unpack_from(view, pos)
    pos += 2
    if pos + n > end:
        raise _truncated()
    return _text(view, pos, pos + n), pos + n


def _tail32(view: memoryview, pos: int, end: int) -> bytes:
    """A u32 length and that many bytes, which must end the body exactly."""
    if pos + 4 > end:
        raise _truncated()
    (n,) = _U32.unpack_from(view, pos)
    pos += 4
    if pos + n != end:
        raise RemoteProtocolError("nodewire body length mismatch")
    return bytes(view[pos:end])


def _decode_connect(view: memoryview, pos: int, end: int) -> Connect:
    if pos + 8 > end:
        raise _truncated()
    (id_,) = _U64_ONLY.unpack_from(view, pos)
    uid, pos = _str16_at(view, pos + 8, end)
    token, pos = _str16_at(view, pos, end)
    return Connect(id_, uid, token, _tail32(view, pos, end))


def _decode_connack(view: memoryview, pos: int, end: int) -> Connack:
    if pos + _CONNACK.size > end:
        raise _truncated()
    id_, status, n = _CONNACK.unpack_from(view, pos)
    pos += _CONNACK.size
    if pos + n != end:
        raise RemoteProtocolError("nodewire body length mismatch")
    return Connack(id_, status, bytes(view[pos:end]))


def _decode_request(view: memoryview, pos: int, end: int) -> Request:
    if pos + _REQUEST_ID.size > end:
        raise _truncated()
    id_, n = _REQUEST_ID.unpack_from(view, pos)
    pos += _REQUEST_ID.size
    if pos + n > end:
        raise _truncated()
    path = _text(view, pos, pos + n)
    return Request(id_, path, _tail32(view, pos + n, end))


def _decode_response(view: memoryview, pos: int, end: int) -> Response:
    if pos + _RESPONSE.size > end:
        raise _truncated()
    id_, status, ts, n = _RESPONSE.unpack_from(view, pos)
    pos += _RESPONSE.size
    if pos + n != end:
        raise RemoteProtocolError("nodewire body length mismatch")
    return Response(id_, status, ts, bytes(view[pos:end]))


def _message_at(view: memoryview, pos: int, end: int) -> tuple[Message, int]:
    if pos + _MESSAGE.size > end:
        raise _truncated()
    id_, msg_type, ts, n = _MESSAGE.unpack_from(view, pos)
    pos += _MESSAGE.size
    stop = pos + n
    if stop > end:
        raise _truncated()
    return Message(id_, msg_type, ts, bytes(view[pos:stop])), stop


def _decode_message(view: memoryview, pos: int, end: int) -> Message:
    message, pos = _message_at(view, pos, end)
    if pos != end:
        raise RemoteProtocolError("trailing bytes in nodewire body")
    return message


def _decode_batch(view: memoryview, pos: int, end: int) -> BatchMessage:
    if pos + 4 > end:
        raise _truncated()
    (count,) = _U32.unpack_from(view, pos)
    pos += 4
    # Each message takes at least _MESSAGE.size bytes: reject absurd counts before looping.
    if count * _MESSAGE.size > end - pos:
        raise RemoteProtocolError("nodewire batch count exceeds its body")
    messages = []
    for _ in range(count):
        message, pos = _message_at(view, pos, end)
        messages.append(message)
    if pos != end:
        raise RemoteProtocolError("trailing bytes in nodewire body")
    return BatchMessage(tuple(messages))


_BODY_DECODERS: dict[int, Callable[[memoryview, int, int], Frame]] = {
    FrameType.CONNECT: _decode_connect,
    FrameType.CONNACK: _decode_connack,
    FrameType.REQUEST: _decode_request,
    FrameType.RESPONSE: _decode_response,
    FrameType.MESSAGE: _decode_message,
    FrameType.BATCH_MESSAGE: _decode_batch,
}


def decode_body(frame_type: int, body: bytes | memoryview) -> Frame:
    """Decode one frame body of a known type (the envelope already stripped)."""
    if frame_type == FrameType.HEARTBEAT:
        return _HEARTBEAT
    decoder = _BODY_DECODERS.get(frame_type)
    if decoder is None:
        raise RemoteProtocolError(f"unknown nodewire frame type {frame_type}")
    view = memoryview(body)
    return decoder(view, 0, len(view))


class NodeWireDecoder:
    """Incremental decoder: feed any chunking of the stream, get whole frames in order.

    After a `RemoteProtocolError` the stream is unusable: close the connection.
    """

    __slots__ = ("_buf", "frame_bytes_max")

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX_DEFAULT) -> None:
        self._buf = bytearray()
        self.frame_bytes_max = frame_bytes_max

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def receive_data(self, data: bytes) -> list[Frame]:
        """Append `data` and return every frame now complete (possibly none)."""
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        end = len(buf)
        view = memoryview(buf)
        try:
            while end - pos >= _PREFIX_LEN:
                if view[pos : pos + _MAGIC_LEN] != MAGIC:
                    raise RemoteProtocolError("bad nodewire magic")
                frame_type = buf[pos + _MAGIC_LEN]
                if frame_type == FrameType.HEARTBEAT:
                    frames.append(_HEARTBEAT)
                    pos += _PREFIX_LEN
                    continue
                if end - pos < _HEADER_LEN:
                    break
                (length,) = _BE_U32.unpack_from(buf, pos + _PREFIX_LEN)
                if length > self.frame_bytes_max:
                    raise RemoteProtocolError(f"nodewire frame of {length} bytes is too large")
                if frame_type not in _BODY_DECODERS:
                    raise RemoteProtocolError(f"unknown nodewire frame type {frame_type}")
                body_start = pos + _HEADER_LEN
                body_end = body_start + length
                if body_end > end:
                    break
                frames.append(_BODY_DECODERS[frame_type](view, body_start, body_end))
                pos = body_end
            # A partial magic can already be wrong: fail early instead of waiting.
            if end - pos < _PREFIX_LEN and view[pos:end] != MAGIC[: end - pos]:
                raise RemoteProtocolError("bad nodewire magic")
        finally:
            view.release()
        if pos:
            del buf[:pos]
        return frames


def split_batch(messages: Sequence[Message], batch_bytes_max: int) -> list[list[Message]]:
    """Split messages into runs whose encoded BatchMessage stays under `batch_bytes_max`.

    A single message larger than the limit still gets its own run (the caller's frame limit
    decides whether it can be sent at all)."""
    runs: list[list[Message]] = []
    run: list[Message] = []
    size = 4
    for message in messages:
        n = _MESSAGE.size + len(message.content)
        if run and size + n > batch_bytes_max:
            runs.append(run)
            run, size = [], 4
        run.append(message)
        size += n
    if run:
        runs.append(run)
    return runs
