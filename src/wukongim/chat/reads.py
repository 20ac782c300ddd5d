"""Read-side rules: stored message -> MessageResp view, and the /channel/messagesync window.

Rules of this file: pure functions over records; no store access.
"""

from __future__ import annotations

from wukongim.chat.ids import CHANNEL_PERSON, SYSTEM_UID
from wukongim.chat.model import Message, MessageRecord


def resp_channel_id(storage_channel_id: str, channel_type: int, masked_from_uid: str) -> str:
    """MessageResp `channel_id` (http-api §2.5): for person channels the last part of the stored
    id that differs from the (masked) sender; `A@B____cmd` from A gives `B____cmd`."""
    if channel_type != CHANNEL_PERSON:
        return storage_channel_id
    parts = storage_channel_id.split("@")
    if len(parts) != 2:
        return storage_channel_id
    chosen = parts[0]
    for part in parts:
        if part != masked_from_uid:
            chosen = part
    return chosen


def message_view(
    record: MessageRecord, seq: int, storage_channel_id: str, channel_type: int
) -> Message:
    from_uid = "" if record.from_uid == SYSTEM_UID else record.from_uid
    return Message(
        message_id=record.message_id,
        message_seq=seq,
        client_msg_no=record.client_msg_no,
        from_uid=from_uid,
        channel_id=resp_channel_id(storage_channel_id, channel_type, from_uid),
        channel_type=channel_type,
        timestamp=record.timestamp_s,
        setting=record.setting,
        red_dot=record.red_dot,
        sync_once=record.sync_once,
        no_persist=False,
        expire=record.expire,
        topic=record.topic,
        stream_no=record.stream_no,
        payload=record.payload,
    )


def sync_window(
    start: int, end: int, limit: int, pull_mode: int, last_seq: int
) -> tuple[int, int, bool] | None:
    """Seq range of /channel/messagesync as (lo inclusive, hi exclusive or 0 = unbounded,
    newest_first), or None when no message can match (http-api §1.7)."""
    if limit <= 0:
        return None
    if start == 0 and end == 0:
        return 0, 0, True  # the newest `limit`
    if pull_mode == 1:
        return start, end, False
    if end > start:
        return None
    lo = max(end, start - limit) + 1
    hi = min(start, last_seq) + 1
    if hi <= lo:
        return None
    return lo, hi, False
