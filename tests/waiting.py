"""Waiting in tests: poll a condition until it holds, with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

WAIT_S = 10.0
POLL_S = 0.005


async def wait_until(cond: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
    """Return once `cond()` is true; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not cond():  # noqa: ASYNC110 (polling a condition with a deadline)
            await asyncio.sleep(POLL_S)
