"""The RawNode's inputs and outputs: config, restore state, Ready, status, errors.

Rules of this file: plain data only. Nothing here decides anything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from wukongim.raft.messages import ConfState, Entry, HardState, Message, ReadState, Snapshot


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre_candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class RaftError(Exception):
    """Base of the errors the core raises at its caller."""


class NotLeader(RaftError):  # noqa: N818 - the name callers match on
    """The proposal was refused here. `leader` is the known leader (0: unknown); during a
    leadership transfer it is the transfer target. Retry there."""

    def __init__(self, leader: int, reason: str = "not leader") -> None:
        super().__init__(f"{reason} (leader hint: {leader})")
        self.leader = leader
        self.reason = reason


class ProposalDropped(RaftError):  # noqa: N818 - reads as an event, like NotLeader
    """The leader refused the proposal (e.g. a configuration change is still pending)."""


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Times are in ticks: the shell calls `tick()` at a fixed period (e.g. 100 ms)."""

    election_tick: int = 10
    heartbeat_tick: int = 1
    max_inflight_msgs: int = 256  # MsgApp in flight per follower while replicating
    max_size_per_msg: int = 1 << 20  # bytes of entry data per MsgApp (at least one entry)
    max_committed_size_per_ready: int = 8 << 20  # bytes of committed entries per Ready
    pre_vote: bool = True
    check_quorum: bool = True

    def __post_init__(self) -> None:
        if self.heartbeat_tick <= 0 or self.election_tick <= self.heartbeat_tick:
            raise ValueError("need 0 < heartbeat_tick < election_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be positive")


@dataclass(frozen=True, slots=True)
class RestoreState:
    """Everything the core needs at start, read from the durable log store by the node layer.

    - A brand-new group: only `conf_state` (the initial members, same on every initial member).
      The core then writes bootstrap CONF_CHANGE entries (term 1, one per member) so that later
      joiners learn the membership from the log; they come out in the first Ready.
    - A node joining an existing group: everything empty (`conf_state` empty too); it waits for
      the leader's entries or snapshot.
    - A restart: `hard_state`, `snapshot` (or None), `entries` (all entries after the snapshot,
      in order) and `applied` (the state machine's durable applied index; committed entries after
      it are handed out again). The membership is the snapshot's (else `conf_state`) plus the
      CONF_CHANGE entries up to the commit index.
    """

    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: tuple[Entry, ...] = ()
    conf_state: ConfState = field(default_factory=ConfState)
    applied: int = 0


@dataclass(frozen=True, slots=True)
class SoftState:
    leader: int
    role: Role

    def describe(self) -> str:
        return f"soft(leader={self.leader} role={self.role.value})"


@dataclass(frozen=True, slots=True)
class Ready:
    """Work for the caller, in this order (etcd's):

    1. persist `snapshot` (it replaces the whole log: store it, drop every stored entry, and
       restore the state machine from its data), `entries` (the first may be <= the last
       persisted index: truncate the stored suffix from there) and `hard_state` (if not None);
    2. send `messages` (only after step 1 is durable);
    3. apply `committed_entries` in order (CONF_CHANGE entries are applied by the core itself at
       `advance`; NORMAL entries with empty data are leader no-ops);
    4. serve `read_states` once applied >= their index;
    5. call `advance(ready)` before the next `ready()`.
    """

    hard_state: HardState | None
    soft_state: SoftState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]

    def describe(self) -> str:
        parts = []
        if self.hard_state is not None:
            parts.append(self.hard_state.describe())
        if self.soft_state is not None:
            parts.append(self.soft_state.describe())
        if self.entries:
            parts.append(f"persist[{self.entries[0].index}..{self.entries[-1].index}]")
        if self.snapshot is not None:
            parts.append(self.snapshot.describe())
        if self.committed_entries:
            first, last = self.committed_entries[0].index, self.committed_entries[-1].index
            parts.append(f"apply[{first}..{last}]")
        if self.messages:
            parts.append(f"msgs={len(self.messages)}")
        if self.read_states:
            parts.append(f"reads={len(self.read_states)}")
        return "ready(" + " ".join(parts) + ")"


class _ReadyBuilder:
    # Same slots as Ready: see messages.py "Fast constructors" (one Ready per group per turn).
    __slots__ = (
        "committed_entries",
        "entries",
        "hard_state",
        "messages",
        "read_states",
        "snapshot",
        "soft_state",
    )
    hard_state: HardState | None
    soft_state: SoftState | None
    entries: tuple[Entry, ...]
    snapshot: Snapshot | None
    committed_entries: tuple[Entry, ...]
    messages: tuple[Message, ...]
    read_states: tuple[ReadState, ...]


assert sorted(_ReadyBuilder.__slots__) == sorted(Ready.__slots__)


def make_ready(  # noqa: PLR0917 - mirrors Ready's fields, all positional
    hard_state: HardState | None,
    soft_state: SoftState | None,
    entries: tuple[Entry, ...],
    snapshot: Snapshot | None,
    committed_entries: tuple[Entry, ...],
    messages: tuple[Message, ...],
    read_states: tuple[ReadState, ...],
) -> Ready:
    """Same as `Ready(...)` with every field given positionally, faster."""
    rd = object.__new__(_ReadyBuilder)
    rd.hard_state = hard_state
    rd.soft_state = soft_state
    rd.entries = entries
    rd.snapshot = snapshot
    rd.committed_entries = committed_entries
    rd.messages = messages
    rd.read_states = read_states
    rd.__class__ = Ready  # type: ignore[assignment]
    return rd  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class ProgressStatus:
    match: int
    next: int
    state: str  # "probe" | "replicate" | "snapshot"
    is_learner: bool
    recent_active: bool


@dataclass(frozen=True, slots=True)
class Status:
    node_id: int
    group: int
    role: Role
    term: int
    vote: int
    leader: int
    commit: int
    applied: int
    last_index: int
    first_index: int  # first index still in the in-memory log (snapshot index + 1)
    conf: ConfState
    lead_transferee: int
    progress: dict[int, ProgressStatus]  # empty unless leader

    def describe(self) -> str:
        return (
            f"n{self.node_id} g{self.group} {self.role.value} t{self.term} lead={self.leader} "
            f"commit={self.commit} applied={self.applied} last={self.last_index}"
        )
