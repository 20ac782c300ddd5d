"""Request checks that the HTTP layer turns into 400 (ERR) BEFORE proposing a command.

Rules of this file: pure functions; each returns None when the request is acceptable, else a
short error text for the ERR body (http-api §1). Checks that depend on replicated state (bans,
membership, ...) are NOT here: they run inside apply and come back as reason codes.
"""

from __future__ import annotations

from collections.abc import Sequence

from wukongim.chat.ids import CHANNEL_PERSON, SYSTEM_UID, has_forbidden_chars


def _blank(text: str) -> bool:
    return not text.strip()


def validate_user_token(uid: str, token: str) -> str | None:
    """/user/token."""
    if _blank(uid):
        return "uid不能为空！"
    if not token:
        return "token不能为空！"
    if has_forbidden_chars(uid):
        return "uid不能包含特殊字符！"
    if uid == SYSTEM_UID:
        return "系统账号不允许登录！"
    return None


def validate_upsert_channel(
    channel_id: str, channel_type: int, subscribers: Sequence[str]
) -> str | None:
    """/channel."""
    if _blank(channel_id):
        return "频道ID不能为空！"
    if channel_type == 0:
        return "频道类型不能为0！"
    if has_forbidden_chars(channel_id):
        return "频道ID不能包含特殊字符！"
    if channel_type == CHANNEL_PERSON and len(subscribers) > 0:
        return "个人频道不支持添加订阅者！"
    return None


def validate_delete_channel(channel_id: str, channel_type: int) -> str | None:
    """/channel/delete."""
    if _blank(channel_id):
        return "频道ID不能为空！"
    if channel_type == CHANNEL_PERSON:
        return "个人频道不支持删除！"
    return None


def validate_subscribers_change(
    channel_id: str,
    channel_type: int,
    subscribers: Sequence[str],
    *,
    temp_subscriber: int = 0,
) -> str | None:
    """/channel/subscriber_add and /channel/subscriber_remove (call before defaulting type 0
    to 2 for subscriber_add)."""
    if _blank(channel_id):
        return "频道ID不能为空！"
    if has_forbidden_chars(channel_id):
        return "频道ID不能包含特殊字符！"
    if all(_blank(uid) for uid in subscribers):
        return "订阅者不能为空！"
    if channel_type == CHANNEL_PERSON:
        return "个人频道不支持添加订阅者！"
    if temp_subscriber == 1:
        return "暂不支持临时订阅者！"
    return None


def validate_remove_all_subscribers(channel_id: str, channel_type: int) -> str | None:
    """/channel/subscriber_remove_all."""
    if _blank(channel_id):
        return "频道ID不能为空！"
    if channel_type == 0:
        return "频道类型不能为0！"
    if channel_type == CHANNEL_PERSON:
        return "个人频道不支持此操作！"
    return None


def validate_denylist_change(
    channel_id: str, channel_type: int, uids: Sequence[str], *, op: str
) -> str | None:
    """/channel/blacklist_{add,remove,set,remove_all}; `op` is 'add', 'remove', 'set' or
    'remove_all'."""
    if op == "set":
        return "频道ID不能为空！" if _blank(channel_id) else None
    if not channel_id:
        return "频道ID不能为空！"
    if channel_type == 0:
        return "频道类型不能为0！"
    if op != "remove_all" and len(uids) == 0:
        return "uids不能为空！"
    return None


def validate_allowlist_change(
    channel_id: str, channel_type: int, uids: Sequence[str], *, op: str
) -> str | None:
    """/channel/whitelist_{add,remove,set,remove_all}; `op` as for the denylist."""
    if op == "set":
        return "频道ID不能为空！" if _blank(channel_id) else None
    if not channel_id:
        return "频道ID不能为空！"
    if op != "remove_all" and has_forbidden_chars(channel_id):
        return "频道ID不能包含特殊字符！"
    if channel_type == 0:
        return "频道类型不能为0！"
    if op != "remove_all" and all(_blank(uid) for uid in uids):
        return "uids不能为空！"
    return None


def validate_api_send(
    channel_id: str,
    payload: bytes,
    subscribers: Sequence[str],
    *,
    sync_once: bool,
) -> str | None:
    """/message/send, after the JSON bind and after a blank from_uid became the system uid."""
    if len(payload) == 0:
        return "payload不能为空！"
    if _blank(channel_id) and len(subscribers) == 0:
        return "无效的频道"
    if len(subscribers) > 0 and not sync_once:
        return "subscribers有值的情况下，消息必须是syncOnce消息"
    if channel_id and len(subscribers) > 0:
        return "channelID和subscribers不能同时存在！"
    if has_forbidden_chars(channel_id):
        return "频道ID不合法！"
    return None


def validate_message_sync(login_uid: str, channel_id: str) -> str | None:
    """/channel/messagesync."""
    if _blank(channel_id):
        return "channel_id不能为空！"
    if _blank(login_uid):
        return "login_uid不能为空！"
    return None
