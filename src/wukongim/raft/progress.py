"""The leader's view of each follower: match/next, flow-control state and in-flight window.

Rules of this file (etcd's progress states):
- PROBE: we do not know where the follower's log matches; send one MsgApp, then wait for its
  answer or a heartbeat response before sending the next.
- REPLICATE: the follower is in sync; pipeline MsgApps optimistically (`next` jumps ahead) up
  to `max_inflight_msgs` unacknowledged messages.
- SNAPSHOT: a MsgSnap is on its way; send nothing else until it is acknowledged, reported
  failed, or `snapshot_wait_ticks` runs out (a lost MsgSnap must not stall the follower forever).
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


class _PS:  # plain-class mirror: Enum member lookups are slow on CPython 3.11
    PROBE = ProgressState.PROBE
    REPLICATE = ProgressState.REPLICATE
    SNAPSHOT = ProgressState.SNAPSHOT


class Progress:
    __slots__ = (
        "inflight_max",
        "inflights",
        "is_learner",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "snapshot_wait_ticks",
        "state",
    )

    def __init__(self, next_index: int, inflight_max: int, *, is_learner: bool) -> None:
        self.match = 0
        self.next = next_index
        self.state = _PS.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_wait_ticks = 0
        self.recent_active = False
        self.is_learner = is_learner
        self.inflight_max = inflight_max
        self.inflights: deque[int] = deque()  # last index of each MsgApp in flight

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_wait_ticks = 0
        self.inflights.clear()

    def become_probe(self) -> None:
        if self.state == _PS.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset(_PS.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset(_PS.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset(_PS.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset(_PS.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An accepted MsgAppResp: returns True if `match` moved forward."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        return updated

    def maybe_decrease_to(self, rejected: int, match_hint: int) -> bool:
        """A rejected MsgApp for index `rejected`. Returns False if the rejection is stale."""
        if self.state == _PS.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == _PS.PROBE:
            return self.probe_sent
        if self.state == _PS.REPLICATE:
            return len(self.inflights) >= self.inflight_max
        return True

    def sent_entries(self, last_index: int) -> None:
        """Record a MsgApp carrying entries up to `last_index`."""
        if self.state == _PS.REPLICATE:
            self.next = last_index + 1
            self.inflights.append(last_index)
        else:
            self.probe_sent = True

    def free_inflights_to(self, index: int) -> None:
        inflights = self.inflights
        while inflights and inflights[0] <= index:
            inflights.popleft()

    def describe(self) -> str:
        return (
            f"{self.state.value} match={self.match} next={self.next} "
            f"inflight={len(self.inflights)}{' learner' if self.is_learner else ''}"
        )
