"""One node: its Raft groups (a `RawNode` each), a state machine per group and the Raft log store,
stepped synchronously. The asyncio server (server/raft_loop.py) and the simulator (sim/) drive
the same class.

Rules of this file:
- No asyncio, no clock, no sockets. Time arrives as `tick()`, messages as `step()`, randomness
  as the `random.Random` handed in. Groups are always visited in ascending id order.
- One loop turn follows etcd's order, for ALL groups at once (group commit):

      batch = node.collect_ready()      # every group's Ready
      node.persist(batch)               # 1. buffered writes to the store (no sync)
      store.sync()                      #    ONE sync for all groups (caller: maybe in a thread)
      out = node.after_sync(batch)      # 2. messages per peer, 3. apply, 4. reads, advance
      transport.send(out.messages)      #    only now may anything leave the node

  `process_ready()` does the four steps in one call, for callers without a thread to spare.
  Between `persist` and `after_sync` the caller may `step`/`tick`/`propose`, but must not call
  `collect_ready` again.
- The state machines are volatile: at `restart()` each is restored from its group's last
  snapshot and the log is replayed from there (the core hands committed entries out again).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from wukongim.raft import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RawNode,
    Ready,
    RestoreState,
    Snapshot,
    SnapshotMeta,
    SoftState,
    Status,
    decode_conf_state,
    encode_conf_state,
)
from wukongim.store.interfaces import GroupLogState, LogEntry, RaftLogStore
from wukongim.store.interfaces import HardState as StoredHardState
from wukongim.store.interfaces import SnapshotMeta as StoredSnapshotMeta

logger = logging.getLogger(__name__)


class StateMachine(Protocol):
    """A group's replicated state machine. `apply` must be deterministic: no clock, no
    randomness, nothing but (its state, the entry)."""

    def apply(self, index: int, data: bytes) -> object: ...

    def snapshot(self) -> bytes: ...

    def restore(self, data: bytes) -> None: ...


StateMachineFactory = Callable[[int], StateMachine]  # group id -> a fresh, empty state machine


@dataclass(frozen=True, slots=True)
class NodeConfig:
    raft: RaftConfig = field(default_factory=RaftConfig)
    # Take a local snapshot (and compact the log) once this many entries were applied since the
    # last one; 0 disables snapshots.
    snapshot_entries: int = 1000


@dataclass(frozen=True, slots=True)
class Proposal:
    """A proposal accepted by the leader: it committed iff the entry applied at `index` has
    `term` (see `Applied.matches`)."""

    group: int
    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Applied:
    """One committed entry, applied on this node. `result` is the state machine's answer (None for
    no-ops and configuration changes)."""

    group: int
    index: int
    term: int
    kind: EntryKind
    data: bytes
    result: object

    def matches(self, proposal: Proposal) -> bool:
        return (
            self.group == proposal.group
            and self.index == proposal.index
            and (self.term == proposal.term)
        )

    def describe(self) -> str:
        kind = "cc" if self.kind == EntryKind.CONF_CHANGE else "n"
        return f"g{self.group} apply {self.term}/{self.index}{kind} {self.data[:40]!r}"


@dataclass(frozen=True, slots=True)
class ReadDone:
    """A read-index request whose index is applied: serve it from the state machine NOW, before
    the next `after_sync` applies more."""

    group: int
    context: bytes
    index: int


@dataclass(slots=True)
class ReadyBatch:
    """Every group's Ready of one loop turn, in group order."""

    readies: list[tuple[int, Ready]] = field(default_factory=list)
    new_groups: list[int] = field(default_factory=list)  # joined groups to record in the store

    def __bool__(self) -> bool:
        return bool(self.readies or self.new_groups)

    @property
    def needs_sync(self) -> bool:
        return bool(self.new_groups) or any(
            rd.entries or rd.hard_state is not None or rd.snapshot is not None
            for _, rd in self.readies
        )


@dataclass(slots=True)
class NodeOutput:
    """What one loop turn produced, for the caller to act on."""

    messages: dict[int, list[Message]] = field(default_factory=dict)  # destination -> batch
    applied: list[Applied] = field(default_factory=list)
    reads: list[ReadDone] = field(default_factory=list)
    soft_states: list[tuple[int, SoftState]] = field(default_factory=list)
    snapshots_restored: list[tuple[int, int]] = field(default_factory=list)  # (group, index)


@dataclass(slots=True)
class _Group:
    raw: RawNode
    machine: StateMachine
    applied: int = 0
    snapshot_index: int = 0
    pending_reads: list[tuple[bytes, int]] = field(default_factory=list)  # (ctx, index)


class Node:
    """All Raft groups of one node. See the module header for the loop-turn contract."""

    def __init__(
        self,
        node_id: int,
        store: RaftLogStore,
        state_machine_factory: StateMachineFactory,
        rng: random.Random,
        config: NodeConfig | None = None,
    ) -> None:
        self.id = node_id
        self.store = store
        self._factory = state_machine_factory
        self._rng = rng
        self.config = config or NodeConfig()
        self._groups: dict[int, _Group] = {}
        self._new_groups: list[int] = []  # joined groups not yet recorded in the store
        self._outstanding = False  # a collected batch awaits after_sync

    # -- groups --------------------------------------------------------------------------------

    def create_group(
        self, group: int, voters: Sequence[int] = (), learners: Sequence[int] = ()
    ) -> None:
        """Start a group here. Initial members pass the same voters/learners on every member;
        a node joining an existing group passes none and waits for the leader."""
        assert group not in self._groups, f"group {group} exists on n{self.id}"
        conf = ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
        raw = RawNode(self.id, group, self.config.raft, self._rng, RestoreState(conf_state=conf))
        self._groups[group] = _Group(raw, self._factory(group))
        if not voters:
            # Make the group known to a restart even before the leader reaches us: written with
            # the next loop turn (never here, a sync may be running in another thread).
            self._new_groups.append(group)

    def remove_group(self, group: int) -> None:
        """Forget a group (this node was removed from it). Its stored log stays until reused."""
        self._groups.pop(group, None)

    def restart(self) -> None:
        """Drop all volatile state and reload every group from the store (after a crash)."""
        self._groups = {}
        self._new_groups = []
        self._outstanding = False
        for group in self.store.groups():
            self._groups[group] = self._load_group(group, self.store.load(group))

    def _load_group(self, group: int, state: GroupLogState) -> _Group:
        machine = self._factory(group)
        snapshot: Snapshot | None = None
        if state.snapshot.index > 0:
            meta = SnapshotMeta(
                state.snapshot.index, state.snapshot.term, decode_conf_state(state.snapshot.conf)
            )
            snapshot = Snapshot(meta, state.snapshot_data)
            machine.restore(state.snapshot_data)
        hs = state.hard_state
        restore = RestoreState(
            hard_state=HardState(hs.term, hs.vote, hs.commit),
            snapshot=snapshot,
            entries=tuple(Entry(e.index, e.term, EntryKind(e.kind), e.data) for e in state.entries),
            applied=state.snapshot.index,
        )
        raw = RawNode(self.id, group, self.config.raft, self._rng, restore)
        index = state.snapshot.index
        return _Group(raw, machine, applied=index, snapshot_index=index)

    @property
    def groups(self) -> list[int]:
        return sorted(self._groups)

    def has_group(self, group: int) -> bool:
        return group in self._groups

    def status(self, group: int) -> Status:
        return self._groups[group].raw.status()

    def raw(self, group: int) -> RawNode:
        """The group's core, for inspection by checkers (never mutate it from outside)."""
        return self._groups[group].raw

    def state_machine(self, group: int) -> StateMachine:
        return self._groups[group].machine

    def applied_index(self, group: int) -> int:
        return self._groups[group].applied

    def leader(self, group: int) -> int:
        """The leader this node knows of (0: none or unknown group)."""
        entry = self._groups.get(group)
        return entry.raw.leader_id if entry is not None else 0

    # -- inputs --------------------------------------------------------------------------------

    def tick(self) -> None:
        for group in sorted(self._groups):
            self._groups[group].raw.tick()

    def step(self, msg: Message) -> None:
        """Feed one message from a peer; messages for groups unknown here are dropped."""
        entry = self._groups.get(msg.group)
        if entry is None:
            logger.debug("n%d: drop message for unknown group %d", self.id, msg.group)
            return
        entry.raw.step(msg)

    def propose(self, group: int, data: bytes) -> Proposal | None:
        """Propose `data` to `group`. None if this node cannot (not the leader, unknown group)."""
        entry = self._groups.get(group)
        if entry is None:
            return None
        try:
            index = entry.raw.propose(data)
        except NotLeader:
            return None
        return Proposal(group, index, entry.raw.term)

    def propose_batch(self, group: int, datas: Sequence[bytes]) -> list[Proposal] | None:
        """Propose many entries at once (one per item, in order); None if this node cannot."""
        entry = self._groups.get(group)
        if entry is None or not datas:
            return None if entry is None else []
        try:
            first = entry.raw.propose_batch(tuple(datas))
        except NotLeader:
            return None
        term = entry.raw.term
        return [Proposal(group, first + offset, term) for offset in range(len(datas))]

    def propose_conf_change(self, group: int, change: ConfChange) -> Proposal | None:
        entry = self._groups.get(group)
        if entry is None:
            return None
        try:
            index = entry.raw.propose_conf_change(change)
        except (NotLeader, ProposalDropped):
            return None
        return Proposal(group, index, entry.raw.term)

    def transfer_leader(self, group: int, target: int) -> bool:
        entry = self._groups.get(group)
        if entry is None:
            return False
        try:
            entry.raw.transfer_leader(target)
        except (NotLeader, ProposalDropped):
            return False
        return True

    def campaign(self, group: int) -> None:
        """Start an election in `group` now (tests, preferred-leader balancing)."""
        self._groups[group].raw.campaign()

    def report_unreachable(self, group: int, peer: int) -> None:
        """The transport could not deliver to `peer`: the leader probes instead of pipelining."""
        entry = self._groups.get(group)
        if entry is not None:
            entry.raw.report_unreachable(peer)

    def report_snapshot(self, group: int, peer: int, *, ok: bool) -> None:
        """The transport finished sending a MSG_SNAP to `peer` (ok=False: resend later)."""
        entry = self._groups.get(group)
        if entry is not None:
            entry.raw.report_snapshot(peer, ok=ok)

    def read_index(self, group: int, context: bytes) -> bool:
        """Ask for a linearizable read; a `ReadDone` with this context comes out of a later
        `after_sync` (or never, if leadership changes: time out and retry)."""
        entry = self._groups.get(group)
        if entry is None:
            return False
        try:
            entry.raw.read_index(context)
        except NotLeader:
            return False
        return True

    # -- the loop turn -------------------------------------------------------------------------

    def collect_ready(self) -> ReadyBatch:
        """Step 0: take every group's Ready. Then `persist`, sync, `after_sync`."""
        assert not self._outstanding, "after_sync() the previous batch first"
        batch = ReadyBatch(new_groups=[g for g in self._new_groups if g in self._groups])
        self._new_groups = []
        for group in sorted(self._groups):
            raw = self._groups[group].raw
            if raw.has_ready():
                batch.readies.append((group, raw.ready()))
        self._outstanding = bool(batch)
        return batch

    def persist(self, batch: ReadyBatch) -> None:
        """Step 1: buffer snapshots, entries and hard states in the store. The caller then
        calls `store.sync()` once (only if `batch.needs_sync`) and `after_sync(batch)`."""
        store = self.store
        for group in batch.new_groups:
            store.set_hard_state(group, StoredHardState())
        for group, rd in batch.readies:
            if rd.snapshot is not None:
                meta = rd.snapshot.meta
                stored = StoredSnapshotMeta(meta.index, meta.term, encode_conf_state(meta.conf))
                store.apply_snapshot(group, stored, rd.snapshot.data)
            if rd.entries:
                store.append(group, [LogEntry(e.index, e.term, e.kind, e.data) for e in rd.entries])
            if rd.hard_state is not None:
                hs = rd.hard_state
                store.set_hard_state(group, StoredHardState(hs.term, hs.vote, hs.commit))

    def after_sync(self, batch: ReadyBatch) -> NodeOutput:
        """Steps 2-4, once the batch is durable: collect messages per destination, apply
        committed entries, release reads, advance every group."""
        out = NodeOutput()
        for group, rd in batch.readies:
            for msg in rd.messages:
                out.messages.setdefault(msg.to, []).append(msg)
            entry = self._groups.get(group)
            if entry is None:  # removed meanwhile
                continue
            if rd.soft_state is not None:
                out.soft_states.append((group, rd.soft_state))
            self._apply(group, entry, rd, out)
            entry.raw.advance(rd)
            self._maybe_snapshot(group, entry)
        self._outstanding = False
        out.messages = {dst: out.messages[dst] for dst in sorted(out.messages)}
        return out

    def process_ready(self) -> NodeOutput:
        """One whole loop turn with a synchronous sync (tests, simulator, single thread)."""
        batch = self.collect_ready()
        if not batch:
            return NodeOutput()
        self.persist(batch)
        if batch.needs_sync:
            self.store.sync()
        return self.after_sync(batch)

    # -- helpers -------------------------------------------------------------------------------

    def _apply(self, group: int, entry: _Group, rd: Ready, out: NodeOutput) -> None:
        if rd.snapshot is not None:
            entry.machine.restore(rd.snapshot.data)
            entry.applied = entry.snapshot_index = rd.snapshot.meta.index
            out.snapshots_restored.append((group, entry.applied))
        for e in rd.committed_entries:
            result: object = None
            if e.kind == EntryKind.NORMAL and e.data:
                result = entry.machine.apply(e.index, e.data)
            entry.applied = e.index
            out.applied.append(Applied(group, e.index, e.term, e.kind, e.data, result))
        if rd.read_states:
            entry.pending_reads.extend((rs.context, rs.index) for rs in rd.read_states)
        if entry.pending_reads:
            waiting: list[tuple[bytes, int]] = []
            for context, index in entry.pending_reads:
                if index <= entry.applied:
                    out.reads.append(ReadDone(group, context, index))
                else:
                    waiting.append((context, index))
            entry.pending_reads = waiting

    def _maybe_snapshot(self, group: int, entry: _Group) -> None:
        every = self.config.snapshot_entries
        if not every or entry.applied - entry.snapshot_index < every:
            return
        if entry.raw.log.stable < entry.applied:
            return  # the core compacts only durable entries; try again next turn
        snapshot = entry.raw.compact(entry.applied, entry.machine.snapshot())
        meta = snapshot.meta
        stored = StoredSnapshotMeta(meta.index, meta.term, encode_conf_state(meta.conf))
        # Buffered: durable with the next sync. Until then the log still holds these entries.
        self.store.apply_snapshot(group, stored, snapshot.data)
        entry.snapshot_index = meta.index
