"""Channels and subscribers (http-api §1.2, §1.3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from aiohttp import web

from wukongim.api.web_app import ApiError, decode_body, ok, services
from wukongim.chat.commands import (
    AddSubscribers,
    AddToList,
    ClearList,
    Command,
    DeleteChannel,
    ListKind,
    RemoveAllSubscribers,
    RemoveFromList,
    RemoveSubscribers,
    SetChannelInfo,
    SetList,
    UpsertChannel,
)
from wukongim.chat.ids import CHANNEL_GROUP
from wukongim.chat.validation import (
    validate_allowlist_change,
    validate_delete_channel,
    validate_denylist_change,
    validate_remove_all_subscribers,
    validate_subscribers_change,
    validate_upsert_channel,
)

U8 = Annotated[int, msgspec.Meta(ge=0, le=255)]


class ChannelInfoRequest(msgspec.Struct):
    channel_id: str = ""
    channel_type: U8 = 0
    ban: int = 0
    disband: int = 0
    send_ban: int = 0
    large: int = 0
    allow_stranger: int = 0


class ChannelRequest(ChannelInfoRequest):
    reset: int = 0
    subscribers: list[str] = msgspec.field(default_factory=list)


class ChannelRef(msgspec.Struct):
    channel_id: str = ""
    channel_type: U8 = 0


class SubscribersRequest(msgspec.Struct):
    channel_id: str = ""
    channel_type: U8 = 0
    reset: int = 0
    temp_subscriber: int = 0
    subscribers: list[str] = msgspec.field(default_factory=list)


def _check(problem: str | None) -> None:
    if problem is not None:
        raise ApiError(problem)


async def create_channel(request: web.Request) -> web.Response:
    body = await decode_body(request, ChannelRequest)
    _check(validate_upsert_channel(body.channel_id, body.channel_type, body.subscribers))
    api = services(request)
    result = await api.propose_one(
        UpsertChannel(
            body.channel_id,
            body.channel_type,
            ban=body.ban == 1,
            disband=body.disband == 1,
            send_ban=body.send_ban == 1,
            large=body.large == 1,
            allow_stranger=body.allow_stranger == 1,
            reset=body.reset == 1,
            subscribers=tuple(body.subscribers),
            now_ms=api.clock.now_ms(),
        )
    )
    if not result.ok:
        raise ApiError(result.error or "创建频道失败！")
    return ok()


async def channel_info(request: web.Request) -> web.Response:
    body = await decode_body(request, ChannelInfoRequest)
    result = await services(request).propose_one(
        SetChannelInfo(
            body.channel_id,
            body.channel_type,
            ban=body.ban == 1,
            disband=body.disband == 1,
            send_ban=body.send_ban == 1,
            large=body.large == 1,
            allow_stranger=body.allow_stranger == 1,
        )
    )
    if not result.ok:
        raise ApiError(result.error or "更新频道信息失败！")
    return ok()


async def delete_channel(request: web.Request) -> web.Response:
    body = await decode_body(request, ChannelRef)
    _check(validate_delete_channel(body.channel_id, body.channel_type))
    await services(request).propose_one(DeleteChannel(body.channel_id, body.channel_type))
    return ok()


async def subscriber_add(request: web.Request) -> web.Response:
    body = await decode_body(request, SubscribersRequest)
    _check(
        validate_subscribers_change(
            body.channel_id,
            body.channel_type,
            body.subscribers,
            temp_subscriber=body.temp_subscriber,
        )
    )
    api = services(request)
    result = await api.propose_one(
        AddSubscribers(
            body.channel_id,
            body.channel_type or CHANNEL_GROUP,
            tuple(uid for uid in body.subscribers if uid.strip()),
            reset=body.reset == 1,
            now_ms=api.clock.now_ms(),
        )
    )
    if not result.ok:
        raise ApiError(result.error or "添加订阅者失败！")
    return ok()


async def subscriber_remove(request: web.Request) -> web.Response:
    body = await decode_body(request, SubscribersRequest)
    _check(validate_subscribers_change(body.channel_id, body.channel_type, body.subscribers))
    result = await services(request).propose_one(
        RemoveSubscribers(
            body.channel_id,
            body.channel_type,
            tuple(uid for uid in body.subscribers if uid.strip()),
        )
    )
    if not result.ok:
        raise ApiError(result.error or "移除订阅者失败！")
    return ok()


async def subscriber_remove_all(request: web.Request) -> web.Response:
    body = await decode_body(request, ChannelRef)
    _check(validate_remove_all_subscribers(body.channel_id, body.channel_type))
    await services(request).propose_one(RemoveAllSubscribers(body.channel_id, body.channel_type))
    return ok()


# ---- deny (blacklist) and allow (whitelist) lists (http-api §1.4, §1.5) ----------------------


class ListRequest(msgspec.Struct):
    channel_id: str = ""
    channel_type: U8 = 0
    uids: list[str] = msgspec.field(default_factory=list)


def _list_route(kind: ListKind, op: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    validate = validate_denylist_change if kind is ListKind.DENY else validate_allowlist_change

    async def handle(request: web.Request) -> web.Response:
        body = await decode_body(request, ListRequest)
        _check(validate(body.channel_id, body.channel_type, body.uids, op=op))
        api = services(request)
        cid, ctype, uids = body.channel_id, body.channel_type, tuple(body.uids)
        now_ms = api.clock.now_ms()
        command: Command
        if op == "add":
            command = AddToList(kind, cid, ctype, uids, now_ms)
        elif op == "set":
            command = SetList(kind, cid, ctype, uids, now_ms)
        elif op == "remove":
            command = RemoveFromList(kind, cid, ctype, uids, now_ms)
        else:
            command = ClearList(kind, cid, ctype)
        result = await api.propose_one(command)
        if not result.ok:
            raise ApiError(result.error or "操作失败！")
        return ok()

    return handle


def _list_routes() -> list[web.RouteDef]:
    routes = []
    for kind, name in ((ListKind.DENY, "blacklist"), (ListKind.ALLOW, "whitelist")):
        for op in ("add", "set", "remove", "remove_all"):
            routes.append(web.post(f"/channel/{name}_{op}", _list_route(kind, op)))
    return routes


ROUTES = (
    *_list_routes(),
    web.post("/channel/subscriber_remove_all", subscriber_remove_all),
    web.post("/channel", create_channel),
    web.post("/channel/info", channel_info),
    web.post("/channel/delete", delete_channel),
    web.post("/channel/subscriber_add", subscriber_add),
    web.post("/channel/subscriber_remove", subscriber_remove),
)
