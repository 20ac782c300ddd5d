"""Message lookups (http-api §1.7, [USEFUL]): max seq, last message, by seq / id / clientMsgNo.

Lookups by message id or client_msg_no scan the channel's messages (there is no index for them
yet): fine for the occasional admin or business-server call these endpoints serve, not for a
hot path. Unlike upstream, a message id is looked up within the given channel only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import msgspec
from aiohttp import web

from wukongim.api.routes_messages import message_resp
from wukongim.api.web_app import ApiError, decode_body, json_response, services, status
from wukongim.chat.ids import CHANNEL_PERSON, storage_channel_id
from wukongim.chat.model import Message
from wukongim.chat.state_machine import ChatStateMachine

U8 = Annotated[int, msgspec.Meta(ge=0, le=255)]
_EMPTY_SYNC = {"start_message_seq": 0, "end_message_seq": 0, "more": 0}


def _storage_id(channel_id: str, channel_type: int, login_uid: str) -> str:
    """Person channels are addressed by the peer uid plus `login_uid`, or by the fake id."""
    if channel_type == CHANNEL_PERSON and "@" not in channel_id:
        if not login_uid.strip():
            raise ApiError("login_uid不能为空！")
        return storage_channel_id(channel_id, channel_type, login_uid)
    return channel_id


def _query_channel(request: web.Request) -> tuple[str, int, str]:
    query = request.query
    channel_id = query.get("channel_id", "")
    if not channel_id.strip():
        raise ApiError("channel_id不能为空！")
    try:
        channel_type = int(query.get("channel_type", "0") or 0)
    except ValueError as exc:
        raise ApiError("channel_type格式有误！") from exc
    return channel_id, channel_type, query.get("login_uid", "")


def _scan(
    machine: ChatStateMachine, sid: str, ctype: int, *, newest_first: bool
) -> Iterable[Message]:
    return machine.messages(sid, ctype, 0, newest_first=newest_first)


async def max_message_seq(request: web.Request) -> web.Response:
    channel_id, channel_type, login_uid = _query_channel(request)
    sid = _storage_id(channel_id, channel_type, login_uid)
    return json_response({"message_seq": services(request).machine.last_seq(sid, channel_type)})


async def last_message(request: web.Request) -> web.Response:
    channel_id, channel_type, login_uid = _query_channel(request)
    sid = _storage_id(channel_id, channel_type, login_uid)
    machine = services(request).machine
    last = machine.last_seq(sid, channel_type)
    message = machine.message(sid, channel_type, last) if last else None
    return status(404) if message is None else json_response(message_resp(message))


class MessagesRequest(msgspec.Struct):
    login_uid: str = ""
    channel_id: str = ""
    channel_type: U8 = 0
    message_seqs: list[int] = msgspec.field(default_factory=list)
    message_ids: list[int] = msgspec.field(default_factory=list)
    client_msg_nos: list[str] = msgspec.field(default_factory=list)


async def messages(request: web.Request) -> web.Response:
    """Hits for the seqs (request order), then the ids, then the client_msg_nos (newest)."""
    body = await decode_body(request, MessagesRequest)
    if not body.channel_id.strip():
        raise ApiError("channel_id不能为空！")
    sid = _storage_id(body.channel_id, body.channel_type, body.login_uid)
    machine = services(request).machine
    ctype = body.channel_type
    found: list[Message] = []
    for seq in body.message_seqs:
        message = machine.message(sid, ctype, seq) if seq > 0 else None
        if message is not None:
            found.append(message)
    if body.message_ids or body.client_msg_nos:
        stored = list(_scan(machine, sid, ctype, newest_first=True))
        by_id = {m.message_id: m for m in stored}
        found.extend(by_id[i] for i in body.message_ids if i in by_id)
        for client_msg_no in body.client_msg_nos:
            match = next((m for m in stored if m.client_msg_no == client_msg_no), None)
            if match is not None:
                found.append(match)
    return json_response({**_EMPTY_SYNC, "messages": [message_resp(m) for m in found]})


class MessageRequest(msgspec.Struct):
    login_uid: str = ""
    channel_id: str = ""
    channel_type: U8 = 0
    message_id: int = 0
    client_msg_no: str = ""


async def message(request: web.Request) -> web.Response:
    body = await decode_body(request, MessageRequest)
    if not body.channel_id.strip():
        raise ApiError("channel_id不能为空！")
    if body.channel_type == 0:
        raise ApiError("channel_type不能为0！")
    if not body.message_id and not body.client_msg_no:
        raise ApiError("message_id或client_msg_no不能为空！")
    sid = _storage_id(body.channel_id, body.channel_type, body.login_uid)
    machine = services(request).machine
    for candidate in _scan(machine, sid, body.channel_type, newest_first=True):
        if (body.message_id and candidate.message_id == body.message_id) or (
            not body.message_id and candidate.client_msg_no == body.client_msg_no
        ):
            return json_response(message_resp(candidate))
    return status(404)


async def by_client_msg_no(request: web.Request) -> web.Response:
    channel_id, channel_type, _ = _query_channel(request)
    client_msg_no = request.query.get("client_msg_no", "")
    if channel_type == 0 or not client_msg_no:
        raise ApiError("channel_type和client_msg_no不能为空！")
    machine = services(request).machine
    for candidate in _scan(machine, channel_id, channel_type, newest_first=False):
        if candidate.client_msg_no == client_msg_no:
            return json_response(message_resp(candidate))
    return status(404)


ROUTES = (
    web.get("/channel/max_message_seq", max_message_seq, allow_head=False),
    web.get("/channel/last_message", last_message, allow_head=False),
    web.post("/messages", messages),
    web.post("/message", message),
    web.get("/message/byclientmsgno", by_client_msg_no, allow_head=False),
)
