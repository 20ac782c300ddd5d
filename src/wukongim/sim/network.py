"""A simulated network between nodes: delay, drop, duplicate, reorder, partitions and clogs.

Rules of this file: every random choice comes from the `random.Random` handed in; no real time
(time is the simulator's tick). Links are directed: (source, destination).

* Each packet gets its own delay drawn from [delay_min, delay_max] ticks, so packets reorder.
* `drop` and `duplicate` probabilities apply per packet.
* A partition blocks links: blocked packets are dropped when sent and when they would arrive.
  Asymmetric partitions block one direction only.
* A clogged link holds its packets (FoundationDB's "clogging"): they stay queued until the link
  is unclogged and then arrive with a fresh delay. Swizzle-clogging clogs links one by one and
  unclogs them in a random order; the cluster drives that through `clog` and `unclog`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    delay_min: int = 1
    delay_max: int = 3
    drop: float = 0.0
    duplicate: float = 0.0

    def describe(self) -> str:
        return (
            f"delay={self.delay_min}..{self.delay_max} drop={self.drop:.3f} "
            f"duplicate={self.duplicate:.3f}"
        )


@dataclass(slots=True)
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    blocked: int = 0


class SimNetwork(Generic[P]):
    """Packets of type P between integer node ids."""

    def __init__(self, rng: random.Random, options: NetworkOptions) -> None:
        self._rng = rng
        self.options = options
        self._queue: list[tuple[int, int, int, int, P]] = []  # (due, seq, src, dst, packet)
        self._seq = 0
        self._blocked: set[tuple[int, int]] = set()
        self._clogged: set[tuple[int, int]] = set()
        self._held: dict[tuple[int, int], list[P]] = {}
        self.stats = NetworkStats()

    # -- sending and delivering ---------------------------------------------------------------

    def send(self, src: int, dst: int, packets: Iterable[P], now: int) -> None:
        """Queue packets from src to dst (one batch per peer per turn)."""
        for packet in packets:
            self.stats.sent += 1
            if (src, dst) in self._blocked:
                self.stats.blocked += 1
                continue
            if self.options.drop and self._rng.random() < self.options.drop:
                self.stats.dropped += 1
                continue
            self._enqueue(src, dst, packet, now)
            if self.options.duplicate and self._rng.random() < self.options.duplicate:
                self.stats.duplicated += 1
                self._enqueue(src, dst, packet, now)

    def _enqueue(self, src: int, dst: int, packet: P, now: int) -> None:
        delay = self._rng.randint(self.options.delay_min, self.options.delay_max)
        self._seq += 1
        heapq.heappush(self._queue, (now + delay, self._seq, src, dst, packet))

    def deliver(self, now: int) -> list[tuple[int, int, P]]:
        """Every packet due at or before `now`, in (due, send order); clogged links hold theirs."""
        out: list[tuple[int, int, P]] = []
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, _, src, dst, packet = heapq.heappop(queue)
            link = (src, dst)
            if link in self._blocked:
                self.stats.blocked += 1
            elif link in self._clogged:
                self._held.setdefault(link, []).append(packet)
            else:
                self.stats.delivered += 1
                out.append((src, dst, packet))
        return out

    @property
    def in_flight(self) -> int:
        return len(self._queue) + sum(len(held) for held in self._held.values())

    # -- partitions ----------------------------------------------------------------------------

    def partition(self, side_a: Iterable[int], side_b: Iterable[int], *, symmetric: bool) -> None:
        """Block a->b for every a in side_a, b in side_b (and b->a if symmetric)."""
        list_b = sorted(side_b)
        for a in sorted(side_a):
            for b in list_b:
                self._blocked.add((a, b))
                if symmetric:
                    self._blocked.add((b, a))

    def heal(self) -> None:
        self._blocked.clear()

    def is_blocked(self, src: int, dst: int) -> bool:
        return (src, dst) in self._blocked

    @property
    def blocked_links(self) -> list[tuple[int, int]]:
        return sorted(self._blocked)

    # -- clogging ------------------------------------------------------------------------------

    def clog(self, src: int, dst: int) -> None:
        self._clogged.add((src, dst))

    def unclog(self, src: int, dst: int, now: int) -> None:
        link = (src, dst)
        self._clogged.discard(link)
        for packet in self._held.pop(link, []):
            self._enqueue(src, dst, packet, now)

    @property
    def clogged_links(self) -> list[tuple[int, int]]:
        return sorted(self._clogged)

    def unclog_all(self, now: int) -> None:
        links = self.clogged_links
        self._rng.shuffle(links)
        for src, dst in links:
            self.unclog(src, dst, now)

    def drop_to(self, node: int) -> None:
        """Forget packets queued or held for `node` (it crashed: its sockets are gone)."""
        self._queue = [item for item in self._queue if item[3] != node]
        heapq.heapify(self._queue)
        for link in [link for link in self._held if link[1] == node]:
            del self._held[link]
