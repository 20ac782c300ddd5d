"""WuKongIM JSON-RPC 2.0 (spec §8): client messages -> WKProto frames, server frames -> JSON text.

Public API
----------
    looks_like_json(data) -> bool | None     §1.3 detection: first non-blank byte is "{"
                                             (None while only whitespace has arrived)
    JsonRpcDecoder(frame_bytes_max).feed(data) -> list[Request | BadRequest]
        splits concatenated JSON objects (whitespace between them allowed; an object may span
        reads) and parses each one. Raises RemoteProtocolError when the stream is not a
        sequence of objects or a pending object grows past frame_bytes_max.
    parse_message(raw: bytes) -> Request | BadRequest | None     one object (None = a response
                                             from the client, which the server ignores)
    Request(request_id, method, frame)       frame is Connect | Send | RecvAck | Ping | Disconnect
    BadRequest(request_id, message)          answer with render_error(...) (after auth) or close
    render_connack(request_id, connack) -> str       result, or error{code: reason} on failure
    render_sendack(request_id, sendack) -> str
    render_pong(request_id) -> str                   with "result": null (§8.3)
    render_recv(recv) -> str                         recv.payload must be the PLAINTEXT
    render_disconnect(disconnect) -> str
    render_event(event) -> str
    render_error(request_id, message, code=0) -> str

Rules of this file
------------------
* JSON-RPC connections are never encrypted: msgKey is not checked here, payloads are plain.
* `send` maps to a SEND with clientSeq 0; an empty clientMsgNo stays empty (the gateway generates
  one, since this layer has no randomness). `connect` version 0 (or missing) means 5.
* Output member order follows the Go server (§8.2); zero-valued optional members are left out,
  except that `recv` always carries a full `header` object and `pong` carries "result": null
  (§8.3).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from wukongim.protocol.errors import RemoteProtocolError
from wukongim.protocol.wkproto import (
    FRAME_BYTES_MAX,
    LATEST_VERSION,
    PING,
    SETTING_RECEIPT,
    SETTING_SIGNAL,
    SETTING_STREAM,
    SETTING_TOPIC,
    Connack,
    Connect,
    Disconnect,
    Event,
    Frame,
    ReasonCode,
    Recv,
    RecvAck,
    Send,
    SendAck,
)

_WHITESPACE: Final = b" \t\n\r"
_STRUCTURE: Final = re.compile(rb'[{}"]')
_STRING_END: Final = re.compile(rb'["\\]')
_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed client message. `request_id` is None for notifications (e.g. recvack)."""

    request_id: str | None
    method: str
    frame: Frame


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A message we cannot serve: reply with render_error (or close before authentication)."""

    request_id: str | None
    message: str


class _InvalidError(Exception):
    """Internal: a member has the wrong type; becomes a BadRequest."""


# ---------------------------------------------------------------------------------------------
# Splitting


def looks_like_json(data: bytes | bytearray | memoryview) -> bool | None:
    """§1.3: True if the first non-whitespace byte is "{", None if there is none yet."""
    stripped = bytes(data).lstrip(_WHITESPACE)
    if not stripped:
        return None
    return stripped[0] == 0x7B


def _object_end(buf: bytes, start: int) -> int:
    """Index just past the object starting at buf[start] == "{", or -1 if it is incomplete."""
    depth = 0
    pos = start
    while True:
        match = _STRUCTURE.search(buf, pos)
        if match is None:
            return -1
        char = buf[match.start()]
        pos = match.end()
        if char == 0x7B:  # {
            depth += 1
        elif char == 0x7D:  # }
            depth -= 1
            if depth == 0:
                return pos
        else:  # a string: skip to its closing quote
            while True:
                end = _STRING_END.search(buf, pos)
                if end is None:
                    return -1
                pos = end.end()
                if buf[end.start()] == 0x22:  # "
                    break
                pos += 1  # backslash: skip the escaped character


class JsonRpcDecoder:
    """Incremental splitter + parser for one JSON-RPC connection's inbound byte stream."""

    __slots__ = ("_pending", "frame_bytes_max")

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX) -> None:
        self.frame_bytes_max = frame_bytes_max
        self._pending = b""

    def split(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """The complete JSON objects (raw bytes) that `data` completes."""
        buf = self._pending + bytes(data)
        objects: list[bytes] = []
        pos = 0
        n = len(buf)
        while True:
            while pos < n and buf[pos] in _WHITESPACE:
                pos += 1
            if pos == n:
                break
            if buf[pos] != 0x7B:
                raise RemoteProtocolError("JSON-RPC stream: expected '{'")
            end = _object_end(buf, pos)
            if end < 0:
                break
            if end - pos > self.frame_bytes_max:
                raise RemoteProtocolError(f"JSON-RPC message exceeds {self.frame_bytes_max} bytes")
            objects.append(buf[pos:end])
            pos = end
        self._pending = buf[pos:]
        if len(self._pending) > self.frame_bytes_max:
            raise RemoteProtocolError(f"JSON-RPC message exceeds {self.frame_bytes_max} bytes")
        return objects

    def feed(self, data: bytes | bytearray | memoryview) -> list[Request | BadRequest]:
        """Parse every complete object; client responses (no method) are skipped."""
        out: list[Request | BadRequest] = []
        for raw in self.split(data):
            message = parse_message(raw)
            if message is not None:
                out.append(message)
        return out


# ---------------------------------------------------------------------------------------------
# Parsing


def _str(params: dict[str, Any], key: str, default: str = "") -> str:
    value = params.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _InvalidError(f"{key} must be a string")
    return value


def _int(params: dict[str, Any], key: str, default: int = 0) -> int:
    value = params.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise _InvalidError(f"{key} must be an integer")
    return value


def _flags(params: dict[str, Any]) -> tuple[bool, bool, bool, bool]:
    """(dup, syncOnce, redDot, noPersist) from an optional header object."""
    header = params.get("header") or {}
    if not isinstance(header, dict):
        raise _InvalidError("header must be an object")
    return (
        bool(header.get("dup")),
        bool(header.get("syncOnce")),
        bool(header.get("redDot")),
        bool(header.get("noPersist")),
    )


def _setting(params: dict[str, Any]) -> int:
    setting = params.get("setting") or {}
    if not isinstance(setting, dict):
        raise _InvalidError("setting must be an object")
    return (
        (SETTING_RECEIPT if setting.get("receipt") else 0)
        | (SETTING_SIGNAL if setting.get("signal") else 0)
        | (SETTING_STREAM if setting.get("stream") else 0)
        | (SETTING_TOPIC if setting.get("topic") else 0)
    )


def _payload(params: dict[str, Any]) -> bytes:
    value = params.get("payload")
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise _InvalidError(f"payload is not base64: {exc}") from exc
    if isinstance(value, dict | list):  # v2.1.4-v2.2.2 clients sent raw JSON (§8, history)
        return _encode_json(value)
    raise _InvalidError("payload must be a base64 string")


def _connect(params: dict[str, Any]) -> Connect:
    uid = _str(params, "uid")
    if "uid" not in params or "token" not in params:
        raise _InvalidError("connect needs uid and token")
    return Connect(
        _int(params, "version") or LATEST_VERSION,
        _int(params, "deviceFlag"),
        _str(params, "deviceId"),
        uid,
        _str(params, "token"),
        _int(params, "clientTimestamp"),
        _str(params, "clientKey"),
    )


def _send(params: dict[str, Any]) -> Send:
    dup, sync_once, red_dot, no_persist = _flags(params)
    return Send(
        _setting(params),
        0,
        _str(params, "clientMsgNo"),
        _str(params, "channelId"),
        _int(params, "channelType"),
        _payload(params),
        _str(params, "msgKey"),
        _int(params, "expire"),
        _str(params, "streamNo"),
        _str(params, "topic"),
        dup,
        sync_once,
        red_dot,
        no_persist,
    )


def _recvack(params: dict[str, Any]) -> RecvAck:
    raw_id = params.get("messageId")
    if isinstance(raw_id, str) and raw_id.isdigit():
        message_id = int(raw_id)
    elif isinstance(raw_id, int) and not isinstance(raw_id, bool):
        message_id = raw_id
    else:
        raise _InvalidError("messageId must be a decimal string")
    dup, sync_once, red_dot, no_persist = _flags(params)
    return RecvAck(message_id, _int(params, "messageSeq"), dup, sync_once, red_dot, no_persist)


def _disconnect(params: dict[str, Any]) -> Disconnect:
    return Disconnect(_int(params, "reasonCode"), _str(params, "reason"))


def _ping(params: dict[str, Any]) -> Frame:
    return PING


_METHODS: Final[dict[str, Callable[[dict[str, Any]], Frame]]] = {
    "connect": _connect,
    "send": _send,
    "recvack": _recvack,
    "ping": _ping,
    "disconnect": _disconnect,
}


def parse_message(raw: bytes) -> Request | BadRequest | None:
    """Parse one JSON object (§8.1). None for a response sent by the client (ignored)."""
    try:
        message = _decode_json(raw)
    except msgspec.DecodeError as exc:
        return BadRequest(None, f"jsonrpc: invalid JSON: {exc}")
    if not isinstance(message, dict):
        return BadRequest(None, "jsonrpc: a message must be an object")
    request_id = message.get("id")
    if request_id is not None and not isinstance(request_id, str):
        return BadRequest(None, "jsonrpc: id must be a string")
    request_id = request_id or None
    if message.get("jsonrpc", "2.0") != "2.0":
        return BadRequest(request_id, "jsonrpc: version must be 2.0")
    method = message.get("method")
    if method is None:
        return None  # a response; the server sends no requests, so there is nothing to match
    if not isinstance(method, str):
        return BadRequest(request_id, "jsonrpc: method must be a string")
    handler = _METHODS.get(method)
    if handler is None:
        return BadRequest(request_id, f"jsonrpc: unknown method: {method}")
    params = message.get("params") or {}
    if not isinstance(params, dict):
        return BadRequest(request_id, "jsonrpc: params must be an object")
    try:
        frame = handler(params)
    except _InvalidError as exc:
        return BadRequest(request_id, f"jsonrpc: {method}: {exc}")
    return Request(request_id, method, frame)


# ---------------------------------------------------------------------------------------------
# Rendering (§8.2, §8.3)


def _text(message: dict[str, Any]) -> str:
    return _encode_json(message).decode()


def _reason_name(code: int) -> str:
    try:
        name = ReasonCode(code).name
    except ValueError:
        return f"Reason{code}"
    return "Reason" + "".join(part.capitalize() for part in name.split("_"))


def _header_if_set(dup: bool, sync_once: bool, red_dot: bool, no_persist: bool) -> dict[str, bool]:
    header: dict[str, bool] = {}
    if no_persist:
        header["noPersist"] = True
    if red_dot:
        header["redDot"] = True
    if sync_once:
        header["syncOnce"] = True
    if dup:
        header["dup"] = True
    return header


def render_error(request_id: str | None, message: str, code: int = 0) -> str:
    """An error reply; `id` is left out when unknown."""
    out: dict[str, Any] = {"jsonrpc": "2.0"}
    if request_id is not None:
        out["id"] = request_id
    out["error"] = {"code": code, "message": message}
    return _text(out)


def render_connack(request_id: str | None, connack: Connack) -> str:
    """The connect result; a failure becomes error{code: reason, message: ReasonName}."""
    if connack.reason_code != ReasonCode.SUCCESS:
        return render_error(request_id, _reason_name(connack.reason_code), connack.reason_code)
    result: dict[str, Any] = {}
    if connack.server_version:
        result["serverVersion"] = connack.server_version
    if connack.server_key:
        result["serverKey"] = connack.server_key
    if connack.salt:
        result["salt"] = connack.salt
    if connack.time_diff_ms:
        result["timeDiff"] = connack.time_diff_ms
    result["reasonCode"] = connack.reason_code
    result["nodeId"] = connack.node_id
    return _text({"jsonrpc": "2.0", "id": request_id, "result": result})


def render_sendack(request_id: str | None, ack: SendAck) -> str:
    """The send result: messageId as a string; `header` only when the SEND had a flag set."""
    result: dict[str, Any] = {}
    header = _header_if_set(ack.dup, ack.sync_once, ack.red_dot, ack.no_persist)
    if header:
        result["header"] = header
    result["messageId"] = str(ack.message_id)
    result["messageSeq"] = ack.message_seq
    result["reasonCode"] = ack.reason_code
    return _text({"jsonrpc": "2.0", "id": request_id, "result": result})


def render_pong(request_id: str | None) -> str:
    """The ping reply, with an explicit null result (§8.3)."""
    return _text({"jsonrpc": "2.0", "id": request_id, "result": None})


def render_recv(recv: Recv) -> str:
    """The recv notification. `recv.payload` is the plaintext; it is sent base64-encoded."""
    params: dict[str, Any] = {
        "header": {
            "noPersist": recv.no_persist,
            "redDot": recv.red_dot,
            "syncOnce": recv.sync_once,
            "dup": recv.dup,
        }
    }
    setting = recv.setting
    if setting & (SETTING_RECEIPT | SETTING_SIGNAL | SETTING_STREAM | SETTING_TOPIC):
        params["setting"] = {
            "receipt": bool(setting & SETTING_RECEIPT),
            "signal": bool(setting & SETTING_SIGNAL),
            "stream": bool(setting & SETTING_STREAM),
            "topic": bool(setting & SETTING_TOPIC),
        }
    if recv.msg_key:
        params["msgKey"] = recv.msg_key
    if recv.expire:
        params["expire"] = recv.expire
    params["messageId"] = str(recv.message_id)
    params["messageSeq"] = recv.message_seq
    if recv.client_msg_no:
        params["clientMsgNo"] = recv.client_msg_no
    if recv.stream_no:
        params["streamNo"] = recv.stream_no
    if recv.stream_flag:
        params["streamFlag"] = recv.stream_flag
    params["timestamp"] = recv.timestamp_s
    params["channelId"] = recv.channel_id
    params["channelType"] = recv.channel_type
    if recv.topic:
        params["topic"] = recv.topic
    params["fromUid"] = recv.from_uid
    params["payload"] = base64.b64encode(recv.payload).decode("ascii")
    return _text({"jsonrpc": "2.0", "method": "recv", "params": params})


def render_disconnect(disconnect: Disconnect) -> str:
    params = {"reasonCode": disconnect.reason_code, "reason": disconnect.reason}
    return _text({"jsonrpc": "2.0", "method": "disconnect", "params": params})


def render_event(event: Event) -> str:
    """The event notification; `data` becomes a JSON string (it must be UTF-8)."""
    params = {
        "id": event.event_id,
        "type": event.event_type,
        "timestamp": event.timestamp_ms,
        "data": event.data.decode("utf-8", errors="replace"),
    }
    return _text({"jsonrpc": "2.0", "method": "event", "params": params})
