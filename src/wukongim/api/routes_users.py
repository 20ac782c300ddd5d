"""Users, tokens, presence, routing and health (http-api §1.1, §1.11, §1.13)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from wukongim.api.web_app import (
    ApiError,
    decode_body,
    json_response,
    ok,
    services,
    status,
)
from wukongim.chat.commands import AddSystemUids, QuitDevice, RemoveSystemUids, SetUserToken
from wukongim.chat.validation import validate_user_token

DEVICE_LEVEL_MASTER = 1


class TokenRequest(msgspec.Struct):
    uid: str = ""
    token: str = ""
    device_flag: int = 0
    device_level: int = 0


async def user_token(request: web.Request) -> web.Response:
    body = await decode_body(request, TokenRequest)
    problem = validate_user_token(body.uid, body.token)
    if problem is not None:
        raise ApiError(problem)
    api = services(request)
    result = await api.propose_one(
        SetUserToken(body.uid, body.device_flag, body.device_level, body.token)
    )
    if not result.ok:
        return status(result.reason_code)  # 19 banned, 24 disbanded: HTTP 200
    if body.device_level == DEVICE_LEVEL_MASTER:
        api.gateway.kick_for_new_token(body.uid, body.device_flag)
    return ok()


class DeviceQuitRequest(msgspec.Struct):
    uid: str = ""
    device_flag: int = 0  # -1: APP, WEB and PC


async def device_quit(request: web.Request) -> web.Response:
    """Blank the device's token, then kick its connections (always OK, http-api §1.1)."""
    body = await decode_body(request, DeviceQuitRequest)
    api = services(request)
    result = await api.propose_one(QuitDevice(body.uid, body.device_flag))
    if result.ok:  # no device record: upstream skips the kick too
        flag = None if body.device_flag == -1 else body.device_flag
        api.gateway.kick_uid(body.uid, flag, "", api.config.kick_close_delay_s)
    return ok()


async def online_status(request: web.Request) -> web.Response:
    uids = await decode_body(request, list[str])
    if not uids:
        return ok()
    sessions = services(request).presence.online(uids)
    return json_response(
        [{"uid": s.uid, "device_flag": s.device_flag, "online": 1} for s in sessions]
    )


async def route(request: web.Request) -> web.Response:
    api = services(request)
    host = request.url.host or "127.0.0.1"
    tcp_addr = f"{host}:{api.ports.get('tcp', 0)}"
    if request.query.get("intranet") == "1":
        return json_response({"tcp_addr": tcp_addr, "ws_addr": "", "wss_addr": ""})
    return json_response(
        {"tcp_addr": tcp_addr, "ws_addr": f"ws://{host}:{api.ports.get('ws', 0)}", "wss_addr": ""}
    )


class UidsRequest(msgspec.Struct):
    uids: list[str] = msgspec.field(default_factory=list)


async def system_uids_add(request: web.Request) -> web.Response:
    body = await decode_body(request, UidsRequest)
    uids = tuple(uid for uid in body.uids if uid.strip())
    if uids:
        await services(request).propose_one(AddSystemUids(uids))
    return ok()


async def system_uids_remove(request: web.Request) -> web.Response:
    body = await decode_body(request, UidsRequest)
    uids = tuple(uid for uid in body.uids if uid.strip())
    if uids:
        await services(request).propose_one(RemoveSystemUids(uids))
    return ok()


async def system_uids(request: web.Request) -> web.Response:
    return json_response(services(request).machine.system_uids())


async def cache_no_op(request: web.Request) -> web.Response:
    """The `*_to_cache` endpoints only touch upstream's per-node caches (Appendix B)."""
    await decode_body(request, UidsRequest)
    return ok()


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


ROUTES = (
    web.post("/user/token", user_token),
    web.post("/user/device_quit", device_quit),
    web.post("/user/onlinestatus", online_status),
    web.post("/user/systemuids_add", system_uids_add),
    web.post("/user/systemuids_remove", system_uids_remove),
    web.get("/user/systemuids", system_uids, allow_head=False),
    web.post("/user/systemuids_add_to_cache", cache_no_op),
    web.post("/user/systemuids_remove_from_cache", cache_no_op),
    web.get("/route", route, allow_head=False),
    web.get("/health", health, allow_head=False),
)
