"""Per-channel message logs: seq counters, appends and range reads.

Rules of this file: KV access only through the KVStore Protocol; writes go into the apply batch
set in `MessageLog.batch`. Seq counters are cached per stored channel and loaded lazily from the
newest message key, so no separate counter is written: one KV put per persisted message.
"""

from __future__ import annotations

import struct

from wukongim.chat.commands import SendMessage
from wukongim.chat.keys import SEQ_END, message_prefix, seq_bytes, seq_of_key
from wukongim.chat.model import Message, MessageRecord, message_decoder, message_encoder
from wukongim.chat.reads import message_view
from wukongim.store.interfaces import KVStore, WriteBatch

_encode = message_encoder.encode
_pack_seq = struct.Struct(">I").pack
_decode = message_decoder.decode


class _Seq:
    __slots__ = ("last", "prefix")

    def __init__(self, prefix: bytes, last: int) -> None:
        self.prefix = prefix
        self.last = last


class MessageLog:
    def __init__(self, kv: KVStore, cf: str) -> None:
        self._kv = kv
        self._cf = cf
        self._seqs: dict[tuple[str, int], _Seq] = {}
        self.batch: WriteBatch | None = None  # set by the state machine during apply

    def append(self, sid: str, ctype: int, cmd: SendMessage) -> int:
        """Store `cmd` as the next message of (sid, ctype); returns its seq."""
        seq_state = self._seqs.get((sid, ctype))
        if seq_state is None:
            seq_state = self._load(sid, ctype)
        seq_state.last += 1
        record = MessageRecord(
            cmd.message_id,
            cmd.timestamp_s,
            cmd.setting,
            cmd.red_dot,
            cmd.sync_once,
            cmd.expire,
            cmd.from_uid,
            cmd.client_msg_no,
            cmd.topic,
            cmd.stream_no,
            cmd.payload,
        )
        assert self.batch is not None
        self.batch.put(self._cf, seq_state.prefix + _pack_seq(seq_state.last), _encode(record))
        return seq_state.last

    def _load(self, sid: str, ctype: int) -> _Seq:
        prefix = message_prefix(sid, ctype)
        last = 0
        for key, _ in self._kv.scan(self._cf, prefix, prefix + SEQ_END, reverse=True, limit=1):
            last = seq_of_key(key)
        seq_state = self._seqs[(sid, ctype)] = _Seq(prefix, last)
        return seq_state

    def last_seq(self, sid: str, ctype: int) -> int:
        seq_state = self._seqs.get((sid, ctype))
        if seq_state is None:
            seq_state = self._load(sid, ctype)
        return seq_state.last

    def message(self, sid: str, ctype: int, seq: int) -> Message | None:
        raw = self._kv.get(self._cf, message_prefix(sid, ctype) + seq_bytes(seq))
        return None if raw is None else message_view(_decode(raw), seq, sid, ctype)

    def messages(
        self,
        sid: str,
        ctype: int,
        start_seq: int,
        end_seq: int = 0,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Message]:
        """start_seq <= seq < end_seq (0 = unbounded), ascending or newest first, <= limit."""
        prefix = message_prefix(sid, ctype)
        start = prefix + seq_bytes(max(start_seq, 0))
        end = prefix + seq_bytes(end_seq) if end_seq > 0 else prefix + SEQ_END
        scan = self._kv.scan(self._cf, start, end, reverse=newest_first, limit=limit)
        return [message_view(_decode(raw), seq_of_key(key), sid, ctype) for key, raw in scan]

    def newest_seq_sent_by(self, sid: str, ctype: int, uid: str, min_seq: int = 0) -> int:
        prefix = message_prefix(sid, ctype)
        start = prefix + seq_bytes(max(min_seq, 0))
        for key, raw in self._kv.scan(self._cf, start, prefix + SEQ_END, reverse=True):
            if _decode(raw).from_uid == uid:
                return seq_of_key(key)
        return 0

    def find(
        self,
        sid: str,
        ctype: int,
        *,
        message_id: int | None = None,
        client_msg_no: str | None = None,
        newest: bool = False,
    ) -> Message | None:
        """The lowest-seq (or newest) message of the channel with this id / client_msg_no.
        A scan of the channel (no secondary index): O(messages)."""
        prefix = message_prefix(sid, ctype)
        for key, raw in self._kv.scan(self._cf, prefix, prefix + SEQ_END, reverse=newest):
            record = _decode(raw)
            if message_id is not None and record.message_id != message_id:
                continue
            if client_msg_no is not None and record.client_msg_no != client_msg_no:
                continue
            return message_view(record, seq_of_key(key), sid, ctype)
        return None
