"""Lean WKProto client primitives for the load generator: handshake and encrypted frames.

The bench does not use the full asyncio WKClient on the hot path: a load generator on one core
must outrun the server, so frames are built directly with the codec and the per-connection
payload ciphertext is computed once (same key, same IV, same plaintext -> same bytes, spec §5.2).
Only the msgKey (signed over clientSeq and clientMsgNo) is computed per message.
"""

from __future__ import annotations

import os
import struct

from wukongim.protocol import wkproto
from wukongim.protocol.crypto import ClientKeyPair, SessionCrypto


class Handshake:
    """Client side of CONNECT/CONNACK with X25519 (spec §3.1, §5.1)."""

    def __init__(self, uid: str, token: str, version: int, device_flag: int = 0) -> None:
        self._keys = ClientKeyPair.generate()
        self.version = version
        self.connect = wkproto.Connect(
            version=version,
            device_flag=device_flag,
            device_id=os.urandom(8).hex() + "B",
            uid=uid,
            token=token,
            client_timestamp_ms=0,
            client_key=self._keys.client_key,
        )

    def connect_bytes(self) -> bytes:
        return wkproto.encode(self.connect, self.version)

    def session(self, connack: wkproto.Connack) -> SessionCrypto:
        if connack.reason_code != wkproto.ReasonCode.SUCCESS:
            raise ConnectionError(f"CONNACK reason {connack.reason_code}")
        return self._keys.session(connack.server_key, connack.salt)


SEQ_DIGITS = 10
_SEQ_MARK = 0x5EC0FFEE
_MSG_NO_MARK = "~" * SEQ_DIGITS
_KEY_MARK = "#" * 32


class SendFrames:
    """Encrypted SEND frames for one (connection, channel) with a fixed payload.

    The codec encodes one template frame with marker values; each message then only patches
    clientSeq, the fixed-width clientMsgNo suffix and the msgKey into a copy of it.
    """

    def __init__(
        self,
        session: SessionCrypto,
        version: int,
        channel_id: str,
        channel_type: int,
        plaintext: bytes,
        msg_no_prefix: str = "",
    ) -> None:
        self._session = session
        self.msg_no_prefix = msg_no_prefix
        payload = session.encrypt_payload(plaintext)
        self._sign_tail = f"{channel_id}{channel_type}".encode() + payload
        template = wkproto.encode(
            wkproto.Send(
                setting=0,
                client_seq=_SEQ_MARK,
                client_msg_no=msg_no_prefix + _MSG_NO_MARK,
                channel_id=channel_id,
                channel_type=channel_type,
                payload=payload,
                msg_key=_KEY_MARK,
                red_dot=True,
            ),
            version,
        )
        self._template = bytearray(template)
        self._seq_at = template.index(struct.pack(">I", _SEQ_MARK))
        self._no_at = template.index((msg_no_prefix + _MSG_NO_MARK).encode()) + len(msg_no_prefix)
        self._key_at = template.index(_KEY_MARK.encode())

    def client_msg_no(self, client_seq: int) -> str:
        return f"{self.msg_no_prefix}{client_seq:0{SEQ_DIGITS}d}"

    def frame(self, client_seq: int) -> bytes:
        """The SEND with this clientSeq and clientMsgNo = prefix + zero-padded clientSeq."""
        digits = b"%010d" % client_seq
        sign = b"%d%s%s%s" % (client_seq, self.msg_no_prefix.encode(), digits, self._sign_tail)
        out = self._template
        out[self._seq_at : self._seq_at + 4] = struct.pack(">I", client_seq)
        out[self._no_at : self._no_at + SEQ_DIGITS] = digits
        out[self._key_at : self._key_at + 32] = self._session.msg_key(sign).encode()
        return bytes(out)


_RECVACK_HEAD = bytes([(int(wkproto.FrameType.RECVACK) << 4) | wkproto.FLAG_RED_DOT, 12])


def recvack_bytes(recv: wkproto.Recv) -> bytes:
    """RECVACK for a RECV, flags copied like the JS SDK does (spec §3.6)."""
    if recv.flags == wkproto.FLAG_RED_DOT:
        return _RECVACK_HEAD + struct.pack(">qI", recv.message_id, recv.message_seq)
    ack = wkproto.RecvAck(
        message_id=recv.message_id,
        message_seq=recv.message_seq,
        sync_once=recv.sync_once,
        red_dot=recv.red_dot,
        no_persist=recv.no_persist,
    )
    return wkproto.encode(ack, 0)
