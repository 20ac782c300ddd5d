"""Records of the chat state: channel flags and lists, stored messages, conversation rows.

Rules of this file: plain data and their byte encodings; no I/O. Stored records are msgpack
arrays (msgspec), one value per KV key (see `chat.keys` for the key layout).
"""

from __future__ import annotations

import msgspec

from wukongim.chat.ids import SYSTEM_UID

FLAG_BAN = 0x01
FLAG_DISBAND = 0x02
FLAG_SEND_BAN = 0x04
FLAG_LARGE = 0x08
FLAG_ALLOW_STRANGER = 0x10


class ChannelInfo(msgspec.Struct, frozen=True, gc=False):
    """Channel-info flags (http-api §1.2)."""

    channel_id: str
    channel_type: int
    ban: bool = False
    disband: bool = False
    send_ban: bool = False
    large: bool = False
    allow_stranger: bool = False

    def flags_byte(self) -> int:
        return (
            (FLAG_BAN if self.ban else 0)
            | (FLAG_DISBAND if self.disband else 0)
            | (FLAG_SEND_BAN if self.send_ban else 0)
            | (FLAG_LARGE if self.large else 0)
            | (FLAG_ALLOW_STRANGER if self.allow_stranger else 0)
        )

    @staticmethod
    def from_flags_byte(channel_id: str, channel_type: int, flags: int) -> ChannelInfo:
        return ChannelInfo(
            channel_id,
            channel_type,
            ban=bool(flags & FLAG_BAN),
            disband=bool(flags & FLAG_DISBAND),
            send_ban=bool(flags & FLAG_SEND_BAN),
            large=bool(flags & FLAG_LARGE),
            allow_stranger=bool(flags & FLAG_ALLOW_STRANGER),
        )


class ChannelState:
    """In-memory cache of one channel: info (None = no record) and its three uid lists.

    Dicts (not sets) keep a deterministic order: insertion order, or key order after a reload.
    `recipients` caches the subscriber tuple without the system uid; None = stale.
    """

    __slots__ = ("allow", "deny", "info", "recipients", "subscribers")

    def __init__(
        self,
        info: ChannelInfo | None,
        subscribers: dict[str, None],
        deny: dict[str, None],
        allow: dict[str, None],
    ) -> None:
        self.info = info
        self.subscribers = subscribers
        self.deny = deny
        self.allow = allow
        self.recipients: tuple[str, ...] | None = None

    def subscriber_recipients(self) -> tuple[str, ...]:
        if self.recipients is None:
            self.recipients = tuple(u for u in self.subscribers if u != SYSTEM_UID)
        return self.recipients


class MessageRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """A persisted message (value of a message key; seq and channel are in the key)."""

    message_id: int
    timestamp_s: int
    setting: int
    red_dot: bool
    sync_once: bool
    expire: int
    from_uid: str  # raw: the system uid is stored as `____system`
    client_msg_no: str
    topic: str
    stream_no: str
    payload: bytes


class Message(msgspec.Struct, frozen=True, gc=False):
    """A stored message as the read paths see it (MessageResp of http-api §1, before JSON):
    `from_uid` masked ("" for the system uid), `channel_id` rewritten per §2.5."""

    message_id: int
    message_seq: int
    client_msg_no: str
    from_uid: str
    channel_id: str
    channel_type: int
    timestamp: int
    setting: int
    red_dot: bool
    sync_once: bool
    no_persist: bool
    expire: int
    topic: str
    stream_no: str
    payload: bytes

    @property
    def message_idstr(self) -> str:
        return str(self.message_id)


class SyncResult(msgspec.Struct, frozen=True, gc=False):
    """/channel/messagesync answer (syncMessageResp): messages ascending by seq."""

    start_message_seq: int
    end_message_seq: int
    more: bool
    messages: list[Message]


CONV_CHAT = 0
CONV_CMD = 1


class ConversationRecord(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Stored value of a conversation row."""

    kind: int  # CONV_CHAT / CONV_CMD
    readed_to_msg_seq: int
    deleted_at_msg_seq: int
    created_at_ms: int
    updated_at_ms: int


class ConversationRow(msgspec.Struct, frozen=True, gc=False):
    """A conversation row (http-api §2.8). `channel_id` is the STORAGE id; use
    `chat.ids.peer_of` for the real id of person rows."""

    uid: str
    channel_id: str
    channel_type: int
    kind: int
    readed_to_msg_seq: int
    deleted_at_msg_seq: int
    created_at_ms: int
    updated_at_ms: int


message_encoder = msgspec.msgpack.Encoder()
message_decoder = msgspec.msgpack.Decoder(MessageRecord)
conversation_decoder = msgspec.msgpack.Decoder(ConversationRecord)
