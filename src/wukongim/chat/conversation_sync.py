"""Conversation read paths: /conversation/sync, /conversation/syncByChannels and the command
offline sync of /message/sync (http-api §1.8, §1.10, §2.8).

Rules of this file: pure functions over a `ConversationReader` (a `ChatStateMachine`, or a
composite over several groups that routes by slot). Unread counts are computed here from the
message log; rows only hold read pointers.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

import msgspec

from wukongim.chat.ids import CHANNEL_PERSON, SYSTEM_UID, peer_of, storage_channel_id
from wukongim.chat.model import CONV_CHAT, CONV_CMD, ConversationRow, Message

USER_MAX_CONVERSATIONS = 1000  # `conversation.userMaxCount`
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 500
NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class ConversationReader(Protocol):
    def conversation_rows(self, uid: str) -> list[ConversationRow]: ...

    def conversation_row(
        self, uid: str, storage_channel_id: str, channel_type: int
    ) -> ConversationRow | None: ...

    def messages(
        self,
        storage_channel_id: str,
        channel_type: int,
        start_seq: int,
        end_seq: int = 0,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Message]: ...

    def newest_seq_sent_by(
        self, storage_channel_id: str, channel_type: int, uid: str, min_seq: int = 0
    ) -> int: ...

    def last_seq(self, storage_channel_id: str, channel_type: int) -> int: ...


class Conversation(msgspec.Struct, frozen=True, gc=False):
    """The Conversation object of http-api §1 (before JSON). `recents` newest first; None only
    in syncByChannels for a channel that never had a message."""

    channel_id: str
    channel_type: int
    unread: int
    timestamp: int
    last_msg_seq: int
    last_client_msg_no: str
    offset_msg_seq: int
    readed_to_msg_seq: int
    version: int
    recents: list[Message] | None


class PendingCommand(msgspec.Struct, frozen=True, gc=False):
    """One not-yet-acknowledged command message of /message/sync."""

    channel_id: str  # storage id of the command channel (`...____cmd`)
    channel_type: int
    message: Message


def parse_last_msg_seqs(text: str) -> dict[tuple[str, int], int]:
    """`"channelId:channelType:lastSeq|..."` -> {(channel id, type): seq}; bad items skipped."""
    out: dict[tuple[str, int], int] = {}
    for item in text.split("|"):
        parts = item.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            continue
        try:
            out[(parts[0], int(parts[1]))] = int(parts[2])
        except ValueError:
            continue
    return out


def real_channel_id(row: ConversationRow) -> str:
    return (
        peer_of(row.channel_id, row.uid) if row.channel_type == CHANNEL_PERSON else row.channel_id
    )


def sync_conversations(
    reader: ConversationReader,
    uid: str,
    *,
    msg_count: int,
    version: int = 0,
    last_msg_seqs: Mapping[tuple[str, int], int] | None = None,
    only_unread: bool = False,
    exclude_channel_types: Collection[int] = (),
    page: int = 0,
    page_size: int = 0,
) -> list[Conversation]:
    """/conversation/sync (http-api §2.8 algorithm, steps 1-8)."""
    if msg_count <= 0:
        return []
    client_seqs = last_msg_seqs or {}
    rows = [r for r in reader.conversation_rows(uid) if r.kind == CONV_CHAT]
    rows = rows[:USER_MAX_CONVERSATIONS]
    if page > 0:
        size = min(page_size if page_size > 0 else PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
        rows = rows[(page - 1) * size : page * size]
    out: list[Conversation] = []
    for row in rows:
        real = real_channel_id(row)
        key = (real, row.channel_type)
        if row.channel_type in exclude_channel_types and key not in client_seqs:
            continue
        if row.channel_type == CHANNEL_PERSON and real == SYSTEM_UID:
            continue
        start = _window_start(row, client_seqs.get(key, 0), version > 0 or only_unread)
        recents = reader.messages(
            row.channel_id, row.channel_type, start, 0, msg_count, newest_first=True
        )
        if recents:
            out.append(_build(reader, row, real, recents))
    return out


def _window_start(row: ConversationRow, client_seq: int, unread_only: bool) -> int:
    if client_seq > 0:
        start = client_seq + 1
    elif unread_only:
        start = row.readed_to_msg_seq + 1
    else:
        start = 0
    if row.deleted_at_msg_seq > 0 and row.deleted_at_msg_seq > start:
        start = row.deleted_at_msg_seq + 1
    return start


def _build(
    reader: ConversationReader,
    row: ConversationRow | None,
    real: str,
    recents: list[Message],
    *,
    uid: str = "",
    channel_type: int = 0,
    deleted_at: int | None = None,
) -> Conversation:
    """Counters of one conversation (http-api §2.8 step 6) from its newest messages."""
    if row is not None:
        uid, channel_type = row.uid, row.channel_type
        sid = row.channel_id
        pointer = row.readed_to_msg_seq
        version = row.updated_at_ms * NS_PER_MS
        deleted = row.deleted_at_msg_seq if deleted_at is None else deleted_at
    else:
        sid = storage_channel_id(real, channel_type, uid)
        pointer = version = deleted = 0
    if not recents:
        return Conversation(real, channel_type, 0, 0, 0, "", 0, pointer, version, recents)
    newest = recents[0]
    last = newest.message_seq
    unread = max(last - pointer, 0)
    if unread > 0:
        own = reader.newest_seq_sent_by(sid, channel_type, uid, pointer + 1)
        if own > pointer and last - own < unread:
            unread = last - own
            pointer = own
    if deleted > 0:
        unread = min(unread, max(last - deleted, 0))
    if newest.from_uid == uid:
        pointer, unread = last, 0
    return Conversation(
        real,
        channel_type,
        unread,
        newest.timestamp,
        last,
        newest.client_msg_no,
        0,
        pointer,
        newest.timestamp * NS_PER_S,
        recents,
    )


def sync_by_channels(
    reader: ConversationReader,
    uid: str,
    channels: list[tuple[str, int]],
    *,
    msg_count: int = 15,
) -> list[Conversation]:
    """/conversation/syncByChannels: one object per requested (real id, type), in order."""
    out: list[Conversation] = []
    for real, ctype in channels:
        sid = storage_channel_id(real, ctype, uid)
        row = reader.conversation_row(uid, sid, ctype)
        recents: list[Message] | None = None
        if reader.last_seq(sid, ctype) > 0:
            recents = reader.messages(sid, ctype, 0, 0, max(msg_count, 0), newest_first=True)
        if recents is None:
            pointer = row.readed_to_msg_seq if row is not None else 0
            version = row.updated_at_ms * NS_PER_MS if row is not None else 0
            out.append(Conversation(real, ctype, 0, 0, 0, "", 0, pointer, version, None))
        else:
            out.append(
                _build(reader, row, real, recents, uid=uid, channel_type=ctype, deleted_at=0)
            )
    return out


def pending_commands(reader: ConversationReader, uid: str, limit: int) -> list[PendingCommand]:
    """/message/sync: for every command conversation of `uid`, the messages after its read
    pointer, ascending, concatenated across channels, at most `limit` overall."""
    out: list[PendingCommand] = []
    for row in reader.conversation_rows(uid):
        if len(out) >= limit:
            break
        if row.kind != CONV_CMD:
            continue
        found = reader.messages(
            row.channel_id, row.channel_type, row.readed_to_msg_seq + 1, 0, limit - len(out)
        )
        out.extend(PendingCommand(row.channel_id, row.channel_type, m) for m in found)
    return out
