"""Conversation rows (http-api §2.8): creation, read pointers, deletion marks.

Rules of this file: deterministic (times come from the commands); rows are cached in memory and
loaded lazily; every write goes into the apply batch set in `ConversationCache.batch`. Rows do
not hold the last message or the unread count: read paths compute them from the message log.
"""

from __future__ import annotations

from wukongim.chat.commands import ReadMode, SetConversationRead
from wukongim.chat.ids import SLOT_COUNT, is_cmd_channel
from wukongim.chat.keys import (
    conversation_key,
    conversation_key_channel,
    conversation_prefix_in_slot,
    prefix_end,
)
from wukongim.chat.model import (
    CONV_CHAT,
    CONV_CMD,
    ConversationRecord,
    ConversationRow,
    conversation_decoder,
    message_encoder,
)
from wukongim.store.interfaces import KVStore, WriteBatch


def row_of(uid: str, sid: str, ctype: int, record: ConversationRecord) -> ConversationRow:
    return ConversationRow(
        uid,
        sid,
        ctype,
        record.kind,
        record.readed_to_msg_seq,
        record.deleted_at_msg_seq,
        record.created_at_ms,
        record.updated_at_ms,
    )


def set_unread_target(unread: int, last_seq: int) -> int:
    """/conversations/setUnread target pointer (clamped at 0 where upstream underflows)."""
    if unread == 0:
        return last_seq
    if 0 < unread <= last_seq:
        return last_seq - unread
    return max(last_seq - 1, 0)


class ConversationCache:
    def __init__(self, kv: KVStore, cf: str) -> None:
        self._kv = kv
        self._cf = cf
        self._rows: dict[tuple[str, str, int], ConversationRecord | None] = {}
        self.batch: WriteBatch | None = None  # set by the state machine during apply

    def get(self, uid: str, sid: str, ctype: int) -> ConversationRecord | None:
        key = (uid, sid, ctype)
        if key in self._rows:
            return self._rows[key]
        raw = self._kv.get(self._cf, conversation_key(uid, sid, ctype))
        record = None if raw is None else conversation_decoder.decode(raw)
        self._rows[key] = record
        return record

    def _put(self, uid: str, sid: str, ctype: int, record: ConversationRecord) -> None:
        assert self.batch is not None
        self._rows[(uid, sid, ctype)] = record
        self.batch.put(self._cf, conversation_key(uid, sid, ctype), message_encoder.encode(record))

    def create_if_missing(
        self, uid: str, sid: str, ctype: int, *, kind: int, pointer: int, now_ms: int
    ) -> None:
        if self.get(uid, sid, ctype) is None:
            self._put(uid, sid, ctype, ConversationRecord(kind, pointer, 0, now_ms, now_ms))

    def join(self, uid: str, cid: str, ctype: int, last_seq: int, now_ms: int) -> None:
        """Subscriber added: create or overwrite the chat row with pointer = last seq."""
        current = self.get(uid, cid, ctype)
        if current is None:
            record = ConversationRecord(CONV_CHAT, last_seq, 0, now_ms, now_ms)
        else:
            record = ConversationRecord(
                CONV_CHAT, last_seq, current.deleted_at_msg_seq, current.created_at_ms, now_ms
            )
        self._put(uid, cid, ctype, record)

    def delete_row(self, uid: str, sid: str, ctype: int) -> None:
        if self.get(uid, sid, ctype) is not None:
            assert self.batch is not None
            self._rows[(uid, sid, ctype)] = None
            self.batch.delete(self._cf, conversation_key(uid, sid, ctype))

    def set_read(self, cmd: SetConversationRead, last_seq: int) -> None:
        """Move the read pointer forward (never back); create the row if missing."""
        uid, sid, ctype = cmd.uid, cmd.channel_id, cmd.channel_type
        if cmd.mode == ReadMode.TO_SEQ:
            target = cmd.seq
        elif cmd.mode == ReadMode.CLEAR:
            target = last_seq
        else:
            target = set_unread_target(cmd.unread, last_seq)
        current = self.get(uid, sid, ctype)
        if current is None:
            if cmd.mode == ReadMode.CLEAR and last_seq == 0:
                return
            kind = CONV_CMD if is_cmd_channel(sid) else CONV_CHAT
            self._put(uid, sid, ctype, ConversationRecord(kind, target, 0, cmd.now_ms, cmd.now_ms))
        elif target > current.readed_to_msg_seq:
            self._put(
                uid,
                sid,
                ctype,
                ConversationRecord(
                    current.kind,
                    target,
                    current.deleted_at_msg_seq,
                    current.created_at_ms,
                    cmd.now_ms,
                ),
            )

    def mark_deleted(self, uid: str, sid: str, ctype: int, last_seq: int) -> None:
        """/conversations/delete: hide until a newer message (no updated_at bump)."""
        current = self.get(uid, sid, ctype)
        if current is not None:
            self._put(
                uid,
                sid,
                ctype,
                ConversationRecord(
                    current.kind,
                    current.readed_to_msg_seq,
                    last_seq,
                    current.created_at_ms,
                    current.updated_at_ms,
                ),
            )

    def rows_of(self, uid: str) -> list[ConversationRow]:
        """All rows of `uid` in the store, newest `updated_at` first (ties: key order).
        Scans the uid's prefix in each of the 256 slots; call outside apply."""
        rows: list[ConversationRow] = []
        for slot in range(SLOT_COUNT):
            prefix = conversation_prefix_in_slot(slot, uid)
            for key, raw in self._kv.scan(self._cf, prefix, prefix_end(prefix)):
                sid, ctype = conversation_key_channel(prefix, key)
                record = conversation_decoder.decode(raw)
                rows.append(row_of(uid, sid, ctype, record))
        rows.sort(key=lambda r: -r.updated_at_ms)
        return rows
