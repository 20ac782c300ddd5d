"""Delivery: RECV to every online session of each recipient, RECVACK tracking and retries.

Rules (wkproto §3.5-§3.6, §7.2):
* every authenticated session of every recipient uid gets the message, except the exact session
  that sent it; the sender's other devices get it with RedDot cleared;
* person channels: the channel id is rewritten per recipient (to the sender when it equals the
  recipient) before the msgKey is computed; `fromUid` is empty for the system uid;
* the payload is encrypted and signed per session;
* persisted messages wait for a RECVACK on that session: the identical frame is re-sent every
  `retry_interval_s` (checked by one sweep every `recv_retry_scan_s`), at most `retry_max` times;
* a RECVACK with SyncOnce from a master device moves the conversation read pointer forward
  (a `SetConversationRead`, proposed in one batch per loop turn).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from wukongim.chat.commands import (
    Command,
    ReadMode,
    Result,
    SendMessage,
    SetConversationRead,
)
from wukongim.chat.ids import CHANNEL_PERSON, SYSTEM_UID
from wukongim.clock import Clock
from wukongim.protocol.wkproto import RecvAck, encode_recv_positional
from wukongim.server.presence import Presence
from wukongim.server.sessions import ConnState, PendingRecv, Session, SessionRegistry

log = logging.getLogger(__name__)

DEVICE_LEVEL_MASTER = 1
PENDING_RECV_MAX = 10_000  # unacknowledged RECVs kept for retry per connection (oldest dropped)
_FLAG_SYNC_ONCE = 0x04
_FLAG_RED_DOT = 0x02
_FLAG_NO_PERSIST = 0x01
_OPEN = ConnState.OPEN


class Proposer(Protocol):
    def submit(self, group: int, commands: Sequence[Command]) -> asyncio.Future[list[Result]]: ...


class Delivery:
    def __init__(
        self,
        presence: Presence,
        registry: SessionRegistry,
        proposer: Proposer,
        clock: Clock,
        *,
        group: int,
        retry_interval_s: float,
        retry_max: int,
    ) -> None:
        self._presence = presence
        self._registry = registry
        self._proposer = proposer
        self._clock = clock
        self._group = group
        self._retry_interval_s = retry_interval_s
        self._retry_max = retry_max
        self._read_updates: list[Command] = []
        self._loop = asyncio.get_running_loop()
        self.sent_count = 0
        self.retry_count = 0

    # ---- fan out ---------------------------------------------------------------------------

    def deliver(
        self,
        cmd: SendMessage,
        message_seq: int,
        storage_channel_id: str,
        recipients: Iterable[str],
        exclude: Session | None,
    ) -> None:
        """RECV `cmd` (stored as `message_seq`, 0 if not persisted) to the recipients' sessions."""
        by_uid = self._presence.by_uid
        track = not cmd.no_persist
        now_s = self._clock.monotonic_s() if track else 0.0
        flags = (
            (_FLAG_SYNC_ONCE if cmd.sync_once else 0)
            | (_FLAG_RED_DOT if cmd.red_dot else 0)
            | (_FLAG_NO_PERSIST if cmd.no_persist else 0)
        )
        from_uid = "" if cmd.from_uid == SYSTEM_UID else cmd.from_uid
        pending_channel = storage_channel_id if cmd.sync_once else ""
        person = cmd.channel_type == CHANNEL_PERSON
        sent = 0
        for uid in recipients:
            sessions = by_uid.get(uid)
            if not sessions:
                continue
            channel_id = cmd.channel_id
            if person and channel_id == uid:
                channel_id = cmd.from_uid
            uid_flags = flags & ~_FLAG_RED_DOT if uid == cmd.from_uid else flags
            for session in sessions:
                if session is exclude or session.state is not _OPEN:
                    continue
                frame = _recv_frame(session, cmd, message_seq, from_uid, channel_id, uid_flags)
                session.write(frame)
                sent += 1
                if track:
                    pending = session.pending_recv
                    if len(pending) >= PENDING_RECV_MAX:  # a client that never acks: bounded
                        del pending[next(iter(pending))]
                    pending[cmd.message_id] = PendingRecv(
                        frame, now_s, 0, pending_channel, cmd.channel_type
                    )
        self.sent_count += sent

    def flush_now(self) -> None:
        """Hand every session's queued frames to its link now (see `SessionRegistry`)."""
        self._registry.flush_all()

    # ---- acknowledgements ------------------------------------------------------------------

    def on_recvack(self, session: Session, ack: RecvAck) -> None:
        if ack.no_persist:
            return
        pending = session.pending_recv.pop(ack.message_id, None)
        if not (ack.sync_once and session.device_level == DEVICE_LEVEL_MASTER):
            return
        if pending is None or not pending.storage_channel_id:
            return
        if not self._read_updates:
            self._loop.call_soon(self._flush_read_updates)
        self._read_updates.append(
            SetConversationRead(
                uid=session.uid,
                channel_id=pending.storage_channel_id,
                channel_type=pending.channel_type,
                mode=ReadMode.TO_SEQ,
                seq=ack.message_seq,
                now_ms=self._clock.now_ms(),
            )
        )

    def _flush_read_updates(self) -> None:
        commands, self._read_updates = self._read_updates, []
        if not commands:
            return
        try:
            future = self._proposer.submit(self._group, commands)
        except RuntimeError:
            log.warning("dropping %d read-pointer updates: replicator stopped", len(commands))
            return
        future.add_done_callback(_log_failure)

    # ---- retries ---------------------------------------------------------------------------

    def sweep_retries(self, now_s: float) -> None:
        """Re-send every RECV unacknowledged for `retry_interval_s`; give up after `retry_max`."""
        interval = self._retry_interval_s
        for session in self._registry:
            pending = session.pending_recv
            if not pending or not session.is_open:
                continue
            for message_id, item in list(pending.items()):
                if now_s - item.sent_at_s < interval:
                    continue
                if item.attempts >= self._retry_max:
                    del pending[message_id]
                    continue
                item.attempts += 1
                item.sent_at_s = now_s
                session.write(item.frame)
                self.retry_count += 1


def _recv_frame(  # noqa: PLR0917 - hot path: positional on purpose
    session: Session,
    cmd: SendMessage,
    message_seq: int,
    from_uid: str,
    channel_id: str,
    flags: int,
) -> bytes:
    crypto = session.crypto
    if crypto is None:
        payload = cmd.payload
        msg_key = ""
    else:
        payload, msg_key = crypto.seal_recv(
            cmd.message_id,
            message_seq,
            cmd.client_msg_no,
            cmd.timestamp_s,
            from_uid,
            channel_id,
            cmd.channel_type,
            cmd.payload,
        )
    return encode_recv_positional(
        session.version,
        flags,
        cmd.setting,
        msg_key,
        from_uid,
        channel_id,
        cmd.channel_type,
        cmd.client_msg_no,
        cmd.message_id,
        message_seq,
        cmd.timestamp_s,
        payload,
        cmd.expire,
        0,  # stream flag
        cmd.stream_no,
        cmd.message_id,  # stream id
        cmd.topic,
    )


def _log_failure(future: asyncio.Future[list[Result]]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        log.warning("read-pointer update failed: %s", exc)
