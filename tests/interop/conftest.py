"""Fixtures for the interop tests: the bundled JS SDK driver and a server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.interop.harness import ServerAddrs, build_driver, node_binary, running_server


@pytest.fixture(scope="session")
def sdk_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sdk_user.mjs bundled with wukongimjssdk 1.0.4 and `ws` (skips only when node is missing)."""
    if node_binary() is None:
        pytest.skip("node is not installed (the JS SDK interop tests need Node.js >= 20)")
    return build_driver(tmp_path_factory.mktemp("sdk-driver"))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerAddrs]:
    async with running_server(tmp_path) as addrs:
        yield addrs
