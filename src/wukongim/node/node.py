"""One node: its Raft groups (a `RawNode` each), a state machine per group and the Raft log store,
stepped synchronously. The asyncio server (server/raft_loop.py) and the simulator (sim/) drive
the same class.

Rules of this file:
- No asyncio, no clock, no sockets. Time arrives as `tick()`, messages as `step()`, randomness
  as the `random.Random` handed in. Groups are always visited in ascending id order.
- One loop turn follows etcd's order, for ALL groups at once (group commit):

      batch = node.collect_ready()           # every group's Ready
      node.persist(batch)                    # 1. buffered writes to the store (no sync)
      early = node.apply_durable(batch)      #    optional: apply what was durable already
      sent = node.messages_before_sync(batch)  # optional: a leader's MsgApp/heartbeats
      if batch.needs_sync:
          store.sync()                       #    ONE sync for all groups (maybe in a thread)
      out = node.after_sync(batch)           # 2. other messages, 3. apply the rest, 4. reads
      transport.send(out.messages)           #    only now may anything else leave the node

  `process_ready()` does it all in one call (without the early sends), for callers without a
  thread to spare. Between `persist` and `after_sync` the caller may `tick`/`propose`, and
  `step` unless it called `messages_before_sync`; it must not call `collect_ready` again.
- The state machines are volatile: at `restart()` each is restored from its group's last
  snapshot and the log is replayed from there (the core hands committed entries out again).

When a sync is needed, and what may be applied before it (etcd's rules, why they are safe):
- `needs_sync` is etcd's `MustSync`: a new snapshot, new entries, or a hard state whose TERM
  or VOTE changed. A hard state that only moves `commit` is still written (buffered) but does
  not by itself cost an fsync; it becomes durable with the next sync. Losing it in a crash is
  harmless: the commit index is never needed for safety, only for progress. On restart the
  core starts from the older commit (or the snapshot index, whichever is higher) and re-learns
  the rest from the leader (a single-voter group recommits its durable tail at once). The
  term and vote, by contrast, must be durable before any message of the same Ready leaves
  (no double vote, no term going back), so they still force the sync.
- `apply_durable` applies, before the sync, the committed entries at or below the group's
  durable index (`log.stable`, taken before this batch's writes): committed means a quorum
  holds them durably (a follower acknowledges only after its sync; a leader's commit index
  sent to followers is covered below), and at or below `stable` they are on our disk too, so
  nothing this batch's sync could still lose concerns them. Committed entries above it are
  applied only after the sync, as before (etcd: committed entries are handed out only once
  persisted, or applied after the Ready that carries them is persisted). The check matters
  for a leader, whose core counts its own unsynced append toward the commit index: a single
  voter commits its append at once, and with early sends (below) a follower may acknowledge an
  entry before the leader's copy is durable. A Ready that installs a snapshot is applied only
  after the sync (the restore comes first).
- `messages_before_sync` lets a leader replicate while its own append is being synced (Raft
  thesis §10.2.1). Only MsgApp and heartbeats, only from a leader of a group with two or more
  voters, and only when the same Ready does not change term or vote (those must be durable
  before anyone hears of them). Everything else waits for the sync: a MsgAppResp claims our
  entries are durable, a vote claims our term/vote are. Why the leader's commit stays safe:
  the core counts the leader's own unsynced append toward the commit index, but with two or
  more voters a commit also needs a follower's acknowledgement, and the acknowledgement of an
  entry sent early is only stepped after the sync of the batch that sent it: hence no `step`
  between `messages_before_sync` and `after_sync` (asserted), and callers step only at the
  start of a turn. So every commit index a leader computes or sends is durable on a quorum
  including itself. A single voter commits its own append at once, so its messages (to
  learners, with that commit index) wait for the sync. If the leader crashes before its sync,
  followers may hold entries of its term it lost; they were never committed, and its durable
  term keeps it from leading that term again, so no other entry can take their place in that
  term (log matching holds).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from wukongim.raft import (
    ConfChange,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RawNode,
    Ready,
    RestoreState,
    Role,
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


# A leader's messages that may leave before its own log write is durable: they claim nothing
# about our disk (unlike MsgAppResp, votes and anything sent alongside a new term or vote).
_SENDABLE_BEFORE_SYNC = frozenset((MessageType.MSG_APP, MessageType.MSG_HEARTBEAT))


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
class ProposedRange:
    """`count` consecutive proposals from `first_index`, all of leader term `term`: entry
    `first_index + k` committed iff it is applied with that term."""

    group: int
    first_index: int
    count: int
    term: int

    def __getitem__(self, k: int) -> Proposal:
        if not 0 <= k < self.count:
            raise IndexError(k)
        return Proposal(self.group, self.first_index + k, self.term)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Proposal]:
        for k in range(self.count):
            yield Proposal(self.group, self.first_index + k, self.term)


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
class AppliedRun:
    """Consecutive committed entries of one group applied in one go, with the state machine's
    result for each (None for no-ops and configuration changes): `Applied` records without
    one object per entry."""

    group: int
    entries: tuple[Entry, ...]
    results: list[object]


class _AppliedBuilder:
    # Same slots as Applied, filled with plain stores and then retyped (the trick of
    # raft/messages.py "Fast constructors"): one Applied per entry per node is on the hot path.
    __slots__ = ("data", "group", "index", "kind", "result", "term")
    group: int
    index: int
    term: int
    kind: EntryKind
    data: bytes
    result: object


assert sorted(_AppliedBuilder.__slots__) == sorted(Applied.__slots__)


def _make_applied(group: int, entry: Entry, result: object) -> Applied:
    """Same as `Applied(group, entry.index, entry.term, entry.kind, entry.data, result)`."""
    a = object.__new__(_AppliedBuilder)
    a.group = group
    a.index = entry.index
    a.term = entry.term
    a.kind = entry.kind
    a.data = entry.data
    a.result = result
    a.__class__ = Applied  # type: ignore[assignment]
    return a  # type: ignore[return-value]


# The raft core's Entry has the store's LogEntry fields (index, term, kind: an IntEnum, data)
# and is immutable: `persist` hands the core's entries to the store as they are instead of
# copying each one (the store only reads those four attributes).
assert set(Entry.__dataclass_fields__) == set(LogEntry.__dataclass_fields__)


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
    # True when the batch must be durable before `after_sync` (etcd's MustSync; see the module
    # header): new groups, entries, a snapshot, or a changed term/vote. False: skip the sync.
    needs_sync: bool = False
    # Per entry of `readies`: how many of its committed entries `apply_durable` applied already
    # (None: `apply_durable` was not called for this batch).
    applied_early: list[int] | None = None
    # Indexes into `readies` of leader Readies whose messages may leave before the sync (see
    # `messages_before_sync`), and those that did (None: it was not called for this batch).
    leader_readies: list[int] = field(default_factory=list)
    sent_early: set[int] | None = None

    def __bool__(self) -> bool:
        return bool(self.readies or self.new_groups)


@dataclass(slots=True)
class NodeOutput:
    """What one loop turn produced, for the caller to act on."""

    messages: dict[int, list[Message]] = field(default_factory=dict)  # destination -> batch
    applied_runs: list[AppliedRun] = field(default_factory=list)
    reads: list[ReadDone] = field(default_factory=list)
    soft_states: list[tuple[int, SoftState]] = field(default_factory=list)
    snapshots_restored: list[tuple[int, int]] = field(default_factory=list)  # (group, index)

    @property
    def applied(self) -> list[Applied]:
        """One record per applied entry, in order, built on each call (hot paths iterate
        `applied_runs` instead)."""
        return [
            _make_applied(run.group, e, result)
            for run in self.applied_runs
            for e, result in zip(run.entries, run.results, strict=True)
        ]

    @property
    def applied_count(self) -> int:
        return sum(len(run.entries) for run in self.applied_runs)


@dataclass(slots=True)
class _Group:
    raw: RawNode
    machine: StateMachine
    applied: int = 0
    snapshot_index: int = 0
    # term and vote of the last hard state written to the store: a Ready whose hard state
    # differs in either must be synced before its messages leave
    term: int = 0
    vote: int = 0
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
        self._steps_blocked = False  # messages_before_sync sent; after_sync not yet called

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
        self._steps_blocked = False
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
        return _Group(raw, machine, applied=index, snapshot_index=index, term=hs.term, vote=hs.vote)

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
        assert not self._steps_blocked, "step() between messages_before_sync() and after_sync()"
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

    def propose_batch(self, group: int, datas: Sequence[bytes]) -> ProposedRange | None:
        """Propose many entries at once (one per item, in order), cheaper per entry than
        `propose`. None if this node cannot (not the leader, unknown group)."""
        entry = self._groups.get(group)
        if entry is None:
            return None
        try:
            first = entry.raw.propose_batch(
                datas if isinstance(datas, list | tuple) else list(datas)
            )
        except NotLeader:
            return None
        return ProposedRange(group, first, len(datas), entry.raw.term)

    def can_propose(self, group: int) -> bool:
        """Would `propose` accept an entry for `group` right now? (A cheap check for callers
        that queue proposals and hand them over in a batch later.)"""
        entry = self._groups.get(group)
        return (
            entry is not None
            and entry.raw.role == Role.LEADER
            and not entry.raw.lead_transferee
            and self.id in entry.raw.prs
        )

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
        """Step 0: take every group's Ready. Then `persist`, (`apply_durable`,) sync if
        `batch.needs_sync`, `after_sync`."""
        assert not self._outstanding, "after_sync() the previous batch first"
        batch = ReadyBatch(new_groups=[g for g in self._new_groups if g in self._groups])
        self._new_groups = []
        needs_sync = bool(batch.new_groups)
        groups = self._groups
        for group in sorted(groups):
            entry = groups[group]
            raw = entry.raw
            if not raw.has_ready():
                continue
            rd = raw.ready()
            hs = rd.hard_state
            term_or_vote = hs is not None and (hs.term != entry.term or hs.vote != entry.vote)
            if rd.entries or rd.snapshot is not None or term_or_vote:
                needs_sync = True
            if rd.messages and not term_or_vote and raw.role == Role.LEADER and len(raw.voters) > 1:
                batch.leader_readies.append(len(batch.readies))
            batch.readies.append((group, rd))
        batch.needs_sync = needs_sync
        self._outstanding = bool(batch)
        return batch

    def persist(self, batch: ReadyBatch) -> None:
        """Step 1: buffer snapshots, entries and hard states in the store. The caller then may
        call `apply_durable(batch)`, then calls `store.sync()` once (only if
        `batch.needs_sync`) and `after_sync(batch)`."""
        store = self.store
        for group in batch.new_groups:
            store.set_hard_state(group, StoredHardState())
        for group, rd in batch.readies:
            if rd.snapshot is not None:
                meta = rd.snapshot.meta
                stored = StoredSnapshotMeta(meta.index, meta.term, encode_conf_state(meta.conf))
                store.apply_snapshot(group, stored, rd.snapshot.data)
            if rd.entries:
                store.append(group, cast("tuple[LogEntry, ...]", rd.entries))
            hs = rd.hard_state
            if hs is not None:
                store.set_hard_state(group, StoredHardState(hs.term, hs.vote, hs.commit))
                entry = self._groups.get(group)
                if entry is not None:
                    entry.term, entry.vote = hs.term, hs.vote

    def apply_durable(self, batch: ReadyBatch) -> NodeOutput:
        """Optional step between `persist` and `after_sync` (before or during the sync): apply
        the batch's committed entries that were already durable here before this batch (see
        the module header), and release the reads they satisfy. The output has no messages;
        `after_sync` applies the rest."""
        assert batch.applied_early is None, "apply_durable() twice"
        out = NodeOutput()
        early: list[int] = []
        groups = self._groups
        for group, rd in batch.readies:
            entry = groups.get(group)
            if entry is None:
                early.append(0)
                continue
            if rd.read_states:
                entry.pending_reads.extend((rs.context, rs.index) for rs in rd.read_states)
            committed = rd.committed_entries
            count = 0
            if committed and rd.snapshot is None:
                # committed entries are consecutive: those <= stable are a prefix
                count = min(len(committed), entry.raw.log.stable - committed[0].index + 1)
            if count > 0:
                self._apply_entries(group, entry, committed[:count], out)
            else:
                count = 0
            early.append(count)
            if entry.pending_reads:
                self._release_reads(group, entry, out)
        batch.applied_early = early
        return out

    def messages_before_sync(self, batch: ReadyBatch) -> dict[int, list[Message]]:
        """Optional step between `persist` and the sync: the messages a leader may send while
        its own log write is in flight (Raft thesis §10.2.1; etcd's server does the same), per
        destination. `after_sync` leaves them out. Precondition and caller's duty: no `step()`
        until `after_sync(batch)` (see the module header for why)."""
        assert batch.sent_early is None, "messages_before_sync() twice"
        out: dict[int, list[Message]] = {}
        sent: set[int] = set()
        readies = batch.readies
        for k in batch.leader_readies:
            msgs = readies[k][1].messages
            if all(m.type in _SENDABLE_BEFORE_SYNC for m in msgs):
                sent.add(k)
                for msg in msgs:
                    out.setdefault(msg.to, []).append(msg)
        batch.sent_early = sent
        self._steps_blocked = bool(sent)
        return {dst: out[dst] for dst in sorted(out)} if len(out) > 1 else out

    def after_sync(self, batch: ReadyBatch) -> NodeOutput:
        """Steps 2-4, once the batch is durable: collect messages per destination, apply the
        committed entries `apply_durable` did not, release reads, advance every group."""
        out = NodeOutput()
        early = batch.applied_early
        sent = batch.sent_early
        for k, (group, rd) in enumerate(batch.readies):
            if not sent or k not in sent:
                for msg in rd.messages:
                    out.messages.setdefault(msg.to, []).append(msg)
            entry = self._groups.get(group)
            if entry is None:  # removed meanwhile
                continue
            if rd.soft_state is not None:
                out.soft_states.append((group, rd.soft_state))
            if rd.snapshot is not None:
                entry.machine.restore(rd.snapshot.data)
                entry.applied = entry.snapshot_index = rd.snapshot.meta.index
                out.snapshots_restored.append((group, entry.applied))
            if early is None and rd.read_states:
                entry.pending_reads.extend((rs.context, rs.index) for rs in rd.read_states)
            committed = rd.committed_entries
            done = early[k] if early is not None else 0
            if done < len(committed):
                self._apply_entries(group, entry, committed[done:] if done else committed, out)
            if entry.pending_reads:
                self._release_reads(group, entry, out)
            entry.raw.advance(rd)
            self._maybe_snapshot(group, entry)
        self._outstanding = False
        self._steps_blocked = False
        if len(out.messages) > 1:
            out.messages = {dst: out.messages[dst] for dst in sorted(out.messages)}
        return out

    def process_ready(self) -> NodeOutput:
        """One whole loop turn with a synchronous sync (tests, simulator, single thread)."""
        batch = self.collect_ready()
        if not batch:
            return NodeOutput()
        self.persist(batch)
        early = self.apply_durable(batch)
        if batch.needs_sync:
            self.store.sync()
        out = self.after_sync(batch)
        if early.applied_runs or early.reads:
            out.applied_runs[:0] = early.applied_runs
            out.reads[:0] = early.reads
        return out

    # -- helpers -------------------------------------------------------------------------------

    def _apply_entries(
        self, group: int, entry: _Group, committed: tuple[Entry, ...], out: NodeOutput
    ) -> None:
        apply = entry.machine.apply
        normal = EntryKind.NORMAL
        results: list[object] = [
            apply(e.index, e.data) if e.kind == normal and e.data else None for e in committed
        ]
        out.applied_runs.append(AppliedRun(group, committed, results))
        entry.applied = committed[-1].index

    def _release_reads(self, group: int, entry: _Group, out: NodeOutput) -> None:
        """Release the queued reads whose index is applied now."""
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
