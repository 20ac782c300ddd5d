"""The only module that reads real time.

Cores never call this: time reaches them as ticks or as a `now` argument. Shells take a `Clock`
so tests and the simulator can substitute their own.
"""

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch."""
        ...

    def monotonic_s(self) -> float:
        """Monotonic seconds, for timeouts and latency."""
        ...


class SystemClock:
    """The real clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic_s(self) -> float:
        return time.monotonic()
