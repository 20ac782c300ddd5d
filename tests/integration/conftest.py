"""Integration tests of the node run on uvloop, the loop `wukongim serve` uses, except the HTTP
API tests, which keep the stdlib loop so both loops are exercised."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

_STDLIB_LOOP_MODULES = ("test_http_api", "test_peer_links")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.path.stem in _STDLIB_LOOP_MODULES:
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}
