"""The chat state machine of one Raft group: users and tokens, channels, subscribers, deny/allow
lists, system uids, per-channel seqs, messages and conversation rows.

Rules of this file: deterministic. `apply` reads no clock and no randomness (the leader stamped
ids and times into the commands) and decides admission itself, so every replica computes the
same results. All writes of one `apply` go into ONE KV write batch (sync=False) together with the
applied index. Hot state is cached in memory (`ChannelCache`, `MessageLog`, `ConversationCache`)
and loaded lazily from the KV store, so a new machine over the same store sees everything applied
before. Every mutation loads the cached entry first, so reads inside a batch see the batch's own
earlier writes.

Public API
----------
* `ChatStateMachine(kv, config=ChatConfig())`
* `apply(index, commands) -> list[SendResult | CommandResult]`: one result per command, in
  order. An index <= `applied_index()` is a replay after a restart: skipped, returns [].
* `plan_send(cmd) -> SendResult`: admission + recipients of a send, no writes (NoPersist).
* `snapshot() -> bytes` / `restore(bytes)`: export / import of the group's slots.
* `ChatGroupMachine(machine)`: the node's `apply(index, data: bytes)` / snapshot / restore shape.
* reads (committed state; call on the group leader):
  `applied_index()`, `user_token(uid, device_flag) -> (token, level) | None`,
  `channel_info(cid, ctype) -> ChannelInfo | None`, `channel_state(cid, ctype)`,
  `is_user_banned(uid)`, `is_user_disbanded(uid)`, `subscribers(cid, ctype)`,
  `denylist(...)`, `allowlist(...)`, `system_uids()`, `is_system_uid(uid)`,
  `last_seq(sid, ctype)`,
  `sync_messages(login_uid, channel_id, ctype, start, end, limit, pull_mode) -> SyncResult`,
  `messages(sid, ctype, start_seq, end_seq, limit, newest_first=) -> list[Message]`,
  `message(sid, ctype, seq) -> Message | None`, `newest_seq_sent_by(sid, ctype, uid, min_seq)`,
  `find_message(sid, ctype, message_id=, client_msg_no=, newest=) -> Message | None`,
  `conversation_rows(uid) -> list[ConversationRow]` (updated_at desc),
  `conversation_row(uid, sid, ctype) -> ConversationRow | None`
  (`chat.conversation_sync` builds /conversation/sync and /message/sync on these).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from wukongim.chat import snapshots
from wukongim.chat.admission import admit
from wukongim.chat.channels import ALLOWLIST, DENYLIST, SUBSCRIBERS, ChannelCache
from wukongim.chat.commands import (
    OK,
    REASON_BAN,
    REASON_DISBAND,
    REASON_SUCCESS,
    AddSubscribers,
    AddSystemUids,
    AddToList,
    ClearList,
    Command,
    CommandResult,
    DeleteChannel,
    DeleteConversation,
    ListKind,
    QuitDevice,
    RemoveAllSubscribers,
    RemoveFromList,
    RemoveSubscribers,
    RemoveSystemUids,
    Result,
    SendMessage,
    SendResult,
    SetChannelInfo,
    SetConversationRead,
    SetList,
    SetUserToken,
    UpsertChannel,
    decode_commands,
)
from wukongim.chat.conversations import ConversationCache, row_of
from wukongim.chat.ids import (
    CHANNEL_AGENT,
    CHANNEL_CUSTOMER_SERVICE,
    CHANNEL_LIVE,
    CHANNEL_PERSON,
    CHANNEL_VISITORS,
    SLOT_COUNT,
    SYSTEM_UID,
    base_channel_id,
    is_cmd_channel,
    person_channel_id,
    storage_channel_id,
)
from wukongim.chat.keys import (
    applied_key,
    device_key,
    list_member_key,
    list_member_uid,
    prefix_end,
    system_uids_prefix,
)
from wukongim.chat.message_log import MessageLog
from wukongim.chat.model import (
    CONV_CHAT,
    CONV_CMD,
    ChannelInfo,
    ChannelState,
    ConversationRow,
    Message,
    SyncResult,
)
from wukongim.chat.reads import sync_window
from wukongim.store.interfaces import KVStore, WriteBatch

logger = logging.getLogger(__name__)

_U64 = struct.Struct(">Q")
_NO_CONVERSATION_TYPES = frozenset({7, 8, 9})
_DEVICE_FLAGS_ALL = (0, 1, 2)
_LIST_TAG = {ListKind.DENY: DENYLIST, ListKind.ALLOW: ALLOWLIST}
_device_encoder = msgspec.msgpack.Encoder()
_device_decoder = msgspec.msgpack.Decoder(tuple[str, int])
SYNC_LIMIT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class ChatConfig:
    whitelist_off_of_person: bool = True  # `whitelistOffOfPerson`
    group_id: int = 0  # the Raft group: keys the applied index and system uids
    cf: str = "chat"  # column family of the chat state
    # Hash slots owned by the group, for snapshot export/import (None = all 256).
    slots: tuple[int, ...] | None = None


class ChatStateMachine:
    def __init__(self, kv: KVStore, config: ChatConfig | None = None) -> None:
        self._kv = kv
        self._config = config or ChatConfig()
        self._cf = self._config.cf
        self._whitelist_off = self._config.whitelist_off_of_person
        self._batch: WriteBatch | None = None
        self._load()
        self._handlers: dict[type[Any], Callable[[Any], Result]] = {
            SendMessage: self._send,
            SetUserToken: self._set_user_token,
            QuitDevice: self._quit_device,
            UpsertChannel: self._upsert_channel,
            SetChannelInfo: self._set_channel_info,
            DeleteChannel: self._delete_channel,
            AddSubscribers: self._add_subscribers,
            RemoveSubscribers: self._remove_subscribers,
            RemoveAllSubscribers: self._remove_all_subscribers,
            AddToList: self._add_to_list,
            SetList: self._set_list,
            RemoveFromList: self._remove_from_list,
            ClearList: self._clear_list,
            AddSystemUids: self._add_system_uids,
            RemoveSystemUids: self._remove_system_uids,
            SetConversationRead: self._set_conversation_read,
            DeleteConversation: self._delete_conversation,
        }

    def _load(self) -> None:
        """(Re)start from the KV store: the applied index and system uids now, the rest lazily."""
        kv, cf = self._kv, self._cf
        self._channels = ChannelCache(kv, cf)
        self._channel_states = self._channels.states
        self._log = MessageLog(kv, cf)
        self._convs = ConversationCache(kv, cf)
        self._devices: dict[tuple[str, int], tuple[str, int] | None] = {}
        raw = kv.get(cf, applied_key(self._config.group_id))
        self._applied = 0 if raw is None else int(_U64.unpack(raw)[0])
        prefix = system_uids_prefix(self._config.group_id)
        self._system_uids: dict[str, None] = {
            list_member_uid(prefix, k): None for k, _ in kv.scan(cf, prefix, prefix_end(prefix))
        }

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        """Everything of this group (its slots, applied index, system uids) as bytes.
        Cost is proportional to the whole state, messages included."""
        return snapshots.export_state(self._kv, self._cf, self._config.group_id, self._slots())

    def restore(self, data: bytes) -> None:
        """Replace this group's state with a `snapshot()` (same or another node) and reload."""
        snapshots.import_state(self._kv, self._cf, self._config.group_id, self._slots(), data)
        self._load()

    def _slots(self) -> tuple[int, ...]:
        slots = self._config.slots
        return tuple(range(SLOT_COUNT)) if slots is None else slots

    # ------------------------------------------------------------------ apply

    def apply(self, index: int, commands: Iterable[Command]) -> list[Result]:
        """Apply one committed log entry. Returns one result per command, in order.

        An entry at or below `applied_index()` was applied before a restart (the KV state is
        ahead of the Raft snapshot): it is skipped and [] returned. User mistakes never raise
        (they become reason codes); an exception here is our bug and leaves the caches ahead of
        the store: drop this machine and build a new one over the same store.
        """
        if index <= self._applied:
            logger.debug("skipping entry %d: already applied up to %d", index, self._applied)
            return []
        batch = self._kv.batch()
        self._set_batch(batch)
        handlers = self._handlers
        try:
            results = [handlers[type(cmd)](cmd) for cmd in commands]
        finally:
            self._set_batch(None)
        batch.put(self._cf, applied_key(self._config.group_id), _U64.pack(index))
        self._kv.write(batch, sync=False)
        self._applied = index
        return results

    def _set_batch(self, batch: WriteBatch | None) -> None:
        self._batch = batch
        self._channels.batch = batch
        self._log.batch = batch
        self._convs.batch = batch

    def _put(self, key: bytes, value: bytes) -> None:
        assert self._batch is not None
        self._batch.put(self._cf, key, value)

    # ------------------------------------------------------------------ send

    def _send(self, cmd: SendMessage) -> SendResult:
        reason, sid, recipients = self._plan_send(cmd)
        if reason != REASON_SUCCESS:
            return SendResult(reason, cmd.message_id, 0, sid, (), cmd.timestamp_s)
        seq = 0
        if not cmd.no_persist:
            ctype = cmd.channel_type
            seq = self._log.append(sid, ctype, cmd)
            if ctype not in _NO_CONVERSATION_TYPES:
                self._touch_conversations(cmd, sid, seq, recipients)
        return SendResult(REASON_SUCCESS, cmd.message_id, seq, sid, recipients, cmd.timestamp_s)

    def plan_send(self, cmd: SendMessage) -> SendResult:
        """Admission and recipients of `cmd` against the committed state, writing nothing:
        what `apply` would decide, with seq 0 (for `no_persist` messages, which skip the log)."""
        reason, sid, recipients = self._plan_send(cmd)
        return SendResult(reason, cmd.message_id, 0, sid, recipients, cmd.timestamp_s)

    def _plan_send(self, cmd: SendMessage) -> tuple[int, str, tuple[str, ...]]:
        """(reason, storage channel id, recipients); no recipients when rejected."""
        if cmd.subscribers:
            sid = base = cmd.channel_id
        else:
            sid = storage_channel_id(
                cmd.channel_id, cmd.channel_type, cmd.from_uid, sync_once=cmd.sync_once
            )
            base = base_channel_id(sid) if cmd.sync_once else sid
        reason = admit(cmd, base, self, whitelist_off_of_person=self._whitelist_off)
        if reason != REASON_SUCCESS:
            return reason, sid, ()
        return REASON_SUCCESS, sid, self._recipients(cmd, base)

    def _recipients(self, cmd: SendMessage, base: str) -> tuple[str, ...]:
        """Uids that get a RECV (http-api §2.6 step 6); never the system uid."""
        ctype = cmd.channel_type
        if cmd.subscribers:
            uids: Iterable[str] = cmd.subscribers
        elif ctype in (CHANNEL_PERSON, CHANNEL_AGENT):
            peer, sender = cmd.channel_id, cmd.from_uid
            if sender in (peer, SYSTEM_UID):
                return () if peer == SYSTEM_UID else (peer,)
            return (sender,) if peer == SYSTEM_UID else (peer, sender)
        else:
            subs = self._channels.state(base, ctype).subscriber_recipients()
            if ctype == CHANNEL_CUSTOMER_SERVICE:
                uids = (*subs, base.split("|", 1)[0])
            elif ctype == CHANNEL_VISITORS:
                uids = (*subs, base)
            else:
                return subs
        return tuple(dict.fromkeys(u for u in uids if u != SYSTEM_UID))

    def _touch_conversations(
        self, cmd: SendMessage, sid: str, seq: int, recipients: tuple[str, ...]
    ) -> None:
        """Conversation rows created by a persisted message (http-api §2.8): command rows on
        every message, person / customer-service chat rows on the first one."""
        ctype = cmd.channel_type
        if cmd.sync_once and is_cmd_channel(sid):
            kind = CONV_CMD
        elif seq == 1 and (
            (ctype == CHANNEL_PERSON and self._whitelist_off) or ctype == CHANNEL_CUSTOMER_SERVICE
        ):
            kind = CONV_CHAT
        else:
            return
        now_ms = cmd.timestamp_s * 1000
        for uid in recipients:
            pointer = seq if uid == cmd.from_uid else 0
            self._convs.create_if_missing(
                uid, sid, ctype, kind=kind, pointer=pointer, now_ms=now_ms
            )

    # ------------------------------------------------------------------ users

    def _set_user_token(self, cmd: SetUserToken) -> CommandResult:
        info = self._channels.state(cmd.uid, CHANNEL_PERSON).info
        if info is not None and info.ban:
            return CommandResult(REASON_BAN, "user banned")
        if info is not None and info.disband:
            return CommandResult(REASON_DISBAND, "user disbanded")
        self._store_device(cmd.uid, cmd.device_flag, cmd.token, cmd.device_level)
        return OK

    def _store_device(self, uid: str, device_flag: int, token: str, level: int) -> None:
        self._devices[(uid, device_flag)] = (token, level)
        self._put(device_key(uid, device_flag), _device_encoder.encode((token, level)))

    def _quit_device(self, cmd: QuitDevice) -> CommandResult:
        flags = _DEVICE_FLAGS_ALL if cmd.device_flag == -1 else (cmd.device_flag,)
        found = False
        for flag in flags:
            current = self.user_token(cmd.uid, flag)
            if current is not None:
                found = True
                self._store_device(cmd.uid, flag, "", current[1])
        return OK if found else CommandResult(0, "no device record")

    def _add_system_uids(self, cmd: AddSystemUids) -> CommandResult:
        prefix = system_uids_prefix(self._config.group_id)
        for uid in cmd.uids:
            if uid.strip() and uid not in self._system_uids:
                self._system_uids[uid] = None
                self._put(list_member_key(prefix, uid), b"")
        return OK

    def _remove_system_uids(self, cmd: RemoveSystemUids) -> CommandResult:
        prefix = system_uids_prefix(self._config.group_id)
        for uid in cmd.uids:
            if self._system_uids.pop(uid, 0) is None:
                assert self._batch is not None
                self._batch.delete(self._cf, list_member_key(prefix, uid))
        return OK

    # ------------------------------------------------------------------ channels

    def _upsert_channel(self, cmd: UpsertChannel) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        info = ChannelInfo(
            cid, ctype, cmd.ban, cmd.disband, cmd.send_ban, cmd.large, cmd.allow_stranger
        )
        self._channels.write_info(self._channels.state(cid, ctype), info)
        self._subscriber_step(cid, ctype, cmd.reset, cmd.subscribers, cmd.now_ms)
        return OK

    def _set_channel_info(self, cmd: SetChannelInfo) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        info = ChannelInfo(
            cid, ctype, cmd.ban, cmd.disband, cmd.send_ban, cmd.large, cmd.allow_stranger
        )
        self._channels.write_info(self._channels.state(cid, ctype), info)
        return OK

    def _delete_channel(self, cmd: DeleteChannel) -> CommandResult:
        state = self._channels.state(cmd.channel_id, cmd.channel_type)
        info = state.info
        if info is not None and not info.disband:
            self._channels.write_info(
                state,
                ChannelInfo(
                    info.channel_id,
                    info.channel_type,
                    ban=info.ban,
                    disband=True,
                    send_ban=info.send_ban,
                    large=info.large,
                    allow_stranger=info.allow_stranger,
                ),
            )
        return OK

    def _add_subscribers(self, cmd: AddSubscribers) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        state = self._channels.state(cid, ctype)
        if state.info is None:
            self._channels.write_info(state, ChannelInfo(cid, ctype))
        self._subscriber_step(cid, ctype, cmd.reset, cmd.subscribers, cmd.now_ms)
        return OK

    def _subscriber_step(
        self, cid: str, ctype: int, reset: bool, subscribers: tuple[str, ...], now_ms: int
    ) -> None:
        """Reset, add members, chat rows with read pointer = last seq (http-api §1.2 step 2-3)."""
        if reset:
            self._channels.clear(SUBSCRIBERS, cid, ctype)
        if not subscribers:
            return
        self._channels.add(SUBSCRIBERS, cid, ctype, subscribers)
        if ctype == CHANNEL_LIVE:
            return
        last = self._log.last_seq(cid, ctype)
        for uid in subscribers:
            if uid.strip():
                self._convs.join(uid, cid, ctype, last, now_ms)

    def _remove_subscribers(self, cmd: RemoveSubscribers) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        self._channels.remove(SUBSCRIBERS, cid, ctype, cmd.subscribers)
        self._delete_rows(cid, ctype, cmd.subscribers)
        return OK

    def _remove_all_subscribers(self, cmd: RemoveAllSubscribers) -> CommandResult:
        self._channels.clear(SUBSCRIBERS, cmd.channel_id, cmd.channel_type)
        return OK

    def _delete_rows(self, cid: str, ctype: int, uids: Iterable[str]) -> None:
        """Removed / denylisted users lose their row (literal channel id, http-api §1.3-1.4)."""
        if ctype == CHANNEL_LIVE:
            return
        for uid in uids:
            self._convs.delete_row(uid, cid, ctype)

    # ------------------------------------------------------------------ deny / allow lists

    def _add_to_list(self, cmd: AddToList) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        self._channels.add(_LIST_TAG[cmd.list_kind], cid, ctype, cmd.uids)
        if cmd.list_kind == ListKind.DENY:
            self._delete_rows(cid, ctype, cmd.uids)
        elif ctype == CHANNEL_PERSON:
            for uid in cmd.uids:
                if uid.strip() and uid != cid:
                    sid = person_channel_id(uid, cid)
                    self._convs.create_if_missing(
                        uid, sid, ctype, kind=CONV_CHAT, pointer=0, now_ms=cmd.now_ms
                    )
        return OK

    def _set_list(self, cmd: SetList) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        tag = _LIST_TAG[cmd.list_kind]
        self._channels.clear(tag, cid, ctype)
        self._channels.add(tag, cid, ctype, cmd.uids)
        if cmd.list_kind == ListKind.DENY:
            self._delete_rows(cid, ctype, cmd.uids)
        return OK

    def _remove_from_list(self, cmd: RemoveFromList) -> CommandResult:
        cid, ctype = cmd.channel_id, cmd.channel_type
        self._channels.remove(_LIST_TAG[cmd.list_kind], cid, ctype, cmd.uids)
        if cmd.list_kind == ListKind.DENY and ctype != CHANNEL_LIVE:
            for uid in cmd.uids:
                if uid.strip():
                    self._convs.create_if_missing(
                        uid, cid, ctype, kind=CONV_CHAT, pointer=0, now_ms=cmd.now_ms
                    )
        return OK

    def _clear_list(self, cmd: ClearList) -> CommandResult:
        self._channels.clear(_LIST_TAG[cmd.list_kind], cmd.channel_id, cmd.channel_type)
        return OK

    # ------------------------------------------------------------------ conversations

    def _set_conversation_read(self, cmd: SetConversationRead) -> CommandResult:
        self._convs.set_read(cmd, self._log.last_seq(cmd.channel_id, cmd.channel_type))
        return OK

    def _delete_conversation(self, cmd: DeleteConversation) -> CommandResult:
        last = self._log.last_seq(cmd.channel_id, cmd.channel_type)
        self._convs.mark_deleted(cmd.uid, cmd.channel_id, cmd.channel_type, last)
        return OK

    # ------------------------------------------------------------------ reads

    def applied_index(self) -> int:
        return self._applied

    def channel_state(self, channel_id: str, channel_type: int) -> ChannelState:
        """Cached state of a channel (info None if it has no record). Do not mutate."""
        state = self._channel_states.get((channel_id, channel_type))
        if state is None:
            state = self._channels.state(channel_id, channel_type)
        return state

    def is_system_uid(self, uid: str) -> bool:
        return uid in self._system_uids

    def system_uids(self) -> list[str]:
        """The persisted system uids (without the built-in `____system`)."""
        return list(self._system_uids)

    def user_token(self, uid: str, device_flag: int) -> tuple[str, int] | None:
        """(token, device_level) stored by /user/token for (uid, device_flag), or None."""
        key = (uid, device_flag)
        if key in self._devices:
            return self._devices[key]
        raw = self._kv.get(self._cf, device_key(uid, device_flag))
        value = None if raw is None else _device_decoder.decode(raw)
        self._devices[key] = value
        return value

    def channel_info(self, channel_id: str, channel_type: int) -> ChannelInfo | None:
        return self._channels.state(channel_id, channel_type).info

    def is_user_banned(self, uid: str) -> bool:
        """Person channel-info `ban` of (uid, 1): CONNACK 19 and /user/token STATUS(19)."""
        info = self.channel_info(uid, CHANNEL_PERSON)
        return info is not None and info.ban

    def is_user_disbanded(self, uid: str) -> bool:
        info = self.channel_info(uid, CHANNEL_PERSON)
        return info is not None and info.disband

    def subscribers(self, channel_id: str, channel_type: int) -> list[str]:
        return list(self._channels.state(channel_id, channel_type).subscribers)

    def denylist(self, channel_id: str, channel_type: int) -> list[str]:
        return list(self._channels.state(channel_id, channel_type).deny)

    def allowlist(self, channel_id: str, channel_type: int) -> list[str]:
        return list(self._channels.state(channel_id, channel_type).allow)

    def last_seq(self, storage_channel_id: str, channel_type: int) -> int:
        """Highest persisted seq of a stored channel (0 if none)."""
        return self._log.last_seq(storage_channel_id, channel_type)

    def message(self, storage_channel_id: str, channel_type: int, seq: int) -> Message | None:
        return self._log.message(storage_channel_id, channel_type, seq)

    def messages(
        self,
        storage_channel_id: str,
        channel_type: int,
        start_seq: int,
        end_seq: int = 0,
        limit: int | None = None,
        *,
        newest_first: bool = False,
    ) -> list[Message]:
        """Messages with start_seq <= seq < end_seq (end 0 = unbounded), ascending (or newest
        first), at most `limit`."""
        return self._log.messages(
            storage_channel_id, channel_type, start_seq, end_seq, limit, newest_first=newest_first
        )

    def find_message(
        self,
        storage_channel_id: str,
        channel_type: int,
        *,
        message_id: int | None = None,
        client_msg_no: str | None = None,
        newest: bool = False,
    ) -> Message | None:
        """/message, /messages, /message/byclientmsgno lookups inside one channel: the lowest-seq
        match (newest=True: the newest). Scans the channel; there is no secondary index."""
        return self._log.find(
            storage_channel_id,
            channel_type,
            message_id=message_id,
            client_msg_no=client_msg_no,
            newest=newest,
        )

    def newest_seq_sent_by(
        self, storage_channel_id: str, channel_type: int, uid: str, min_seq: int = 0
    ) -> int:
        """Seq of the newest message `uid` sent in the channel with seq >= min_seq (0 if none).
        A backwards scan: cost grows with the number of newer messages from others."""
        return self._log.newest_seq_sent_by(storage_channel_id, channel_type, uid, min_seq)

    def sync_messages(  # noqa: PLR0917 (the API's field order)
        self,
        login_uid: str,
        channel_id: str,
        channel_type: int,
        start_message_seq: int,
        end_message_seq: int,
        limit: int,
        pull_mode: int,
    ) -> SyncResult:
        """/channel/messagesync (http-api §1.7): ascending, `more` = (returned == limit)."""
        sid = storage_channel_id(channel_id, channel_type, login_uid)
        last = self._log.last_seq(sid, channel_type)
        if last == 0 and self.channel_info(sid, channel_type) is None:
            return SyncResult(0, 0, False, [])
        limit = min(limit, SYNC_LIMIT_MAX)
        window = sync_window(start_message_seq, end_message_seq, limit, pull_mode, last)
        found: list[Message] = []
        if window is not None:
            lo, hi, newest_first = window
            found = self._log.messages(sid, channel_type, lo, hi, limit, newest_first=newest_first)
            if newest_first:
                found.reverse()
        more = limit <= 0 or len(found) == limit
        return SyncResult(start_message_seq, end_message_seq, more, found)

    def conversation_rows(self, uid: str) -> list[ConversationRow]:
        """Every conversation row of `uid` in this store (chat and command), updated_at desc."""
        return self._convs.rows_of(uid)

    def conversation_row(
        self, uid: str, storage_channel_id: str, channel_type: int
    ) -> ConversationRow | None:
        record = self._convs.get(uid, storage_channel_id, channel_type)
        if record is None:
            return None
        return row_of(uid, storage_channel_id, channel_type, record)


class ChatGroupMachine:
    """Adapter to the node's state-machine Protocol: `apply(index, data: bytes)`, `snapshot()`,
    `restore(data)`. The entry data is `encode_commands(...)`."""

    __slots__ = ("machine",)

    def __init__(self, machine: ChatStateMachine) -> None:
        self.machine = machine

    def apply(self, index: int, data: bytes) -> list[Result]:
        return self.machine.apply(index, decode_commands(data))

    def snapshot(self) -> bytes:
        return self.machine.snapshot()

    def restore(self, data: bytes) -> None:
        self.machine.restore(data)
