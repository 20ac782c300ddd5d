"""Messages: send and channel history (http-api §1.6, §1.7, §2.5, §2.11).

/message/send persists synchronously and answers `message_id`, `client_msg_no` and
`message_seq` (a compatible superset of upstream's asynchronous answer, Appendix B). A send the
channel rejects (ban/disband) still answers 200, as upstream callers expect.
"""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import msgspec
from aiohttp import web

from wukongim.api.web_app import ApiError, decode_body, json_response, ok, ok_data, services
from wukongim.chat.commands import SendMessage
from wukongim.chat.ids import (
    CHANNEL_PERSON,
    CHANNEL_TEMP,
    ONLINE_CMD_CHANNEL_ID,
    SYSTEM_UID,
    is_valid_uid,
    temp_cmd_channel_id,
)
from wukongim.chat.model import Message
from wukongim.chat.validation import validate_api_send, validate_message_sync
from wukongim.protocol.wkproto import SETTING_STREAM

U8 = Annotated[int, msgspec.Meta(ge=0, le=255)]
U32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
SYNC_LIMIT_MAX = 10_000


class MessageHeader(msgspec.Struct):
    no_persist: int = 0
    red_dot: int = 0
    sync_once: int = 0


class SendRequest(msgspec.Struct):
    header: MessageHeader = msgspec.field(default_factory=MessageHeader)
    client_msg_no: str = ""
    from_uid: str = ""
    channel_id: str = ""
    channel_type: U8 = 0
    expire: U32 = 0
    subscribers: list[str] = msgspec.field(default_factory=list)
    payload: bytes = b""
    is_stream: int = 0
    tag_key: str = ""


class SyncRequest(msgspec.Struct):
    login_uid: str = ""
    channel_id: str = ""
    channel_type: U8 = 0
    start_message_seq: int = 0
    end_message_seq: int = 0
    limit: int = 0
    pull_mode: int = 0
    event_summary_mode: str = ""


async def message_send(request: web.Request) -> web.Response:
    body = await decode_body(request, SendRequest)
    from_uid = body.from_uid if body.from_uid.strip() else SYSTEM_UID
    sync_once = body.header.sync_once == 1
    problem = validate_api_send(
        body.channel_id, body.payload, body.subscribers, sync_once=sync_once
    )
    if problem is not None:
        raise ApiError(problem)
    api = services(request)
    now_ms = api.clock.now_ms()
    no_persist = body.header.no_persist == 1
    channel_id, channel_type = body.channel_id, body.channel_type
    if body.subscribers:
        channel_id = ONLINE_CMD_CHANNEL_ID if no_persist else temp_cmd_channel_id(body.subscribers)
        channel_type = CHANNEL_TEMP
    client_msg_no = body.client_msg_no.strip() or os.urandom(16).hex() + "0"
    cmd = SendMessage(
        from_uid=from_uid,
        channel_id=channel_id,
        channel_type=channel_type,
        client_msg_no=client_msg_no,
        payload=body.payload,
        message_id=api.send_path.new_message_id(now_ms),
        timestamp_s=now_ms // 1000,
        setting=SETTING_STREAM if body.is_stream == 1 else 0,
        no_persist=no_persist,
        red_dot=body.header.red_dot == 1,
        sync_once=sync_once,
        expire=body.expire,
        from_api=True,
        subscribers=tuple(body.subscribers),
    )
    result = await api.send_path.send_api(cmd)
    if body.subscribers:
        return ok()
    return ok_data(
        {
            "message_id": result.message_id,
            "client_msg_no": client_msg_no,
            "message_seq": result.message_seq,
        }
    )


class SendBatchRequest(msgspec.Struct):
    header: MessageHeader = msgspec.field(default_factory=MessageHeader)
    from_uid: str = ""
    subscribers: list[str] = msgspec.field(default_factory=list)
    payload: bytes = b""


async def message_sendbatch(request: web.Request) -> web.Response:
    """One person message from `from_uid` to each subscriber (http-api §1.6). RAW answer:
    the uids refused by the synchronous checks, with their reasons."""
    body = await decode_body(request, SendBatchRequest)
    if not body.from_uid.strip():
        raise ApiError("发送者UID不能为空！")
    if not body.subscribers:
        raise ApiError("订阅者不能为空！")
    if not body.payload:
        raise ApiError("payload不能为空！")
    api = services(request)
    fail_uids: list[str] = []
    reasons: list[str] = []
    sends = []
    for uid in body.subscribers:
        if not is_valid_uid(uid):
            fail_uids.append(uid)
            reasons.append("频道ID不合法！")
            continue
        now_ms = api.clock.now_ms()
        cmd = SendMessage(
            from_uid=body.from_uid,
            channel_id=uid,
            channel_type=CHANNEL_PERSON,
            client_msg_no=os.urandom(16).hex() + "0",
            payload=body.payload,
            message_id=api.send_path.new_message_id(now_ms),
            timestamp_s=now_ms // 1000,
            no_persist=body.header.no_persist == 1,
            red_dot=body.header.red_dot == 1,
            sync_once=body.header.sync_once == 1,
            from_api=True,
        )
        sends.append(api.send_path.send_api(cmd))
    await asyncio.gather(*sends)
    return json_response({"fail_uids": fail_uids, "reason": reasons})


def message_resp(message: Message) -> dict[str, Any]:
    """MessageResp (http-api §1): the stored message as upstream's JSON."""
    resp: dict[str, Any] = {
        "header": {
            "no_persist": int(message.no_persist),
            "red_dot": int(message.red_dot),
            "sync_once": int(message.sync_once),
        },
        "setting": message.setting,
        "message_id": message.message_id,
        "message_idstr": message.message_idstr,
        "client_msg_no": message.client_msg_no,
        "message_seq": message.message_seq,
        "from_uid": message.from_uid,
        "channel_id": message.channel_id,
        "channel_type": message.channel_type,
        "expire": message.expire,
        "timestamp": message.timestamp,
        "payload": message.payload,
    }
    if message.topic:
        resp["topic"] = message.topic
    return resp


async def message_sync(request: web.Request) -> web.Response:
    body = await decode_body(request, SyncRequest)
    problem = validate_message_sync(body.login_uid, body.channel_id)
    if problem is not None:
        raise ApiError(problem)
    result = services(request).machine.sync_messages(
        body.login_uid,
        body.channel_id,
        body.channel_type,
        body.start_message_seq,
        body.end_message_seq,
        min(body.limit, SYNC_LIMIT_MAX),
        body.pull_mode,
    )
    return json_response(
        {
            "start_message_seq": result.start_message_seq,
            "end_message_seq": result.end_message_seq,
            "more": int(result.more),
            "messages": [message_resp(m) for m in result.messages],
        }
    )


ROUTES = (
    web.post("/message/send", message_send),
    web.post("/message/sendbatch", message_sendbatch),
    web.post("/channel/messagesync", message_sync),
)
