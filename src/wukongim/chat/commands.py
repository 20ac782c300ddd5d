"""Typed commands of the chat state machine, their results, and the log-entry codec.

Rules of this file: types and the codec only. No I/O, no clock: every time value a command needs
(`timestamp_s`, `now_ms`) and every message id is stamped by the leader before proposing, so that
applying a command gives the same result on every replica.

Public API
----------
Commands (msgspec Structs: frozen, slotted, encoded as compact msgpack arrays with an int tag):

* `SendMessage`              -> `SendResult`
* `SetUserToken`             -> `CommandResult` (reason 19/24 when the user's person channel is
                                banned/disbanded: the token is then NOT stored)
* `QuitDevice`               -> `CommandResult` (ok=False when there was no device record: the
                                caller then skips the kick, as upstream does)
* `UpsertChannel`            (/channel)               -> `CommandResult`
* `SetChannelInfo`           (/channel/info)          -> `CommandResult`
* `DeleteChannel`            (/channel/delete)        -> `CommandResult`
* `AddSubscribers`, `RemoveSubscribers`, `RemoveAllSubscribers`
* `AddToList`, `SetList`, `RemoveFromList`, `ClearList` with `list_kind` DENY (blacklist) or
  ALLOW (whitelist)
* `AddSystemUids`, `RemoveSystemUids`
* `SetConversationRead` (RECVACK of a SyncOnce message from a master device, clearUnread,
  setUnread; see `ReadMode`), `DeleteConversation`

`encode_commands(Sequence[Command]) -> bytes` / `decode_commands(bytes) -> list[Command]`: one Raft
entry carries a batch. Errors a client must see as HTTP 400 are found BEFORE proposing with the
`validate_*` functions of `chat.validation`; apply never raises for user mistakes.

Channel ids in conversation commands are STORAGE ids (person: `a@b`, command channel: `...____cmd`);
use `chat.ids.storage_channel_id` to derive them. `SendMessage.channel_id` is the id as the client
addressed it (the peer uid for person chats).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import msgspec

# Reason codes (spec wkproto §6.1) used by the chat domain.
REASON_SUCCESS = 1
REASON_SUBSCRIBER_NOT_EXIST = 3
REASON_IN_BLACKLIST = 4
REASON_NOT_IN_WHITELIST = 13
REASON_SYSTEM_ERROR = 15
REASON_BAN = 19
REASON_DISBAND = 24
REASON_SEND_BAN = 25


class ListKind(enum.IntEnum):
    DENY = 0  # blacklist
    ALLOW = 1  # whitelist


class ReadMode(enum.IntEnum):
    """How `SetConversationRead` picks the new read pointer (it only ever moves forward)."""

    TO_SEQ = 0  # RECVACK of a SyncOnce message: pointer := max(pointer, seq); row must exist
    CLEAR = 1  # /conversations/clearUnread: pointer := last seq; creates the row if missing
    SET_UNREAD = 2  # /conversations/setUnread: target from `unread` (http-api §1.10)


class _Cmd(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Base of every command (tagged with a small int in the encoded form)."""


class SendMessage(_Cmd, tag=1, frozen=True):
    from_uid: str
    channel_id: str  # as the client addressed it: the peer uid for person chats
    channel_type: int
    client_msg_no: str
    payload: bytes
    message_id: int  # stamped by the leader (snowflake)
    timestamp_s: int  # stamped by the leader
    setting: int = 0
    no_persist: bool = False
    red_dot: bool = False
    sync_once: bool = False
    expire: int = 0
    topic: str = ""
    stream_no: str = ""
    from_api: bool = False  # HTTP API / system device: skips the sender checks (http-api §2.7)
    # `subscribers` sends of /message/send (http-api §2.11): channel_id is then the temp command
    # channel (`chat.ids.temp_cmd_channel_id`) or `systemcmdonline`, type 8, and exactly these
    # uids receive it.
    subscribers: tuple[str, ...] = ()


class SetUserToken(_Cmd, tag=2, frozen=True):
    uid: str
    device_flag: int
    device_level: int
    token: str


class QuitDevice(_Cmd, tag=3, frozen=True):
    uid: str
    device_flag: int  # -1 = APP, WEB and PC


class UpsertChannel(_Cmd, tag=4, frozen=True):
    """/channel: full overwrite of the five flags, optional reset, then add subscribers."""

    channel_id: str
    channel_type: int
    ban: bool = False
    disband: bool = False
    send_ban: bool = False
    large: bool = False
    allow_stranger: bool = False
    reset: bool = False
    subscribers: tuple[str, ...] = ()
    now_ms: int = 0  # conversation rows' updated_at


class SetChannelInfo(_Cmd, tag=5, frozen=True):
    """/channel/info: full overwrite of the five flags, nothing else."""

    channel_id: str
    channel_type: int
    ban: bool = False
    disband: bool = False
    send_ban: bool = False
    large: bool = False
    allow_stranger: bool = False


class DeleteChannel(_Cmd, tag=6, frozen=True):
    """/channel/delete: sets disband on an existing channel (no-op otherwise)."""

    channel_id: str
    channel_type: int


class AddSubscribers(_Cmd, tag=7, frozen=True):
    """/channel/subscriber_add: creates empty channel info if missing, then like /channel."""

    channel_id: str
    channel_type: int
    subscribers: tuple[str, ...]
    reset: bool = False
    now_ms: int = 0


class RemoveSubscribers(_Cmd, tag=8, frozen=True):
    channel_id: str
    channel_type: int
    subscribers: tuple[str, ...]


class RemoveAllSubscribers(_Cmd, tag=9, frozen=True):
    channel_id: str
    channel_type: int


class AddToList(_Cmd, tag=10, frozen=True):
    list_kind: ListKind
    channel_id: str
    channel_type: int
    uids: tuple[str, ...]
    now_ms: int = 0


class SetList(_Cmd, tag=11, frozen=True):
    list_kind: ListKind
    channel_id: str
    channel_type: int
    uids: tuple[str, ...]
    now_ms: int = 0


class RemoveFromList(_Cmd, tag=12, frozen=True):
    list_kind: ListKind
    channel_id: str
    channel_type: int
    uids: tuple[str, ...]
    now_ms: int = 0


class ClearList(_Cmd, tag=13, frozen=True):
    list_kind: ListKind
    channel_id: str
    channel_type: int


class AddSystemUids(_Cmd, tag=14, frozen=True):
    uids: tuple[str, ...]


class RemoveSystemUids(_Cmd, tag=15, frozen=True):
    uids: tuple[str, ...]


class SetConversationRead(_Cmd, tag=16, frozen=True):
    uid: str
    channel_id: str  # STORAGE id (person `a@b`, command channels with `____cmd`)
    channel_type: int
    mode: ReadMode
    seq: int = 0  # for TO_SEQ
    unread: int = 0  # for SET_UNREAD
    now_ms: int = 0


class DeleteConversation(_Cmd, tag=17, frozen=True):
    uid: str
    channel_id: str  # STORAGE id
    channel_type: int
    now_ms: int = 0


Command = (
    SendMessage
    | SetUserToken
    | QuitDevice
    | UpsertChannel
    | SetChannelInfo
    | DeleteChannel
    | AddSubscribers
    | RemoveSubscribers
    | RemoveAllSubscribers
    | AddToList
    | SetList
    | RemoveFromList
    | ClearList
    | AddSystemUids
    | RemoveSystemUids
    | SetConversationRead
    | DeleteConversation
)


class SendResult(msgspec.Struct, frozen=True, gc=False):
    """Outcome of a `SendMessage`. On rejection: reason != 1, seq 0 and no recipients.

    `message_seq` is 0 for `no_persist` messages (they are still delivered). `recipients` are the
    uids that get a RECV (the system uid never does); the sender's own uid is included when the
    sender should get copies on its other devices (see `chat.fanout`).
    """

    reason_code: int
    message_id: int
    message_seq: int
    storage_channel_id: str
    recipients: tuple[str, ...]
    timestamp_s: int

    @property
    def ok(self) -> bool:
        return self.reason_code == REASON_SUCCESS


class CommandResult(msgspec.Struct, frozen=True, gc=False):
    """Outcome of every command except `SendMessage`. `reason_code` is a wkproto reason code
    (1 = success); `error` a short text for logs / ERR bodies.

    Results are msgspec Structs too, not dataclasses: on the hot path a frozen dataclass
    __init__ costs ~1.5 µs, a Struct ~0.1 µs."""

    reason_code: int = REASON_SUCCESS
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.reason_code == REASON_SUCCESS


OK = CommandResult()
Result = SendResult | CommandResult

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Command])


def encode_commands(commands: Sequence[Command]) -> bytes:
    """One Raft entry's payload: the batch as a msgpack array of tagged arrays."""
    return _encoder.encode(commands)


def decode_commands(data: bytes) -> list[Command]:
    """Inverse of `encode_commands`. Raises `msgspec.DecodeError` on corrupt data (our bug)."""
    return _decoder.decode(data)
