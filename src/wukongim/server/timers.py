"""The node's periodic work, in one task: idle timeouts and RECV retries.

One sweep over all sessions replaces a timer per connection (ARCHITECTURE §8). The period is a
quarter of the shortest timeout (at most 1 s), so a deadline is missed by at most that much.
"""

from __future__ import annotations

import asyncio

from wukongim.clock import Clock
from wukongim.config import Config
from wukongim.server.delivery import Delivery
from wukongim.server.sessions import SessionRegistry

SWEEP_PERIOD_MAX_S = 1.0


def sweep_period_s(config: Config) -> float:
    shortest = min(config.auth_idle_timeout_s, config.conn_idle_time_s, config.recv_retry_scan_s)
    return max(0.01, min(SWEEP_PERIOD_MAX_S, shortest / 4))


async def run_sweeps(
    config: Config, clock: Clock, registry: SessionRegistry, delivery: Delivery
) -> None:
    """Run until cancelled."""
    period = sweep_period_s(config)
    next_retry_scan = clock.monotonic_s() + config.recv_retry_scan_s
    while True:
        await asyncio.sleep(period)
        now = clock.monotonic_s()
        registry.sweep_idle(now)
        if now >= next_retry_scan:
            next_retry_scan = now + config.recv_retry_scan_s
            delivery.sweep_retries(now)
