"""Simulated time: a tick counter the simulator advances by hand.

Rules of this file: nothing here reads the real clock. One tick is `tick_ms` of simulated time,
so shells that want a `wukongim.clock.Clock` can be given a `SimClock`.
"""

from __future__ import annotations


class SimClock:
    """Ticks since the start of the simulation. Implements `wukongim.clock.Clock`."""

    def __init__(self, *, tick_ms: int = 10, epoch_ms: int = 1_700_000_000_000) -> None:
        self.tick_ms = tick_ms
        self.epoch_ms = epoch_ms
        self.ticks = 0

    def advance(self, ticks: int = 1) -> int:
        assert ticks >= 0, "simulated time never goes back"
        self.ticks += ticks
        return self.ticks

    def now_ms(self) -> int:
        return self.epoch_ms + self.ticks * self.tick_ms

    def monotonic_s(self) -> float:
        return self.ticks * self.tick_ms / 1000.0
