"""JSON-RPC 2.0 over WebSocket (wkproto §8), as a translation layer around a binary session.

A connection whose first non-blank byte is `{` speaks JSON-RPC. Rather than a second session
type, `JsonRpcTranslator` turns each JSON request into the WKProto frame it stands for (connect
-> CONNECT, send -> SEND, recvack -> RECVACK, ping -> PING, disconnect -> DISCONNECT) and each
frame the session writes back into its JSON message (CONNACK -> connect result, SENDACK -> send
result, RECV -> `recv` notification, ...). The session marks itself `jsonrpc`, so CONNECT skips
the key exchange and payloads are never encrypted.

Our choices where the Go output is not enough for clients (§8.3): `"result": null` on replies
that carry no result (pong), and a `header` object on every `recv`. A connect failure answers an
`error` with the reason code and name, then the connection closes.

Rules of this file: the translator is pure (no I/O); `JsonRpcLink` only moves text.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from collections import deque
from typing import Any, Protocol

from wukongim.protocol.errors import LocalProtocolError, RemoteProtocolError
from wukongim.protocol.wkproto import (
    PING_BYTES,
    SETTING_RECEIPT,
    SETTING_SIGNAL,
    SETTING_STREAM,
    SETTING_TOPIC,
    Connack,
    Connect,
    Decoder,
    Disconnect,
    Event,
    Pong,
    ReasonCode,
    Recv,
    RecvAck,
    Send,
    SendAck,
    Side,
    encode,
    negotiate_version,
)

log = logging.getLogger(__name__)

_WHITESPACE = b" \t\r\n"
_json_decoder = json.JSONDecoder()
_SETTING_BITS = (
    ("receipt", SETTING_RECEIPT),
    ("signal", SETTING_SIGNAL),
    ("stream", SETTING_STREAM),
    ("topic", SETTING_TOPIC),
)


def looks_like_json(data: bytes) -> bool:
    """The first byte after JSON whitespace is `{` (wkproto §1.3)."""
    stripped = data.lstrip(_WHITESPACE)
    return stripped[:1] == b"{"


def _split(text: str) -> list[dict[str, Any]]:
    """The JSON objects of one WS message; ValueError when it holds anything else."""
    messages: list[dict[str, Any]] = []
    pos = 0
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        if pos >= n:
            return messages
        value, pos = _json_decoder.raw_decode(text, pos)  # JSONDecodeError is a ValueError
        if not isinstance(value, dict):
            raise ValueError("a JSON-RPC message must be an object")
        messages.append(value)


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _error(request_id: Any, message: str, code: int = 0) -> str:
    reply: dict[str, Any] = {"jsonrpc": "2.0"}
    if request_id is not None:
        reply["id"] = request_id
    reply["error"] = {"code": code, "message": message}
    return _dumps(reply)


class JsonRpcError(Exception):
    """A request we answer with an error object (the connection stays open)."""


class JsonRpcTranslator:
    """JSON-RPC text <-> WKProto frames for one connection."""

    def __init__(self) -> None:
        self._decoder = Decoder(Side.CLIENT)
        self._version = 5
        self._connect_id: Any = None
        self._connected = False
        self._client_seq = 0
        self._send_ids: dict[int, tuple[Any, bool]] = {}  # clientSeq -> (request id, flags?)
        self._ping_ids: deque[Any] = deque()

    # ---- client -> server --------------------------------------------------------------

    def inbound(self, text: str) -> tuple[bytes, list[str]]:
        """Frame bytes for the session and direct replies for one WS message.

        Each WS message holds whole JSON objects (one, or several back to back). Before the
        connect, anything undecodable raises RemoteProtocolError (close the socket without a
        reply, as upstream does); afterwards it gets an error reply and the connection stays.
        """
        frames: list[bytes] = []
        replies: list[str] = []
        try:
            messages = _split(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            if not self._connected:
                raise RemoteProtocolError(str(exc)) from exc
            return b"", [_error(None, f"jsonrpc: {exc}")]
        for message in messages:
            try:
                frames.append(self._request(message))
            except JsonRpcError as exc:
                if not self._connected:
                    raise RemoteProtocolError(str(exc)) from exc
                replies.append(_error(message.get("id"), str(exc)))
        return b"".join(frames), replies

    def _request(self, message: dict[str, Any]) -> bytes:
        if message.get("jsonrpc", "2.0") != "2.0":
            raise JsonRpcError("jsonrpc: unsupported version")
        method = message.get("method")
        params = message.get("params") or {}
        if not isinstance(params, dict):
            raise JsonRpcError("jsonrpc: params must be an object")
        request_id = message.get("id")
        if not self._connected:
            if method != "connect":
                raise JsonRpcError("jsonrpc: the first message must be connect")
            return self._connect(request_id, params)
        if method == "send":
            return self._send(request_id, params)
        if method == "recvack":
            return self._recvack(params)
        if method == "ping":
            self._ping_ids.append(request_id)
            return PING_BYTES
        if method == "disconnect":
            return encode(Disconnect(int(params.get("reasonCode", 0)), ""), self._version)
        raise JsonRpcError(f"jsonrpc: unknown method: {method}")

    def _connect(self, request_id: Any, params: dict[str, Any]) -> bytes:
        try:
            version = int(params.get("version") or 5)
            frame = Connect(
                version,
                int(params.get("deviceFlag", 0)),
                str(params.get("deviceId", "")),
                str(params["uid"]),
                str(params.get("token", "")),
                int(params.get("clientTimestamp", 0)),
                "",
            )
            data = encode(frame, version)
        except (KeyError, TypeError, ValueError, LocalProtocolError) as exc:
            raise JsonRpcError(f"jsonrpc: bad connect params: {exc}") from exc
        self._connect_id = request_id
        self._connected = True
        self._version = negotiate_version(version)
        self._decoder.version = self._version
        return data

    def _send(self, request_id: Any, params: dict[str, Any]) -> bytes:
        header = params.get("header") or {}
        setting = params.get("setting") or {}
        try:
            payload = _payload_bytes(params.get("payload"))
            self._client_seq = client_seq = (self._client_seq % 0xFFFFFFFF) + 1
            frame = Send(
                setting=sum(bit for name, bit in _SETTING_BITS if setting.get(name)),
                client_seq=client_seq,
                client_msg_no=str(params.get("clientMsgNo") or os.urandom(16).hex()),
                channel_id=str(params["channelId"]),
                channel_type=int(params["channelType"]),
                payload=payload,
                expire=int(params.get("expire", 0)),
                stream_no=str(params.get("streamNo", "")),
                topic=str(params.get("topic", "")),
                dup=bool(header.get("dup")),
                sync_once=bool(header.get("syncOnce")),
                red_dot=bool(header.get("redDot")),
                no_persist=bool(header.get("noPersist")),
            )
            data = encode(frame, self._version)
        except (KeyError, TypeError, ValueError, AttributeError, LocalProtocolError) as exc:
            raise JsonRpcError(f"jsonrpc: bad send params: {exc}") from exc
        self._send_ids[client_seq] = (request_id, bool(frame.flags))
        return data

    def _recvack(self, params: dict[str, Any]) -> bytes:
        header = params.get("header") or {}
        try:
            frame = RecvAck(
                int(params["messageId"]),
                int(params.get("messageSeq", 0)),
                sync_once=bool(header.get("syncOnce")),
                red_dot=bool(header.get("redDot")),
                no_persist=bool(header.get("noPersist")),
            )
            return encode(frame, self._version)
        except (KeyError, TypeError, ValueError, AttributeError, LocalProtocolError) as exc:
            raise JsonRpcError(f"jsonrpc: bad recvack params: {exc}") from exc

    # ---- server -> client --------------------------------------------------------------

    def outbound(self, frames: list[bytes]) -> list[str]:
        """The JSON messages for frames the session wrote (one text per frame)."""
        out: list[str] = []
        for frame in self._decoder.feed(b"".join(frames)):
            text = self._reply(frame)
            if text is not None:
                out.append(text)
        return out

    def _reply(self, frame: object) -> str | None:
        if isinstance(frame, Recv):
            return _dumps({"jsonrpc": "2.0", "method": "recv", "params": _recv_params(frame)})
        if isinstance(frame, SendAck):
            request_id, with_header = self._send_ids.pop(frame.client_seq, (None, False))
            result: dict[str, Any] = {}
            if with_header:
                result["header"] = _header(frame)
            result["messageId"] = str(frame.message_id)
            result["messageSeq"] = frame.message_seq
            result["reasonCode"] = frame.reason_code
            return _dumps({"jsonrpc": "2.0", "id": request_id, "result": result})
        if isinstance(frame, Pong):
            ping_id = self._ping_ids.popleft() if self._ping_ids else None
            return _dumps({"jsonrpc": "2.0", "id": ping_id, "result": None})
        if isinstance(frame, Connack):
            return self._connect_reply(frame)
        if isinstance(frame, Disconnect):
            params = {"reasonCode": frame.reason_code, "reason": frame.reason}
            return _dumps({"jsonrpc": "2.0", "method": "disconnect", "params": params})
        if isinstance(frame, Event):
            params = {
                "id": frame.event_id,
                "type": frame.event_type,
                "timestamp": frame.timestamp_ms,
                "data": frame.data.decode(errors="replace"),
            }
            return _dumps({"jsonrpc": "2.0", "method": "event", "params": params})
        return None

    def _connect_reply(self, frame: Connack) -> str:
        if frame.reason_code != ReasonCode.SUCCESS:
            try:
                name = ReasonCode(frame.reason_code).name
            except ValueError:
                name = "UNKNOWN"
            return _error(self._connect_id, f"Reason{_camel(name)}", frame.reason_code)
        result: dict[str, Any] = {}
        if frame.server_version:
            result["serverVersion"] = frame.server_version
        result["timeDiff"] = frame.time_diff_ms
        result["reasonCode"] = frame.reason_code
        result["nodeId"] = frame.node_id
        return _dumps({"jsonrpc": "2.0", "id": self._connect_id, "result": result})


def _camel(enum_name: str) -> str:
    return "".join(part.capitalize() for part in enum_name.split("_"))


def _payload_bytes(payload: Any) -> bytes:
    """A base64 string (v2.2.3+) or, leniently, a JSON value (older servers) -> bytes."""
    if isinstance(payload, str):
        try:
            return base64.b64decode(payload, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"payload is not base64: {exc}") from exc
    if payload is None:
        raise ValueError("payload is required")
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _header(frame: Recv | SendAck) -> dict[str, bool]:
    return {
        "noPersist": frame.no_persist,
        "redDot": frame.red_dot,
        "syncOnce": frame.sync_once,
        "dup": frame.dup,
    }


def _recv_params(frame: Recv) -> dict[str, Any]:
    params: dict[str, Any] = {"header": _header(frame)}
    if frame.setting:
        params["setting"] = {name: bool(frame.setting & bit) for name, bit in _SETTING_BITS}
    if frame.expire:
        params["expire"] = frame.expire
    params["messageId"] = str(frame.message_id)
    params["messageSeq"] = frame.message_seq
    params["clientMsgNo"] = frame.client_msg_no
    if frame.stream_no:
        params["streamNo"] = frame.stream_no
    params["timestamp"] = frame.timestamp_s
    params["channelId"] = frame.channel_id
    params["channelType"] = frame.channel_type
    if frame.topic:
        params["topic"] = frame.topic
    params["fromUid"] = frame.from_uid
    params["payload"] = base64.b64encode(frame.payload).decode()
    return params


class TextSink(Protocol):
    """What `JsonRpcLink` needs from the WebSocket link underneath."""

    remote: str

    def write_texts(self, texts: list[str]) -> None: ...

    def buffered_bytes(self) -> int: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class JsonRpcLink:
    """A session `Link` that writes JSON-RPC text instead of binary frames."""

    __slots__ = ("_inner", "remote", "translator")

    def __init__(self, inner: TextSink, translator: JsonRpcTranslator) -> None:
        self._inner = inner
        self.translator = translator
        self.remote = inner.remote

    def write_frames(self, frames: list[bytes]) -> None:
        texts = self.translator.outbound(frames)
        if texts:
            self._inner.write_texts(texts)

    def buffered_bytes(self) -> int:
        return self._inner.buffered_bytes()

    def close(self) -> None:
        self._inner.close()

    def abort(self) -> None:
        self._inner.abort()
