"""The HTTP API (:5001) on aiohttp, embedded in the node's loop by app.py (AppRunner/TCPSite).

Handlers are thin: decode the body into a typed msgspec Struct (strict: an int field given a
string is a 400), validate with `chat.validation`, then either propose a command through the
replicator (mutations) or read the state machine (reads). The envelopes are upstream's
(http-api §0.3): OK, OK+data, ERR (400), STATUS(n) (200), RAW. Unknown paths and wrong methods
are 404 `404 page not found` (text), as gin answers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from wukongim.chat.commands import Command, CommandResult, Result
from wukongim.chat.state_machine import ChatStateMachine
from wukongim.clock import Clock
from wukongim.config import Config
from wukongim.server.gateway import Gateway
from wukongim.server.presence import Presence
from wukongim.server.replicator import LocalReplicator
from wukongim.server.send_path import SendPath

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_encode = msgspec.json.Encoder().encode
_NOT_FOUND = "404 page not found"


@dataclass(frozen=True, slots=True)
class ApiServices:
    """Everything the handlers use, built by app.py."""

    config: Config
    clock: Clock
    machine: ChatStateMachine
    replicator: LocalReplicator
    send_path: SendPath
    presence: Presence
    gateway: Gateway
    group: int
    ports: dict[str, int] = field(default_factory=dict)  # bound ports, filled in by app.py

    async def propose(self, *commands: Command) -> list[Result]:
        return await self.replicator.propose(self.group, commands)

    async def propose_one(self, command: Command) -> CommandResult:
        (result,) = await self.propose(command)
        assert isinstance(result, CommandResult)
        return result


SERVICES = web.AppKey("services", ApiServices)


class ApiError(Exception):
    """A 400 ERR answer."""

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.msg = msg


# ---- envelopes (http-api §0.3) --------------------------------------------------------------


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(value), status=status, content_type="application/json")


def ok() -> web.Response:
    return json_response({"status": 200})


def ok_data(data: Any) -> web.Response:
    return json_response({"status": 200, "data": data})


def err(msg: str) -> web.Response:
    return json_response({"msg": msg, "status": 400}, status=400)


def status(code: int) -> web.Response:
    return json_response({"status": code})


# ---- request decoding -----------------------------------------------------------------------


async def decode_body(request: web.Request, type_: type[T]) -> T:
    """The JSON body as `type_`; ApiError (-> 400) on bad JSON, wrong types, or bad base64."""
    raw = await request.read()
    try:
        return msgspec.json.decode(raw, type=type_)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ApiError(f"数据格式有误！{exc}") from exc
    except RecursionError as exc:  # nesting deeper than the decoder follows
        raise ApiError("数据格式有误！nested too deeply") from exc


def services(request: web.Request) -> ApiServices:
    return request.app[SERVICES]


# ---- the app --------------------------------------------------------------------------------


_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Allow-Methods": "POST, OPTIONS, GET, PUT,DELETE,PATCH",
    "Access-Control-Allow-Headers": (
        "Content-Type, Authorization, Content-Length, Accept-Encoding, X-CSRF-Token, token, "
        "accept, origin, Cache-Control, X-Requested-With, appid, noncestr, sign, timestamp"
    ),
}


@web.middleware
async def _manager_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With a managerToken configured, every request needs header `token` (http-api §0.4);
    this runs before CORS, so a refused preflight gets no CORS headers either."""
    expected = request.app[SERVICES].config.manager_token
    if expected and request.headers.get("token") != expected:
        return web.Response(status=401)
    return await handler(request)


@web.middleware
async def _cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        response: web.StreamResponse = web.Response(status=204)
    else:
        response = await handler(request)
    response.headers.update(_CORS_HEADERS)
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return err(exc.msg)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return web.Response(status=404, text=_NOT_FOUND)
    except web.HTTPException:
        raise
    except Exception:  # request boundary: log it, answer 500 with an empty body, keep serving
        log.exception("%s %s failed", request.method, request.path)
        return web.Response(status=500)


def make_api_app(api: ApiServices) -> web.Application:
    from wukongim.api import (  # noqa: PLC0415 - the route modules import this one
        routes_channels,
        routes_history,
        routes_messages,
        routes_users,
    )

    app = web.Application(
        middlewares=[_manager_token, _cors, _errors], client_max_size=8 * 1024 * 1024
    )
    app[SERVICES] = api
    routes: Sequence[web.RouteDef] = (
        *routes_users.ROUTES,
        *routes_channels.ROUTES,
        *routes_messages.ROUTES,
        *routes_history.ROUTES,
    )
    app.add_routes(routes)
    return app
