"""WKProto v1-v5 binary frames: dataclasses, encoder, incremental decoder (sans-I/O).

Spec: /work/shared/spec/wkproto.md (section numbers below refer to it).

Public API
----------
Frames (frozen, slotted dataclasses; `Frame` is their union):
    Connect, Connack, Send, SendAck, Recv, RecvAck, Ping, Pong, Disconnect, Sub, SubAck, Event
    PING, PONG: the two singleton instances.
    Header flags are bool fields `dup`, `sync_once`, `red_dot`, `no_persist` on Send, SendAck,
    Recv and RecvAck; `.flags` gives them as the 4-bit int (`FLAG_*`).
Encoding:
    encode(frame, version) -> bytes            any frame, for negotiated version `version`
    encode_sendack(flags, message_id, client_seq, message_seq, reason_code) -> bytes   fast path
    encode_recv(version, *, flags, setting, msg_key, from_uid, ...) -> bytes           fast path
    PING_BYTES, PONG_BYTES
Decoding:
    Decoder(side, version=LATEST_VERSION, frame_bytes_max=1 MiB)
        .feed(data) -> list[Frame]      all complete frames; keeps a partial frame buffered
        .version                        settable; a SERVER decoder sets it itself when it decodes
                                        CONNECT, a CLIENT decoder when a CONNACK carries
                                        serverVersion (so frames later in the same read use it)
    Side.SERVER decodes client frames (CONNECT SEND RECVACK PING DISCONNECT SUB);
    Side.CLIENT decodes server frames (CONNACK SENDACK RECV PONG DISCONNECT SUBACK EVENT).
    Anything else raises RemoteProtocolError.
Helpers:
    negotiate_version(client_version) -> int           v = min(client, 5)           (§2.5)
    connack_server_version(client_version) -> int      Connack.server_version to use (0 = none)
    person_channel_id(peer_uid, sender_uid) -> str     storage id of a person channel (§7.1)
    describe(frame) -> str                              one line for logs and traces
    ReasonCode, FLAG_*, SETTING_*, LATEST_VERSION, FRAME_BYTES_MAX

Rules of this file
------------------
* No I/O, no clock, no randomness. Bytes in, frames out; frames in, bytes out.
* Every read is bounds-checked: a short or malformed frame raises RemoteProtocolError, never
  IndexError/struct.error/UnicodeDecodeError. Encoding something the wire cannot carry raises
  LocalProtocolError.
* The layout of a frame depends only on (type, flags, setting byte, version). Fields a version
  cannot carry are dropped silently on encode (e.g. `expire` for v < 3, `stream_no` for v >= 5,
  `topic` unless setting & SETTING_TOPIC) and decode to their defaults.
* Frames are frozen msgspec Structs without GC tracking (they hold only str, bytes, int and
  bool): built from positional arguments in ~0.2 us, where a frozen dataclass costs ~0.25 us
  per field (object.__setattr__ each), 3-4 us for a SEND.
* CONNACK is self-describing: `server_version != 0` sets the HasServerVersion flag and writes the
  byte, and `node_id` follows iff server_version >= 4. Build it with `connack_server_version()`.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable
from typing import Final

import msgspec

from wukongim.protocol.errors import LocalProtocolError, RemoteProtocolError

LATEST_VERSION: Final = 5
FRAME_BYTES_MAX: Final = 1 << 20  # server limit on the remaining length (§2.3)
_VARINT_MAX: Final = 268_435_455  # 4 varint bytes
_STR_BYTES_MAX: Final = 32_767  # Go decoders read the length as i16 (§2.1)

# Header flags (§2.2).
FLAG_DUP: Final = 0x08
FLAG_SYNC_ONCE: Final = 0x04
FLAG_RED_DOT: Final = 0x02
FLAG_NO_PERSIST: Final = 0x01
_FLAG_HAS_SERVER_VERSION: Final = 0x01  # CONNACK only

# Setting byte (§4).
SETTING_RECEIPT: Final = 0x80
SETTING_SIGNAL: Final = 0x20
SETTING_NO_ENCRYPT: Final = 0x10
SETTING_TOPIC: Final = 0x08
SETTING_LEGACY_STREAM: Final = 0x04
SETTING_STREAM: Final = 0x02


class FrameType(enum.IntEnum):
    CONNECT = 1
    CONNACK = 2
    SEND = 3
    SENDACK = 4
    RECV = 5
    RECVACK = 6
    PING = 7
    PONG = 8
    DISCONNECT = 9
    SUB = 10
    SUBACK = 11
    EVENT = 12


class ReasonCode(enum.IntEnum):
    """Reason codes (§6.1)."""

    UNKNOWN = 0
    SUCCESS = 1
    AUTH_FAIL = 2
    SUBSCRIBER_NOT_EXIST = 3
    IN_BLACKLIST = 4
    CHANNEL_NOT_EXIST = 5
    USER_NOT_ON_NODE = 6
    SENDER_OFFLINE = 7
    MSG_KEY_ERROR = 8
    PAYLOAD_DECODE_ERROR = 9
    FORWARD_SEND_PACKET_ERROR = 10
    NOT_ALLOW_SEND = 11
    CONNECT_KICK = 12
    NOT_IN_WHITELIST = 13
    QUERY_TOKEN_ERROR = 14
    SYSTEM_ERROR = 15
    CHANNEL_ID_ERROR = 16
    NODE_MATCH_ERROR = 17
    NODE_NOT_MATCH = 18
    BAN = 19
    NOT_SUPPORT_HEADER = 20
    CLIENT_KEY_IS_EMPTY = 21
    RATE_LIMIT = 22
    NOT_SUPPORT_CHANNEL_TYPE = 23
    DISBAND = 24
    SEND_BAN = 25


class Side(enum.Enum):
    """Which end of the connection a Decoder sits on."""

    SERVER = "server"  # decodes client -> server frames
    CLIENT = "client"  # decodes server -> client frames


# --------------------------------------------------------------------------------------------
# Frames


def _flags(dup: bool, sync_once: bool, red_dot: bool, no_persist: bool) -> int:
    return (dup << 3) | (sync_once << 2) | (red_dot << 1) | no_persist


class Connect(msgspec.Struct, frozen=True, gc=False):
    """CONNECT (§3.1). The layout does not depend on the version."""

    version: int
    device_flag: int
    device_id: str
    uid: str
    token: str
    client_timestamp_ms: int
    client_key: str


class Connack(msgspec.Struct, frozen=True, gc=False):
    """CONNACK (§3.2). `server_version` 0 means "no HasServerVersion flag"."""

    time_diff_ms: int
    reason_code: int
    server_key: str = ""
    salt: str = ""
    server_version: int = 0
    node_id: int = 0


class Send(msgspec.Struct, frozen=True, gc=False):
    """SEND (§3.3). `payload` is the wire payload (base64 text on encrypted connections)."""

    setting: int
    client_seq: int
    client_msg_no: str
    channel_id: str
    channel_type: int
    payload: bytes
    msg_key: str = ""
    expire: int = 0
    stream_no: str = ""
    topic: str = ""
    dup: bool = False
    sync_once: bool = False
    red_dot: bool = False
    no_persist: bool = False

    @property
    def flags(self) -> int:
        return _flags(self.dup, self.sync_once, self.red_dot, self.no_persist)


class SendAck(msgspec.Struct, frozen=True, gc=False):
    """SENDACK (§3.4). The server copies all four flags of the SEND."""

    message_id: int
    client_seq: int
    message_seq: int
    reason_code: int
    dup: bool = False
    sync_once: bool = False
    red_dot: bool = False
    no_persist: bool = False

    @property
    def flags(self) -> int:
        return _flags(self.dup, self.sync_once, self.red_dot, self.no_persist)


class Recv(msgspec.Struct, frozen=True, gc=False):
    """RECV (§3.5). Stream fields exist only for 2 <= v < 5 with setting & SETTING_STREAM."""

    setting: int
    msg_key: str
    from_uid: str
    channel_id: str
    channel_type: int
    client_msg_no: str
    message_id: int
    message_seq: int
    timestamp_s: int
    payload: bytes
    expire: int = 0
    stream_flag: int = 0
    stream_no: str = ""
    stream_id: int = 0
    topic: str = ""
    dup: bool = False
    sync_once: bool = False
    red_dot: bool = False
    no_persist: bool = False

    @property
    def flags(self) -> int:
        return _flags(self.dup, self.sync_once, self.red_dot, self.no_persist)


class RecvAck(msgspec.Struct, frozen=True, gc=False):
    """RECVACK (§3.6)."""

    message_id: int
    message_seq: int
    dup: bool = False
    sync_once: bool = False
    red_dot: bool = False
    no_persist: bool = False

    @property
    def flags(self) -> int:
        return _flags(self.dup, self.sync_once, self.red_dot, self.no_persist)


class Ping(msgspec.Struct, frozen=True, gc=False):
    """PING (§3.7): the single byte 0x70."""


class Pong(msgspec.Struct, frozen=True, gc=False):
    """PONG (§3.7): the single byte 0x80."""


class Disconnect(msgspec.Struct, frozen=True, gc=False):
    """DISCONNECT (§3.8)."""

    reason_code: int
    reason: str = ""


class Sub(msgspec.Struct, frozen=True, gc=False):
    """SUB (§3.9). action 0 subscribe, 1 unsubscribe."""

    setting: int
    sub_no: str
    channel_id: str
    channel_type: int
    action: int
    param: str = ""


class SubAck(msgspec.Struct, frozen=True, gc=False):
    """SUBACK (§3.9)."""

    sub_no: str
    channel_id: str
    channel_type: int
    action: int
    reason_code: int


class Event(msgspec.Struct, frozen=True, gc=False):
    """EVENT (§3.10). `data` is not encrypted and must be UTF-8 JSON for the JS SDK."""

    event_id: str
    event_type: str
    timestamp_ms: int
    data: bytes


Frame = (
    Connect | Connack | Send | SendAck | Recv | RecvAck | Ping | Pong | Disconnect | Sub | SubAck
) | Event

PING: Final = Ping()
PONG: Final = Pong()
PING_BYTES: Final = b"\x70"
PONG_BYTES: Final = b"\x80"


# --------------------------------------------------------------------------------------------
# Helpers


def negotiate_version(client_version: int) -> int:
    """The connection's protocol version: v = min(client, 5) (§2.5)."""
    return min(client_version, LATEST_VERSION)


def connack_server_version(client_version: int) -> int:
    """Value for `Connack.server_version`: v when the client's raw version > 3, else 0."""
    return negotiate_version(client_version) if client_version > 3 else 0


def person_channel_id(peer_uid: str, sender_uid: str) -> str:
    """Storage id of a person channel (§7.1), called like the server: (channelId, sender).

    A CRC tie between different uids gives `sender@peer`.
    """
    if zlib.crc32(peer_uid.encode()) > zlib.crc32(sender_uid.encode()):
        return peer_uid + "@" + sender_uid
    return sender_uid + "@" + peer_uid


def describe(frame: Frame) -> str:
    """One readable line: non-default fields, bytes shown by length."""
    parts = []
    for field in msgspec.structs.fields(frame):
        value = getattr(frame, field.name)
        if value == field.default:
            continue
        if isinstance(value, bytes):
            parts.append(f"{field.name}=<{len(value)} bytes>")
        else:
            parts.append(f"{field.name}={value!r}")
    return f"{type(frame).__name__.upper()}({', '.join(parts)})"


# --------------------------------------------------------------------------------------------
# Encoding

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_BI = struct.Struct(">BI")  # setting, clientSeq
_BB = struct.Struct(">BB")  # version, deviceFlag
_QB = struct.Struct(">qB")  # timeDiff, reasonCode
_QII = struct.Struct(">qIi")  # messageId, messageSeq, timestamp (RECV tail)
_QI = struct.Struct(">qI")  # RECVACK body
_SENDACK = struct.Struct(">BBqIIB")  # whole SENDACK frame: header, length 17, body
_QIIB = struct.Struct(">qIIB")  # SENDACK body
_BBB = struct.Struct(">BBB")  # channelType, action, reasonCode (SUBACK)
# RECV fast path: string lengths packed as i16, so a string over 32767 bytes is a struct.error
_BL = struct.Struct(">Bh")  # setting, msgKey length
_L = struct.Struct(">h")  # a string length
_BIL = struct.Struct(">BIh")  # channelType, expire, clientMsgNo length (v3+)
_BIH = struct.Struct(">BIH")  # SEND: setting, clientSeq, clientMsgNo length
_IH = struct.Struct(">IH")  # SEND: expire, msgKey length

_SMALL_LEN: Final = tuple(bytes((n,)) for n in range(128))


def _varint(n: int) -> bytes:
    if n < 128:
        return _SMALL_LEN[n]
    if n > _VARINT_MAX:
        raise LocalProtocolError(f"frame body of {n} bytes exceeds the 4-byte varint")
    out = bytearray()
    while n:
        digit = n & 0x7F
        n >>= 7
        out.append(digit | 0x80 if n else digit)
    return bytes(out)


def _s(value: str) -> bytes:
    """A u16-length-prefixed UTF-8 string."""
    data = value.encode()
    n = len(data)
    if n > _STR_BYTES_MAX:
        raise LocalProtocolError(f"string of {n} bytes exceeds {_STR_BYTES_MAX}")
    return _U16.pack(n) + data


def _frame(header: int, body: bytes) -> bytes:
    n = len(body)
    if n < 128:
        return bytes((header, n)) + body
    return bytes((header,)) + _varint(n) + body


def _encode_connect(f: Connect, version: int) -> bytes:
    body = b"".join(
        (
            _BB.pack(f.version, f.device_flag),
            _s(f.device_id),
            _s(f.uid),
            _s(f.token),
            _I64.pack(f.client_timestamp_ms),
            _s(f.client_key),
        )
    )
    return _frame(0x10, body)


def _encode_connack(f: Connack, version: int) -> bytes:
    parts = [_QB.pack(f.time_diff_ms, f.reason_code), _s(f.server_key), _s(f.salt)]
    if not f.server_version:
        return _frame(0x20, b"".join(parts))
    if f.server_version >= 4:
        parts.append(_U64.pack(f.node_id))
    return _frame(0x21, _U8.pack(f.server_version) + b"".join(parts))


def _encode_send(f: Send, version: int) -> bytes:
    setting = f.setting
    parts = [_BI.pack(setting, f.client_seq), _s(f.client_msg_no)]
    if setting & SETTING_STREAM and 2 <= version < 5:
        parts.append(_s(f.stream_no))
    parts.append(_s(f.channel_id))
    parts.append(_U8.pack(f.channel_type))
    if version >= 3:
        parts.append(_U32.pack(f.expire))
    parts.append(_s(f.msg_key))
    if setting & SETTING_TOPIC:
        parts.append(_s(f.topic))
    parts.append(f.payload)
    return _frame(0x30 | f.flags, b"".join(parts))


def encode_sendack(
    flags: int, message_id: int, client_seq: int, message_seq: int, reason_code: int
) -> bytes:
    """A whole SENDACK frame (§3.4). `flags` is the SEND's 4-bit header flags."""
    try:
        return _SENDACK.pack(0x40 | flags, 17, message_id, client_seq, message_seq, reason_code)
    except struct.error as exc:
        raise LocalProtocolError(f"SENDACK field out of range: {exc}") from exc


def _encode_sendack(f: SendAck, version: int) -> bytes:
    return encode_sendack(f.flags, f.message_id, f.client_seq, f.message_seq, f.reason_code)


def encode_recv(
    version: int,
    *,
    flags: int,
    setting: int,
    msg_key: str,
    from_uid: str,
    channel_id: str,
    channel_type: int,
    client_msg_no: str,
    message_id: int,
    message_seq: int,
    timestamp_s: int,
    payload: bytes,
    expire: int = 0,
    stream_flag: int = 0,
    stream_no: str = "",
    stream_id: int = 0,
    topic: str = "",
) -> bytes:
    """A whole RECV frame (§3.5) without building a `Recv` first.

    `flags` is the 4-bit header (RedDot/SyncOnce/NoPersist copied from the SEND, RedDot cleared
    for the sender's own devices). `payload` and `msg_key` are already per-connection.
    """
    return encode_recv_positional(
        version,
        flags,
        setting,
        msg_key,
        from_uid,
        channel_id,
        channel_type,
        client_msg_no,
        message_id,
        message_seq,
        timestamp_s,
        payload,
        expire,
        stream_flag,
        stream_no,
        stream_id,
        topic,
    )


def encode_recv_positional(  # noqa: PLR0917 - the hot path: keywords cost ~1 us a call
    version: int,
    flags: int,
    setting: int,
    msg_key: str,
    from_uid: str,
    channel_id: str,
    channel_type: int,
    client_msg_no: str,
    message_id: int,
    message_seq: int,
    timestamp_s: int,
    payload: bytes,
    expire: int,
    stream_flag: int,
    stream_no: str,
    stream_id: int,
    topic: str,
    /,
) -> bytes:
    """`encode_recv` with every field positional, in that order (fan-out hot path)."""
    try:
        mk = msg_key.encode()
        fu = from_uid.encode()
        ch = channel_id.encode()
        no = client_msg_no.encode()
        parts = [_BL.pack(setting, len(mk)), mk, _L.pack(len(fu)), fu, _L.pack(len(ch)), ch]
        if version >= 3:
            parts.append(_BIL.pack(channel_type, expire, len(no)))
        else:
            parts.append(_BL.pack(channel_type, len(no)))
        parts.append(no)
        if setting & SETTING_STREAM and 2 <= version < 5:
            parts.append(_U8.pack(stream_flag))
            parts.append(_s(stream_no))
            parts.append(_U64.pack(stream_id))
        parts.append(_QII.pack(message_id, message_seq, timestamp_s))
        if setting & SETTING_TOPIC:
            parts.append(_s(topic))
        parts.append(payload)
    except struct.error as exc:
        raise LocalProtocolError(f"RECV field out of range: {exc}") from exc
    body = b"".join(parts)
    n = len(body)
    if n < 128:
        return bytes((0x50 | flags, n)) + body
    return b"".join((bytes((0x50 | flags,)), _varint(n), body))


def _encode_recv(f: Recv, version: int) -> bytes:
    return encode_recv(
        version,
        flags=f.flags,
        setting=f.setting,
        msg_key=f.msg_key,
        from_uid=f.from_uid,
        channel_id=f.channel_id,
        channel_type=f.channel_type,
        client_msg_no=f.client_msg_no,
        message_id=f.message_id,
        message_seq=f.message_seq,
        timestamp_s=f.timestamp_s,
        payload=f.payload,
        expire=f.expire,
        stream_flag=f.stream_flag,
        stream_no=f.stream_no,
        stream_id=f.stream_id,
        topic=f.topic,
    )


def _encode_recvack(f: RecvAck, version: int) -> bytes:
    return _frame(0x60 | f.flags, _QI.pack(f.message_id, f.message_seq))


def _encode_ping(f: Ping, version: int) -> bytes:
    return PING_BYTES


def _encode_pong(f: Pong, version: int) -> bytes:
    return PONG_BYTES


def _encode_disconnect(f: Disconnect, version: int) -> bytes:
    return _frame(0x90, _U8.pack(f.reason_code) + _s(f.reason))


def _encode_sub(f: Sub, version: int) -> bytes:
    body = b"".join(
        (
            _U8.pack(f.setting),
            _s(f.sub_no),
            _s(f.channel_id),
            _BB.pack(f.channel_type, f.action),
            _s(f.param),
        )
    )
    return _frame(0xA0, body)


def _encode_suback(f: SubAck, version: int) -> bytes:
    body = _s(f.sub_no) + _s(f.channel_id) + _BBB.pack(f.channel_type, f.action, f.reason_code)
    return _frame(0xB0, body)


def _encode_event(f: Event, version: int) -> bytes:
    body = b"".join((_s(f.event_id), _s(f.event_type), _I64.pack(f.timestamp_ms), f.data))
    return _frame(0xC0, body)


_ENCODERS: Final[dict[type, object]] = {
    Connect: _encode_connect,
    Connack: _encode_connack,
    Send: _encode_send,
    SendAck: _encode_sendack,
    Recv: _encode_recv,
    RecvAck: _encode_recvack,
    Ping: _encode_ping,
    Pong: _encode_pong,
    Disconnect: _encode_disconnect,
    Sub: _encode_sub,
    SubAck: _encode_suback,
    Event: _encode_event,
}


def encode(frame: Frame, version: int) -> bytes:
    """The wire bytes of `frame` for a connection of negotiated `version`.

    Raises LocalProtocolError when a field does not fit its wire type.
    """
    encoder = _ENCODERS.get(type(frame))
    if encoder is None:
        raise LocalProtocolError(f"not a WKProto frame: {frame!r}")
    try:
        return encoder(frame, version)  # type: ignore[operator,no-any-return]
    except struct.error as exc:
        raise LocalProtocolError(f"{type(frame).__name__} field out of range: {exc}") from exc
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(f"{type(frame).__name__} string is not encodable: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Decoding. Each body decoder gets the frame body as its own `bytes`, so struct.unpack_from and
# indexing cannot read past the frame; their errors become RemoteProtocolError in `feed`.


def _str(
    b: bytes, p: int, _u16: Callable[[bytes, int], tuple[int]] = _U16.unpack_from
) -> tuple[str, int]:
    (n,) = _u16(b, p)
    if n > _STR_BYTES_MAX:  # Go reads the length as an i16: a "negative" length is malformed
        raise RemoteProtocolError(f"string length {n} exceeds {_STR_BYTES_MAX} bytes")
    p += 2
    data = b[p : p + n]
    if len(data) != n:
        raise RemoteProtocolError("string runs past the end of the frame")
    return data.decode(), p + n


def _decode_connect(b: bytes, flags: int, version: int) -> Connect:
    client_version, device_flag = _BB.unpack_from(b, 0)
    device_id, p = _str(b, 2)
    uid, p = _str(b, p)
    token, p = _str(b, p)
    (client_timestamp_ms,) = _I64.unpack_from(b, p)
    client_key, p = _str(b, p + 8)
    return Connect(
        client_version, device_flag, device_id, uid, token, client_timestamp_ms, client_key
    )


def _decode_connack(b: bytes, flags: int, version: int) -> Connack:
    server_version = 0
    p = 0
    if flags & _FLAG_HAS_SERVER_VERSION:
        server_version = b[0]
        p = 1
    time_diff_ms, reason_code = _QB.unpack_from(b, p)
    server_key, p = _str(b, p + 9)
    salt, p = _str(b, p)
    node_id = 0
    if server_version >= 4:
        (node_id,) = _U64.unpack_from(b, p)
    return Connack(time_diff_ms, reason_code, server_key, salt, server_version, node_id)


def _decode_send(b: bytes, flags: int, version: int) -> Send:
    # The hot path of the server: the common strings are read inline (same rules as `_str`).
    setting, client_seq, n = _BIH.unpack_from(b, 0)
    p = 7 + n
    if n > _STR_BYTES_MAX or p > len(b):
        raise RemoteProtocolError("bad clientMsgNo length")
    client_msg_no = b[7:p].decode()
    stream_no = ""
    if setting & SETTING_STREAM and 2 <= version < 5:
        stream_no, p = _str(b, p)
    channel_id, p = _str(b, p)
    channel_type = b[p]
    p += 1
    expire = 0
    if version >= 3:
        expire, n = _IH.unpack_from(b, p)
        p += 6
    else:
        (n,) = _U16.unpack_from(b, p)
        p += 2
    q = p + n
    if n > _STR_BYTES_MAX or q > len(b):
        raise RemoteProtocolError("bad msgKey length")
    msg_key = b[p:q].decode()
    p = q
    topic = ""
    if setting & SETTING_TOPIC:
        topic, p = _str(b, p)
    return Send(
        setting,
        client_seq,
        client_msg_no,
        channel_id,
        channel_type,
        b[p:],
        msg_key,
        expire,
        stream_no,
        topic,
        bool(flags & 8),
        bool(flags & 4),
        bool(flags & 2),
        bool(flags & 1),
    )


def _decode_sendack(b: bytes, flags: int, version: int) -> SendAck:
    message_id, client_seq, message_seq, reason_code = _QIIB.unpack_from(b, 0)
    return SendAck(
        message_id,
        client_seq,
        message_seq,
        reason_code,
        bool(flags & 8),
        bool(flags & 4),
        bool(flags & 2),
        bool(flags & 1),
    )


def _decode_recv(b: bytes, flags: int, version: int) -> Recv:
    setting = b[0]
    msg_key, p = _str(b, 1)
    from_uid, p = _str(b, p)
    channel_id, p = _str(b, p)
    channel_type = b[p]
    p += 1
    expire = 0
    if version >= 3:
        (expire,) = _U32.unpack_from(b, p)
        p += 4
    client_msg_no, p = _str(b, p)
    stream_flag = stream_id = 0
    stream_no = ""
    if setting & SETTING_STREAM and 2 <= version < 5:
        stream_flag = b[p]
        stream_no, p = _str(b, p + 1)
        (stream_id,) = _U64.unpack_from(b, p)
        p += 8
    message_id, message_seq, timestamp_s = _QII.unpack_from(b, p)
    p += 16
    topic = ""
    if setting & SETTING_TOPIC:
        topic, p = _str(b, p)
    return Recv(
        setting,
        msg_key,
        from_uid,
        channel_id,
        channel_type,
        client_msg_no,
        message_id,
        message_seq,
        timestamp_s,
        b[p:],
        expire,
        stream_flag,
        stream_no,
        stream_id,
        topic,
        bool(flags & 8),
        bool(flags & 4),
        bool(flags & 2),
        bool(flags & 1),
    )


def _decode_recvack(b: bytes, flags: int, version: int) -> RecvAck:
    message_id, message_seq = _QI.unpack_from(b, 0)
    return RecvAck(
        message_id, message_seq, bool(flags & 8), bool(flags & 4), bool(flags & 2), bool(flags & 1)
    )


def _decode_disconnect(b: bytes, flags: int, version: int) -> Disconnect:
    reason, _ = _str(b, 1)
    return Disconnect(b[0], reason)


def _decode_sub(b: bytes, flags: int, version: int) -> Sub:
    setting = b[0]
    sub_no, p = _str(b, 1)
    channel_id, p = _str(b, p)
    channel_type, action = _BB.unpack_from(b, p)
    param, p = _str(b, p + 2)
    return Sub(setting, sub_no, channel_id, channel_type, action, param)


def _decode_suback(b: bytes, flags: int, version: int) -> SubAck:
    sub_no, p = _str(b, 0)
    channel_id, p = _str(b, p)
    channel_type, action, reason_code = _BBB.unpack_from(b, p)
    return SubAck(sub_no, channel_id, channel_type, action, reason_code)


def _decode_event(b: bytes, flags: int, version: int) -> Event:
    event_id, p = _str(b, 0)
    event_type, p = _str(b, p)
    (timestamp_ms,) = _I64.unpack_from(b, p)
    return Event(event_id, event_type, timestamp_ms, b[p + 8 :])


_SINGLE_BYTE: Final = object()  # marks PING / PONG in the tables

_SERVER_TABLE: Final[tuple[object, ...]] = (
    None,
    _decode_connect,
    None,
    _decode_send,
    None,
    None,
    _decode_recvack,
    _SINGLE_BYTE,
    None,
    _decode_disconnect,
    _decode_sub,
    None,
    None,
    None,
    None,
    None,
)
_CLIENT_TABLE: Final[tuple[object, ...]] = (
    None,
    None,
    _decode_connack,
    None,
    _decode_sendack,
    _decode_recv,
    None,
    None,
    _SINGLE_BYTE,
    _decode_disconnect,
    None,
    _decode_suback,
    _decode_event,
    None,
    None,
    None,
)
_SINGLE_FRAME: Final[dict[int, Frame]] = {7: PING, 8: PONG}


class Decoder:
    """Incremental WKProto decoder for one connection direction.

    Feed it every byte received, in order; it returns each complete frame once. A partial frame
    stays buffered. Any RemoteProtocolError is final: close the connection (the decoder's state
    is undefined afterwards, and frames decoded earlier in the same `feed` call are dropped).
    """

    __slots__ = ("_need", "_pending", "_table", "frame_bytes_max", "side", "version")

    def __init__(
        self,
        side: Side,
        version: int = LATEST_VERSION,
        frame_bytes_max: int = FRAME_BYTES_MAX,
    ) -> None:
        self.side = side
        self.version = version
        self.frame_bytes_max = frame_bytes_max
        self._table = _SERVER_TABLE if side is Side.SERVER else _CLIENT_TABLE
        self._pending = bytearray()
        self._need = 0  # bytes the buffered partial frame needs before parsing can progress

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._pending)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """Consume `data`; return every frame it completes, in order.

        Raises RemoteProtocolError on malformed input.
        """
        if self._pending:
            self._pending += data
            if len(self._pending) < self._need:
                return []
            buf = bytes(self._pending)
            self._pending.clear()
        elif type(data) is bytes:
            buf = data
        else:
            buf = bytes(data)
        frames: list[Frame] = []
        try:
            pos = self._parse_frames(buf, frames)
        except (IndexError, struct.error) as exc:
            raise RemoteProtocolError(f"truncated frame body: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"invalid UTF-8 in a string: {exc}") from exc
        if pos < len(buf):
            self._pending += buf[pos:] if pos else buf
        return frames

    def _parse_frames(self, buf: bytes, frames: list[Frame]) -> int:
        """Append the complete frames of `buf` to `frames`; return the offset consumed. Body
        decoder errors are translated by `feed` (one try per read, not per frame: the body
        decoders only raise on malformed input)."""
        table = self._table
        version = self.version
        n = len(buf)
        pos = 0
        self._need = 0
        while pos < n:
            header = buf[pos]
            kind = header >> 4
            body_decoder = table[kind]
            if body_decoder is None:
                raise RemoteProtocolError(f"unexpected frame type {kind} ({self.side.value} side)")
            if body_decoder is _SINGLE_BYTE:
                frames.append(_SINGLE_FRAME[kind])
                pos += 1
                continue
            # Remaining length: 1..4 varint bytes.
            length = 0
            shift = 0
            p = pos + 1
            while True:
                if p >= n:
                    self._need = n - pos + 1
                    return pos
                digit = buf[p]
                p += 1
                length |= (digit & 0x7F) << shift
                if digit < 0x80:
                    break
                shift += 7
                if shift == 28:
                    raise RemoteProtocolError("remaining length longer than 4 bytes")
            if length > self.frame_bytes_max:
                raise RemoteProtocolError(
                    f"frame body of {length} bytes exceeds {self.frame_bytes_max}"
                )
            end = p + length
            if end > n:
                self._need = end - pos
                return pos
            frame = body_decoder(buf[p:end], header & 0x0F, version)  # type: ignore[operator]
            frames.append(frame)
            pos = end
            if kind <= 2:  # CONNECT / CONNACK fix the version of everything after them
                self._adopt_version(frame)
                version = self.version
        return pos

    def _adopt_version(self, frame: Frame) -> None:
        if isinstance(frame, Connect):
            self.version = negotiate_version(frame.version)
        elif isinstance(frame, Connack) and frame.server_version:
            self.version = frame.server_version
