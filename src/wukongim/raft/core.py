"""RawNode: one Raft group's consensus state machine, stepped synchronously (etcd's shape).

Rules of this file:
- Pure: no asyncio, clock, disk or sockets. Time is `tick()`, randomness is the injected
  `random.Random`, input is `step(msg)` and the propose/read/transfer calls, output is `Ready`.
- The log lives in memory (`RaftLog`). The durable store is written from `Ready` and read only
  at restart (`RestoreState`).
- Persist-before-send: the caller persists a Ready's hard state, entries and snapshot before it
  sends the Ready's messages or applies its committed entries. So the leader counts its own new
  entries as matched as soon as it appends them (no one learns of them before they are durable),
  and a one-member group commits a proposal in the very next Ready.
- Proposals and commit advances do not send at once: they mark a broadcast that `ready()`
  flushes, so everything proposed between two Readys goes out as one MsgApp per follower.
- CONF_CHANGE entries are applied by the core itself at `advance()` (single-server changes, one
  at a time); the caller only observes them.
- Term and commit index never move back (asserted).

Integration (the node layer):
- Start: `RestoreState` from `store.load(group)`: LogEntry -> `Entry(i, t, EntryKind(k), d)`,
  `decode_conf_state(meta.conf)` for the snapshot's membership (no snapshot when index 0),
  `applied` = the state store's applied index; `conf_state` = the group's initial members.
- Loop turn, for every group with `has_ready()`: `rd = ready()`; persist `rd.hard_state`,
  `rd.snapshot` (it REPLACES the log: drop every stored entry, not only those <= its index;
  restore the state machine from its data), `rd.entries`; one `store.sync()` for all groups;
  then send `rd.messages`, apply `rd.committed_entries` (skip CONF_CHANGE and empty NORMAL
  entries), serve `rd.read_states`, and `advance(rd)`.
- A proposal is done when the entry at its returned index is applied with the proposing term;
  a different term there means it was lost (retry).
- Log compaction: `snap = compact(applied_index, state_bytes)`, then persist it
  (`store.apply_snapshot(meta, data)`): the core keeps it in memory to send to lagging followers.

Multi-Raft: every message carries its `group`. A leader heartbeats each follower every
`heartbeat_tick`; for a few dozen groups per node that is a few hundred 80-byte messages a second,
which the node layer packs per peer with everything else of the loop turn, so there is no
separate heartbeat-coalescing mode. Read-index requests made between two Readys share one
heartbeat round.
"""

from __future__ import annotations

import logging
import random
from operator import attrgetter

from wukongim.raft.confchange import apply_change
from wukongim.raft.log import RaftLog
from wukongim.raft.messages import (
    CAMPAIGN_TRANSFER,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMeta,
    decode_conf_change,
    encode_conf_change,
    make_entries,
    make_entry,
    make_hard_state,
    make_message,
)
from wukongim.raft.progress import Progress, ProgressState
from wukongim.raft.quorum import VoteResult, committed_index, has_quorum
from wukongim.raft.quorum import majority_vote_result as vote_result
from wukongim.raft.read_only import ReadOnlyQueue
from wukongim.raft.ready import (
    NotLeader,
    ProgressStatus,
    ProposalDropped,
    RaftConfig,
    Ready,
    RestoreState,
    Role,
    SoftState,
    Status,
    make_ready,
)

logger = logging.getLogger(__name__)


# Plain-class mirrors of the enums used on the hot paths: on CPython 3.11 reading a member off an
# Enum class costs about ten times a plain class attribute, and `step` does it per message.
class MT:
    MSG_APP = MessageType.MSG_APP
    MSG_APP_RESP = MessageType.MSG_APP_RESP
    MSG_VOTE = MessageType.MSG_VOTE
    MSG_VOTE_RESP = MessageType.MSG_VOTE_RESP
    MSG_PRE_VOTE = MessageType.MSG_PRE_VOTE
    MSG_PRE_VOTE_RESP = MessageType.MSG_PRE_VOTE_RESP
    MSG_HEARTBEAT = MessageType.MSG_HEARTBEAT
    MSG_HEARTBEAT_RESP = MessageType.MSG_HEARTBEAT_RESP
    MSG_SNAP = MessageType.MSG_SNAP
    MSG_TIMEOUT_NOW = MessageType.MSG_TIMEOUT_NOW
    MSG_READ_INDEX = MessageType.MSG_READ_INDEX
    MSG_READ_INDEX_RESP = MessageType.MSG_READ_INDEX_RESP
    MSG_TRANSFER_LEADER = MessageType.MSG_TRANSFER_LEADER


class _Role:
    FOLLOWER = Role.FOLLOWER
    PRE_CANDIDATE = Role.PRE_CANDIDATE
    CANDIDATE = Role.CANDIDATE
    LEADER = Role.LEADER


class _Kind:
    NORMAL = EntryKind.NORMAL
    CONF_CHANGE = EntryKind.CONF_CHANGE


class _PS:
    PROBE = ProgressState.PROBE
    REPLICATE = ProgressState.REPLICATE
    SNAPSHOT = ProgressState.SNAPSHOT


# Requests a follower forwards to its leader: they are not bound to a term.
_TERMLESS = frozenset((MT.MSG_READ_INDEX, MT.MSG_TRANSFER_LEADER))
_kind_of = attrgetter("kind")
_VOTE_REQUESTS = frozenset((MT.MSG_VOTE, MT.MSG_PRE_VOTE))
_FROM_LEADER = frozenset((MT.MSG_APP, MT.MSG_HEARTBEAT, MT.MSG_SNAP))
_SNAPSHOT_WAIT_ELECTIONS = 2  # a MsgSnap unanswered this many election timeouts is resent


class RawNode:
    """One member of one Raft group.

    Drive it with `tick()` (fixed period), `step(msg)` (messages from peers of this group),
    `propose*` / `read_index` / `transfer_leader`; then, whenever `has_ready()`, take `ready()`,
    do its work in the documented order and call `advance(ready)`.
    """

    def __init__(
        self,
        node_id: int,
        group: int,
        config: RaftConfig,
        rng: random.Random,
        storage_state: RestoreState | None = None,
    ) -> None:
        assert node_id > 0, "node ids start at 1 (0 means none)"
        self.id = node_id
        self.group = group
        self.config = config
        self._rng = rng
        rs = storage_state or RestoreState()
        hs = rs.hard_state
        self.term = hs.term
        self.vote = hs.vote
        self._prev_hs = hs
        snapshot = rs.snapshot
        entries = rs.entries
        if snapshot is not None:
            # Defensive: entries older than the snapshot's term cannot follow it in a valid log
            # (left over from before the snapshot replaced the log).
            entries = tuple(e for e in entries if e.index > snapshot.meta.index)
            if entries and entries[0].term < snapshot.meta.term:
                entries = ()
        self.log = RaftLog(snapshot, entries, hs.commit)
        self.voters: tuple[int, ...] = ()
        self.learners: tuple[int, ...] = ()
        self.prs: dict[int, Progress] = {}
        self.role = _Role.FOLLOWER
        self.leader_id = 0
        self._msgs: list[Message] = []
        self._read_states: list[ReadState] = []
        self._votes: dict[int, bool] = {}
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = config.election_tick
        self.lead_transferee = 0
        self._pending_conf_index = 0
        self._reads = ReadOnlyQueue()
        self._pending_reads: list[tuple[bytes, int]] = []  # until an entry of the term commits
        self._bcast_pending = False
        self._read_round_ctx = b""  # last read request of this Ready cycle: one heartbeat round
        self._ready_outstanding = False
        self._conf_history: list[tuple[int, ConfState]] = []
        self._conf_applied = 0  # conf-change entries up to here are in effect
        self.applied = 0
        self._applying = 0  # committed entries handed out up to here
        self._restore_conf(rs)
        self._prev_ss = SoftState(0, _Role.FOLLOWER)
        self._become_follower(self.term, 0)

    def _restore_conf(self, rs: RestoreState) -> None:
        log = self.log
        if log.snapshot is not None:
            conf = log.snapshot.meta.conf
        elif not log.entries and rs.hard_state == HardState() and rs.conf_state.voters:
            self._bootstrap(rs.conf_state)
            return
        else:
            # Replaying the log's conf changes on top of the initial members is idempotent for
            # the bootstrap entries, so the node layer may always pass the initial members.
            conf = rs.conf_state
        if rs.applied > log.committed:
            # The state machine applied entries it saw committed; the hard state lagged.
            assert rs.applied <= log.last_index(), (rs.applied, log.last_index())
            log.commit_to(rs.applied)
        self._conf_history = [(log.offset, conf)]
        self._set_conf(conf, log.offset)
        # Conf changes up to the commit index are final: replay them now so that the node can
        # vote and campaign before its first Ready. Later ones apply at `advance`.
        for e in log.slice(log.offset + 1, log.committed + 1, 1 << 62) if log.committed else ():
            if e.kind == _Kind.CONF_CHANGE:
                self._apply_conf_change(decode_conf_change(e.data), e.index)
        self._conf_applied = log.committed
        self.applied = max(rs.applied, log.offset)
        self._applying = self.applied

    def _bootstrap(self, conf: ConfState) -> None:
        """A new group: write the initial members as committed CONF_CHANGE entries of term 1,
        identical on every initial member, so that later joiners learn them from the log."""
        changes = [ConfChange(ConfChangeType.ADD_VOTER, v) for v in conf.voters]
        changes += [ConfChange(ConfChangeType.ADD_LEARNER, v) for v in conf.learners]
        entries = [
            Entry(i + 1, 1, _Kind.CONF_CHANGE, encode_conf_change(cc))
            for i, cc in enumerate(changes)
        ]
        self.log.append(entries)
        self.log.commit_to(len(entries))
        self.term = 1
        self._conf_history = [(0, ConfState())]
        self._set_conf(ConfState(), 0)
        for e, cc in zip(entries, changes, strict=True):
            self._apply_conf_change(cc, e.index)
        self._conf_applied = len(entries)
        self.applied = 0
        self._applying = 0

    # =========================================================================================
    # Public API
    # =========================================================================================

    def tick(self) -> None:
        """Advance logical time by one tick."""
        if self.role == _Role.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (pre-vote first if enabled). No-op on a leader or learner."""
        self._hup(transfer=False)

    def propose(self, data: bytes) -> int:
        """Append `data` as a NORMAL entry and return its index. It is committed iff the entry
        applied at that index has the term the leader had when proposing (`self.term`).
        Raises NotLeader (with a leader hint) when not leader or a transfer is in progress."""
        pr = self.prs.get(self.id)
        if self.role is not _Role.LEADER or pr is None or self.lead_transferee:
            self._check_can_propose()  # raises NotLeader with the right hint
        assert pr is not None
        log = self.log
        index = log.offset + len(log.entries) + 1
        log.append_next(make_entry(index, self.term, _Kind.NORMAL, data))
        # _appended(index), inlined: the node layer proposes one entry at a time
        pr.match = index
        pr.next = index + 1
        if len(self.voters) == 1:
            self._maybe_commit()
        self._bcast_pending = True
        return index

    def propose_batch(self, datas: list[bytes] | tuple[bytes, ...]) -> int:
        """Append many NORMAL entries at once; returns the index of the first one."""
        self._check_can_propose()
        first = self.log.last_index() + 1
        if datas:
            self._append_entries(make_entries(first, self.term, datas))
        return first

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose one membership change; it takes effect when its entry is applied. Raises
        ProposalDropped while an earlier change is not applied yet, or for an unsafe change."""
        self._check_can_propose()
        if self._pending_conf_index > self.applied:
            raise ProposalDropped("a configuration change is still pending")
        if cc.type == ConfChangeType.REMOVE_NODE and self.voters == (cc.node_id,):
            raise ProposalDropped("refusing to remove the last voter")
        if cc.type == ConfChangeType.ADD_LEARNER and cc.node_id in self.voters:
            raise ProposalDropped("demoting a voter to learner is not supported")
        index = self.log.last_index() + 1
        self._append_entries([Entry(index, self.term, _Kind.CONF_CHANGE, encode_conf_change(cc))])
        self._pending_conf_index = index
        return index

    def transfer_leader(self, target: int) -> None:
        """Hand leadership to `target` (a voter): catch it up, then send it MsgTimeoutNow.
        Proposals are refused meanwhile; the transfer aborts after an election timeout.
        On a follower the request is forwarded to the leader."""
        if self.role != _Role.LEADER:
            if not self.leader_id:
                raise NotLeader(0)
            self._send(
                Message(MT.MSG_TRANSFER_LEADER, self.group, self.id, self.leader_id, index=target)
            )
            return
        reason = self._start_transfer(target)
        if reason:
            raise ProposalDropped(reason)

    def read_index(self, ctx: bytes) -> None:
        """Request a linearizable read. A `ReadState(index, ctx)` comes out in a later Ready once
        leadership is confirmed; serve the read when applied >= index. A follower forwards the
        request to its leader. `ctx` must be unique among pending reads. The request is dropped
        silently if leadership changes meanwhile: callers time out and retry."""
        if self.role == _Role.LEADER:
            self._leader_read_index(ctx, self.id)
        elif self.leader_id:
            self._send(Message(MT.MSG_READ_INDEX, self.group, self.id, self.leader_id, context=ctx))
        else:
            raise NotLeader(0)

    def report_unreachable(self, node_id: int) -> None:
        """The transport failed to send to `node_id`: stop pipelining to it, probe instead."""
        pr = self.prs.get(node_id)
        if self.role == _Role.LEADER and pr is not None and pr.state == _PS.REPLICATE:
            pr.become_probe()

    def report_snapshot(self, node_id: int, *, ok: bool) -> None:
        """The transport finished sending a MsgSnap. On failure the leader resends later."""
        pr = self.prs.get(node_id)
        if self.role != _Role.LEADER or pr is None or pr.state != _PS.SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        pr.probe_sent = True  # wait for a heartbeat response before probing

    def compact(self, index: int, snapshot_data: bytes) -> Snapshot:
        """The application took a snapshot of its state at applied `index`: drop log entries up
        to it and keep the snapshot (sent to followers that need compacted entries). Returns the
        snapshot to persist (store.apply_snapshot + compact). Precondition: index <= applied."""
        if not self.log.offset < index <= self.applied:
            raise ValueError(f"compact({index}): need {self.log.offset} < index <= {self.applied}")
        term = self.log.term(index)
        assert term is not None
        snapshot = Snapshot(SnapshotMeta(index, term, self._conf_at(index)), snapshot_data)
        self.log.compact(snapshot)
        later = [h for h in self._conf_history if h[0] > index]
        self._conf_history = [(index, snapshot.meta.conf), *later]
        return snapshot

    # -- Ready ----------------------------------------------------------------------------------

    def has_ready(self) -> bool:
        log = self.log
        # _hard_state()/_soft_state() return the previous object itself while nothing changed.
        return bool(
            self._bcast_pending
            or self._read_round_ctx
            or self._msgs
            or self._read_states
            or log.pending_snapshot is not None
            or log.stable < log.last_index()
            or log.committed > self._applying
            or self._hard_state() is not self._prev_hs
            or self._soft_state() is not self._prev_ss
        )

    def ready(self) -> Ready:
        """The work to do now (see `Ready` for the order). Call `advance(ready)` before the next
        `ready()`; `step`/`tick`/`propose` may be called in between."""
        assert not self._ready_outstanding, "advance() the previous Ready first"
        self._flush_broadcast()
        log = self.log
        hs = self._hard_state()
        ss = self._soft_state()
        committed: tuple[Entry, ...] = ()
        if log.committed > self._applying:
            committed = tuple(
                log.slice(
                    self._applying + 1, log.committed + 1, self.config.max_committed_size_per_ready
                )
            )
            self._applying = committed[-1].index
        msgs = self._msgs
        if msgs:
            self._msgs = []
        reads = self._read_states
        if reads:
            self._read_states = []
        rd = make_ready(
            hs if hs is not self._prev_hs else None,
            ss if ss is not self._prev_ss else None,
            log.unstable_entries(),
            log.pending_snapshot,
            committed,
            tuple(msgs) if msgs else (),
            tuple(reads) if reads else (),
        )
        self._ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The caller persisted, sent and applied `rd`."""
        assert self._ready_outstanding, "advance() without ready()"
        self._ready_outstanding = False
        if rd.hard_state is not None:
            self._prev_hs = rd.hard_state
        if rd.soft_state is not None:
            self._prev_ss = rd.soft_state
        if rd.snapshot is not None:
            if self.log.pending_snapshot is rd.snapshot:
                self.log.pending_snapshot = None
            self.applied = max(self.applied, rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            self.log.stable_to(last.index, last.term)
        committed = rd.committed_entries
        if committed:
            # `in` scans in C; the per-entry Python loop runs only when a conf change is there.
            if _Kind.CONF_CHANGE in map(_kind_of, committed):
                self._apply_committed_conf_changes(committed)
            self.applied = max(self.applied, committed[-1].index)

    def _apply_committed_conf_changes(self, committed: tuple[Entry, ...]) -> None:
        for e in committed:
            if e.kind == _Kind.CONF_CHANGE and e.index > self._conf_applied:
                self._conf_applied = e.index
                self._apply_conf_change(decode_conf_change(e.data), e.index)

    # -- inspection ------------------------------------------------------------------------------

    @property
    def conf_state(self) -> ConfState:
        return ConfState(self.voters, self.learners)

    def status(self) -> Status:
        progress: dict[int, ProgressStatus] = {}
        if self.role == _Role.LEADER:
            progress = {
                nid: ProgressStatus(
                    pr.match, pr.next, pr.state.value, pr.is_learner, pr.recent_active
                )
                for nid, pr in sorted(self.prs.items())
            }
        return Status(
            node_id=self.id,
            group=self.group,
            role=self.role,
            term=self.term,
            vote=self.vote,
            leader=self.leader_id,
            commit=self.log.committed,
            applied=self.applied,
            last_index=self.log.last_index(),
            first_index=self.log.first_index(),
            conf=self.conf_state,
            lead_transferee=self.lead_transferee,
            progress=progress,
        )

    def promotable(self) -> bool:
        return self.id in self.voters

    # =========================================================================================
    # Step
    # =========================================================================================

    def step(self, m: Message) -> None:
        """Feed one message addressed to this node of this group."""
        if m.group != self.group or (m.to and m.to != self.id):
            raise ValueError(
                f"message for g{m.group}/n{m.to} stepped into g{self.group}/n{self.id}"
            )
        if m.term == 0 and m.type not in _TERMLESS:
            logger.warning("g%d n%d: dropping termless %s", self.group, self.id, m.describe())
            return
        if m.term > self.term:
            if not self._accept_higher_term(m):
                return
        elif 0 < m.term < self.term:
            self._reply_to_stale(m)
            return
        if m.type in _VOTE_REQUESTS:
            self._handle_vote_request(m)
        elif self.role == _Role.LEADER:
            self._step_leader(m)
        elif self.role == _Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _accept_higher_term(self, m: Message) -> bool:
        """A message from a later term. Returns False if it must be ignored."""
        t = m.type
        if t in _VOTE_REQUESTS:
            in_lease = (
                self.leader_id != 0
                and self._election_elapsed < self.config.election_tick
                and m.context != CAMPAIGN_TRANSFER
            )
            if in_lease and (self.config.check_quorum or m.frm not in self.prs):
                # Leader lease: we heard from a live leader recently; a disruptive candidate
                # (e.g. one back from a partition) must not depose it. Without check-quorum the
                # lease covers only candidates outside our configuration: a removed node that
                # never learned of its removal would otherwise depose every new leader (thesis
                # §4.2.3); a member's request is still heard (a leader that can send but not
                # receive must not keep its followers in lease forever).
                return False
        if t == MT.MSG_PRE_VOTE or (t == MT.MSG_PRE_VOTE_RESP and not m.reject):
            return True  # pre-votes never change our term
        if t in _FROM_LEADER:
            self._become_follower(m.term, m.frm)
        else:
            self._become_follower(m.term, 0)
        return True

    def _reply_to_stale(self, m: Message) -> None:
        if (self.config.check_quorum or self.config.pre_vote) and m.type in (
            MT.MSG_HEARTBEAT,
            MT.MSG_APP,
        ):
            # A leader cut off from the cluster while we moved on: tell it our term so that it
            # steps down (with pre-vote it would never see our term otherwise).
            self._send(self._msg(MT.MSG_APP_RESP, m.frm))
        elif m.type == MT.MSG_PRE_VOTE:
            self._send(self._msg(MT.MSG_PRE_VOTE_RESP, m.frm, reject=True))

    def _handle_vote_request(self, m: Message) -> None:
        resp_type = MT.MSG_VOTE_RESP if m.type == MT.MSG_VOTE else MT.MSG_PRE_VOTE_RESP
        can_vote = (
            self.vote == m.frm
            or (self.vote == 0 and self.leader_id == 0)
            or (m.type == MT.MSG_PRE_VOTE and m.term > self.term)
        )
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp_type, self.group, self.id, m.frm, m.term))
            if m.type == MT.MSG_VOTE:
                self._election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp_type, self.group, self.id, m.frm, self.term, reject=True))

    # -- follower ------------------------------------------------------------------------------

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t in _FROM_LEADER:
            self._election_elapsed = 0
            self.leader_id = m.frm
            if t == MT.MSG_APP:
                self._handle_append(m)
            elif t == MT.MSG_HEARTBEAT:
                self._handle_heartbeat(m)
            else:
                self._handle_snapshot(m)
        elif t == MT.MSG_TIMEOUT_NOW:
            self._hup(transfer=True)
        elif t in (MT.MSG_READ_INDEX, MT.MSG_TRANSFER_LEADER):
            if self.leader_id:
                self._send(
                    Message(
                        t, self.group, m.frm, self.leader_id, 0, index=m.index, context=m.context
                    )
                )
        elif t == MT.MSG_READ_INDEX_RESP:
            self._read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(self._msg(MT.MSG_APP_RESP, m.frm, index=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._msgs.append(
                make_message(
                    MT.MSG_APP_RESP,
                    self.group,
                    self.id,
                    m.frm,
                    self.term,
                    0,
                    last_new,
                    (),
                    0,
                    False,  # reject
                    0,
                    None,
                    b"",
                )
            )
            return
        hint_index, hint_term = log.find_conflict_by_term(
            min(m.index, log.last_index()), m.log_term
        )
        self._send(
            self._msg(
                MT.MSG_APP_RESP,
                m.frm,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        self.log.commit_to(m.commit)
        self._send(self._msg(MT.MSG_HEARTBEAT_RESP, m.frm, context=m.context))

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is None:
            return
        meta = snap.meta
        log = self.log
        if meta.index <= log.committed:
            self._send(self._msg(MT.MSG_APP_RESP, m.frm, index=log.committed))
        elif log.match_term(meta.index, meta.term):
            log.commit_to(meta.index)  # we already have it: fast-forward
            self._send(self._msg(MT.MSG_APP_RESP, m.frm, index=log.committed))
        else:
            logger.info("g%d n%d restoring %s", self.group, self.id, snap.describe())
            log.restore(snap)
            self._conf_history = [(meta.index, meta.conf)]
            self._set_conf(meta.conf, meta.index)
            self._conf_applied = meta.index
            self._applying = max(self._applying, meta.index)
            self._send(self._msg(MT.MSG_APP_RESP, m.frm, index=log.last_index()))

    # -- candidate -----------------------------------------------------------------------------

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in _FROM_LEADER:
            self._become_follower(m.term, m.frm)  # a leader of our term exists
            self._step_follower(m)
            return
        expected = MT.MSG_PRE_VOTE_RESP if self.role == _Role.PRE_CANDIDATE else MT.MSG_VOTE_RESP
        if t != expected:
            return
        result = self._poll(m.frm, granted=not m.reject)
        if result == VoteResult.WON:
            if self.role == _Role.PRE_CANDIDATE:
                self._campaign(pre_vote=False, transfer=False)
            else:
                self._become_leader()
        elif result == VoteResult.LOST:
            self._become_follower(self.term, 0)

    # -- leader --------------------------------------------------------------------------------

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.MSG_APP_RESP:
            pr = self.prs.get(m.frm)
            if pr is not None:
                pr.recent_active = True
                if m.reject:
                    self._handle_append_reject(m, pr)
                else:
                    self._handle_append_accept(m, pr)
        elif t == MT.MSG_HEARTBEAT_RESP:
            pr = self.prs.get(m.frm)
            if pr is not None:
                self._handle_heartbeat_resp(m, pr)
        elif t == MT.MSG_READ_INDEX:
            self._leader_read_index(m.context, m.frm)
        elif t == MT.MSG_TRANSFER_LEADER:
            reason = self._start_transfer(m.index)
            if reason:
                logger.info(
                    "g%d n%d: transfer to %d refused: %s", self.group, self.id, m.index, reason
                )

    def _handle_append_accept(self, m: Message, pr: Progress) -> None:
        was_paused = pr.is_paused()
        updated = pr.maybe_update(m.index)
        # A probe answered at our current match still proves where the logs agree.
        if not updated and not (pr.state == _PS.PROBE and pr.match == m.index):
            return
        if pr.state == _PS.PROBE:
            pr.become_replicate()
        elif pr.state == _PS.SNAPSHOT:
            if pr.match >= pr.pending_snapshot:
                pr.become_probe()
                pr.become_replicate()
        else:
            pr.free_inflights_to(m.index)
        # An acknowledgement at or below the commit index cannot move the quorum index: every
        # other change of a voter's match went through _maybe_commit (the leader's own match is
        # the largest, so it only counts in a one-voter group, which commits on append).
        committed = pr.match > self.log.committed and self._maybe_commit()
        if not committed and was_paused:
            self._send_append(m.frm, pr)
        while self._send_append(m.frm, pr, send_if_empty=False):
            pass
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send(self._msg(MT.MSG_TIMEOUT_NOW, m.frm))

    def _handle_append_reject(self, m: Message, pr: Progress) -> None:
        next_probe = m.reject_hint
        if m.log_term > 0:
            next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
        if pr.maybe_decrease_to(m.index, next_probe):
            if pr.state == _PS.REPLICATE:
                pr.become_probe()
            self._send_append(m.frm, pr)

    def _handle_heartbeat_resp(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        pr.probe_sent = False
        if pr.state == _PS.REPLICATE and len(pr.inflights) >= pr.inflight_max:
            pr.inflights.popleft()  # a response got lost: free a slot to keep replicating
        if pr.match < self.log.last_index():
            self._send_append(m.frm, pr)
        if m.context:
            self._ack_read(m.context, m.frm)

    # =========================================================================================
    # Roles
    # =========================================================================================

    def _reset(self, term: int) -> None:
        if term != self.term:
            assert term > self.term, f"term moving back: {self.term} -> {term}"
            self.term = term
            self.vote = 0
        self.leader_id = 0
        self._election_elapsed = 0
        self._heartbeat_elapsed = 0
        self._randomized_election_timeout = self.config.election_tick + self._rng.randrange(
            self.config.election_tick
        )
        self.lead_transferee = 0
        self._votes = {}
        self._reads.clear()
        self._pending_reads = []
        self._bcast_pending = False
        self._read_round_ctx = b""
        self._pending_conf_index = 0
        last = self.log.last_index()
        for nid, pr in self.prs.items():
            self.prs[nid] = Progress(
                last + 1, self.config.max_inflight_msgs, is_learner=pr.is_learner
            )
            if nid == self.id:
                self.prs[nid].match = last

    def _become_follower(self, term: int, leader: int) -> None:
        self._reset(term)
        self.role = _Role.FOLLOWER
        self.leader_id = leader

    def _become_pre_candidate(self) -> None:
        # Unlike a candidate, a pre-candidate changes neither its term nor its vote.
        self._votes = {}
        self.leader_id = 0
        self.role = _Role.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        assert self.role != _Role.LEADER
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = _Role.CANDIDATE

    def _become_leader(self) -> None:
        assert self.role == _Role.CANDIDATE
        self._reset(self.term)
        self.leader_id = self.id
        self.role = _Role.LEADER
        self.prs[self.id].become_replicate()
        # No conf change until every entry of earlier terms is applied (we cannot tell whether
        # one of them is a conf change cheaply).
        self._pending_conf_index = self.log.last_index()
        logger.debug("g%d n%d became leader at term %d", self.group, self.id, self.term)
        # An empty entry of the new term commits everything before it (§5.4.2, Figure 8).
        self._append_entries([Entry(self.log.last_index() + 1, self.term, _Kind.NORMAL, b"")])

    def _tick_election(self) -> None:
        self._election_elapsed += 1
        if self._election_elapsed >= self._randomized_election_timeout:
            self._election_elapsed = 0
            self._hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self._heartbeat_elapsed += 1
        self._election_elapsed += 1
        cfg = self.config
        if self._election_elapsed >= cfg.election_tick:
            self._election_elapsed = 0
            if cfg.check_quorum and not self._quorum_recently_active():
                logger.info("g%d n%d: leader lost its quorum, stepping down", self.group, self.id)
                self._become_follower(self.term, 0)
                return
            if self.lead_transferee:
                self.lead_transferee = 0  # took too long: abort the transfer
            self._expire_snapshots()
        if self._heartbeat_elapsed >= cfg.heartbeat_tick:
            self._heartbeat_elapsed = 0
            self._bcast_heartbeat(self._reads.last_context())

    def _expire_snapshots(self) -> None:
        for pr in self.prs.values():
            if pr.state == _PS.SNAPSHOT:
                pr.snapshot_wait_ticks += 1
                if pr.snapshot_wait_ticks >= _SNAPSHOT_WAIT_ELECTIONS:
                    pr.pending_snapshot = 0
                    pr.become_probe()

    def _quorum_recently_active(self) -> bool:
        active = []
        for nid, pr in self.prs.items():
            if nid == self.id or pr.recent_active:
                active.append(nid)
            pr.recent_active = False
        return has_quorum(self.voters, active)

    def _hup(self, *, transfer: bool) -> None:
        if self.role == _Role.LEADER or not self.promotable():
            return
        log = self.log
        if self._conf_applied < log.committed:
            pending = log.slice(max(self._conf_applied, log.offset) + 1, log.committed + 1, 1 << 62)
            if any(e.kind == _Kind.CONF_CHANGE for e in pending):
                return  # a committed conf change is not applied yet: our view may be stale
        self._campaign(pre_vote=self.config.pre_vote and not transfer, transfer=transfer)

    def _campaign(self, *, pre_vote: bool, transfer: bool) -> None:
        if pre_vote:
            self._become_pre_candidate()
            vote_type, term = MT.MSG_PRE_VOTE, self.term + 1
        else:
            self._become_candidate()
            vote_type, term = MT.MSG_VOTE, self.term
        if self._poll(self.id, granted=True) == VoteResult.WON:
            # A one-voter group wins at once.
            if pre_vote:
                self._campaign(pre_vote=False, transfer=transfer)
            else:
                self._become_leader()
            return
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        last_index, last_term = self.log.last_index(), self.log.last_term()
        for v in self.voters:
            if v != self.id:
                self._send(
                    Message(
                        vote_type, self.group, self.id, v, term, last_term, last_index, context=ctx
                    )
                )

    def _poll(self, nid: int, *, granted: bool) -> VoteResult:
        self._votes.setdefault(nid, granted)
        return vote_result(self.voters, self._votes)

    # =========================================================================================
    # Replication
    # =========================================================================================

    def _check_can_propose(self) -> None:
        if self.role != _Role.LEADER or self.id not in self.prs:
            raise NotLeader(self.leader_id if self.leader_id != self.id else 0)
        if self.lead_transferee:
            raise NotLeader(self.lead_transferee, "leadership transfer in progress")

    def _append_entries(self, entries: list[Entry]) -> None:
        self.log.append(entries)
        self._appended(entries[-1].index)

    def _appended(self, last: int) -> None:
        """The leader appended entries up to `last` to its log."""
        pr = self.prs[self.id]
        pr.match = last  # see "persist-before-send" above
        pr.next = last + 1
        if len(self.voters) == 1:
            self._maybe_commit()  # only a lone voter's own append can commit anything
        self._bcast_pending = True

    def _maybe_commit(self) -> bool:
        prs = self.prs
        voters = self.voters
        if len(voters) == 1:
            pr = prs.get(voters[0])
            index = pr.match if pr is not None else 0
        else:
            index = committed_index([prs[v].match if v in prs else 0 for v in voters])
        if not self.log.maybe_commit(index, self.term):
            return False
        self._bcast_pending = True  # followers learn the new commit index
        if self._pending_reads:
            pending, self._pending_reads = self._pending_reads, []
            for ctx, frm in pending:
                self._leader_read_index(ctx, frm)
        return True

    def _flush_broadcast(self) -> None:
        if self._read_round_ctx:
            # One heartbeat round confirms every read requested since the last Ready.
            ctx, self._read_round_ctx = self._read_round_ctx, b""
            self._bcast_heartbeat(ctx)
        if not self._bcast_pending:
            return
        self._bcast_pending = False
        if self.role != _Role.LEADER:
            return
        for nid, pr in self.prs.items():
            if nid != self.id:
                self._send_append(nid, pr)

    def _send_append(self, to: int, pr: Progress, *, send_if_empty: bool = True) -> bool:
        """Send `to` the entries from its `next` (or a snapshot if they are compacted)."""
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        prev_term = log.term(prev)
        if prev_term is None:
            return self._send_snapshot(to, pr)
        last = log.last_index()
        ents = log.slice(pr.next, last + 1, self.config.max_size_per_msg) if pr.next <= last else []
        if not ents and not send_if_empty:
            return False
        self._send(
            make_message(
                MT.MSG_APP,
                self.group,
                self.id,
                to,
                self.term,
                prev_term,
                prev,
                tuple(ents),
                log.committed,
                False,  # reject (all fields positional: make_message is the fast path)
                0,
                None,
                b"",
            )
        )
        if ents:
            pr.sent_entries(ents[-1].index)
        elif pr.state == _PS.PROBE:
            pr.probe_sent = True
        return True

    def _send_snapshot(self, to: int, pr: Progress) -> bool:
        snap = self.log.snapshot
        if snap is None:
            logger.error("g%d n%d: no snapshot for n%d", self.group, self.id, to)
            return False
        self._send(self._msg(MT.MSG_SNAP, to, snapshot=snap))
        pr.become_snapshot(snap.meta.index)
        return True

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        committed = self.log.committed
        for nid, pr in self.prs.items():
            if nid != self.id:
                self._send(
                    self._msg(MT.MSG_HEARTBEAT, nid, commit=min(pr.match, committed), context=ctx)
                )

    def _start_transfer(self, target: int) -> str:
        """Returns why the transfer cannot start, or '' once it started (or is running)."""
        pr = self.prs.get(target)
        if pr is None or pr.is_learner:
            return f"n{target} is not a voter"
        if target == self.id:
            return ""
        if self.lead_transferee == target:
            return ""
        self._election_elapsed = 0
        self.lead_transferee = target
        if pr.match == self.log.last_index():
            self._send(self._msg(MT.MSG_TIMEOUT_NOW, target))
        else:
            self._send_append(target, pr)
        return ""

    # =========================================================================================
    # Read index
    # =========================================================================================

    def _leader_read_index(self, ctx: bytes, frm: int) -> None:
        if self.voters == (self.id,):
            self._answer_read(ctx, frm, self.log.committed)
        elif self.log.term(self.log.committed) != self.term:
            # Our commit index may lag the real one until an entry of our term commits.
            self._pending_reads.append((ctx, frm))
        elif self._reads.add(ctx, self.log.committed, frm, self.id):
            self._read_round_ctx = ctx

    def _ack_read(self, ctx: bytes, frm: int) -> None:
        for req in self._reads.ack(ctx, frm, self.voters):
            self._answer_read(req.context, req.frm, req.index)

    def _answer_read(self, ctx: bytes, frm: int, index: int) -> None:
        if frm == self.id:
            self._read_states.append(ReadState(index, ctx))
        else:
            self._send(self._msg(MT.MSG_READ_INDEX_RESP, frm, index=index, context=ctx))

    # =========================================================================================
    # Membership
    # =========================================================================================

    def _apply_conf_change(self, cc: ConfChange, index: int) -> None:
        conf = apply_change(self.conf_state, cc)
        if conf is None:
            logger.warning("g%d n%d: ignoring %s", self.group, self.id, cc.describe())
            return
        self._conf_history.append((index, conf))
        self._set_conf(conf, index)

    def _set_conf(self, conf: ConfState, index: int) -> None:
        self.voters, self.learners = conf.voters, conf.learners
        members = set(conf.voters) | set(conf.learners)
        for nid in list(self.prs):
            if nid not in members:
                del self.prs[nid]
        last = self.log.last_index()
        for nid in (*conf.voters, *conf.learners):
            pr = self.prs.get(nid)
            if pr is None:
                pr = self.prs[nid] = Progress(
                    last + 1, self.config.max_inflight_msgs, is_learner=False
                )
                if nid == self.id:
                    pr.match = last
                # Give a new member a full election timeout to answer before check-quorum
                # counts it as silent.
                pr.recent_active = True
            pr.is_learner = nid in conf.learners
        if self.role != _Role.LEADER:
            return
        if self.id not in conf.voters:
            self._step_down_removed()
            return
        if self.lead_transferee and self.lead_transferee not in conf.voters:
            self.lead_transferee = 0
        self._maybe_commit()  # the quorum may have shrunk
        self._bcast_pending = True  # start probing new members now, not at the next heartbeat

    def _step_down_removed(self) -> None:
        """This leader was removed: hand over to the most caught-up voter, then step down."""
        best = max(
            (v for v in self.voters if v in self.prs),
            key=lambda v: (self.prs[v].match, -v),
            default=0,
        )
        if best and self.prs[best].match == self.log.last_index():
            self._send(self._msg(MT.MSG_TIMEOUT_NOW, best))
        self._become_follower(self.term, 0)

    def _conf_at(self, index: int) -> ConfState:
        conf = self._conf_history[0][1]
        for i, c in self._conf_history:
            if i > index:
                break
            conf = c
        return conf

    # =========================================================================================
    # Helpers
    # =========================================================================================

    def _hard_state(self) -> HardState:
        hs = self._prev_hs
        if hs.term == self.term and hs.vote == self.vote and hs.commit == self.log.committed:
            return hs
        return make_hard_state(self.term, self.vote, self.log.committed)

    def _soft_state(self) -> SoftState:
        ss = self._prev_ss
        if ss.leader == self.leader_id and ss.role == self.role:
            return ss
        return SoftState(self.leader_id, self.role)

    def _msg(
        self,
        mtype: MessageType,
        to: int,
        *,
        log_term: int = 0,
        index: int = 0,
        commit: int = 0,
        reject: bool = False,
        reject_hint: int = 0,
        snapshot: Snapshot | None = None,
        context: bytes = b"",
    ) -> Message:
        return make_message(
            mtype,
            self.group,
            self.id,
            to,
            self.term,
            log_term,
            index,
            (),
            commit,
            reject,
            reject_hint,
            snapshot,
            context,
        )

    def _send(self, m: Message) -> None:
        self._msgs.append(m)
