"""The Raft loop: the asyncio driver of `node.Node` (ARCHITECTURE §4, STYLE §2 "the node loop").

One task (`run()`) owns the node's loop turns. Everything else only queues input and wakes it:

* a timer adds a tick every `tick_s` (the core counts time in ticks: with the defaults an
  election timeout is 10-20 ticks);
* peer links hand in Raft messages (`on_peer_messages`, the PeerLinks callback);
* `propose()` / `read()` call the node at once (allowed at any point of a turn) and wait;
  `propose_nowait()` and `propose_many_nowait()` (the hot paths) only check leadership and
  queue: the next turn hands the queued entries of each group to the node in one
  `propose_batch`.

Proposals waiting for their entries to apply are kept per group as *spans* (consecutive
indexes of one term, one callback), in index order: resolving an applied run walks the spans
and hands each callback its slice of results, with no bookkeeping per entry.

A turn, when there is work, in etcd's order and for all groups at once:

    inbound messages, queued proposals, then ticks -> node.step() / propose_batch() / tick()
    batch = node.collect_ready()
    node.persist(batch)                  buffered writes
    node.messages_before_sync(batch)     a leader's MsgApp/heartbeats leave now (thesis 10.2.1)
    node.apply_durable(batch)            committed entries that were durable before this batch:
    resolve their waiters and reads      answered now, not after this batch's sync
    await committer.commit()             ONE fsync'd batch, in the executor (GroupCommitter),
                                         skipped when nothing needs it (batch.needs_sync)
    out = node.after_sync(batch)         messages per peer, the other applied entries, reads
    transport.send_many(peer, ...)       one BatchMessage per peer per turn (PeerLinks)
    resolve proposal waiters and reads

While a sync is in flight, proposals and messages keep arriving; the next turn takes them all,
so the batch size grows with the load (group commit) and the loop never blocks on the disk.
Why answering and replicating before the sync and skipping commit-only syncs is safe: see the
header of node/node.py.

Raft messages travel as nodewire Messages of type 1, one per Raft message, content =
`raft.encode_message`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from wukongim.ids import NodeId
from wukongim.node.node import AppliedRun, Node, NodeOutput, ReadyBatch, StateMachine
from wukongim.protocol import nodewire as nw
from wukongim.raft import (
    DecodeError,
    Message,
    NotLeader,
    decode_message,
    encode_entries,
    encode_message,
)

__all__ = [
    "RAFT_MESSAGE_TYPE",
    "BatchWaiter",
    "Committer",
    "NotLeader",
    "RaftLoop",
    "RaftLoopConfig",
    "Transport",
]

log = logging.getLogger(__name__)

SLOW_SYNC_S = 0.5  # log syncs slower than this: they delay heartbeats toward election timeouts
RAFT_MESSAGE_TYPE = 1  # nodewire Message.msg_type of a Raft message (upstream: slot raft)

T = TypeVar("T")
_Query = Callable[[StateMachine], object]
Waiter = Callable[[object, BaseException | None], None]
# (start, stop, results, error): datas[start:stop] of a propose_many_nowait call are done, with
# the state machine's results (error None) or all failed with `error` (results empty).
BatchWaiter = Callable[[int, int, Sequence[object], BaseException | None], None]


class _Span:
    """Proposals at indexes first .. first + count - 1, all of leader term `term`, owned by one
    callback: a `BatchWaiter` (batch) or a `Waiter` (count 1). `done` of them are resolved."""

    __slots__ = ("batch", "callback", "count", "done", "first", "generation", "term")

    def __init__(  # noqa: PLR0917 - a record
        self,
        first: int,
        count: int,
        term: int,
        callback: Callable[..., None],
        batch: bool,
        generation: int,
    ) -> None:
        self.first = first
        self.count = count
        self.term = term
        self.callback = callback
        self.batch = batch
        self.generation = generation
        self.done = 0

    def succeed(self, results: Sequence[object], k0: int, k1: int) -> None:
        """The next k1 - k0 proposals applied with results[k0:k1]."""
        n = k1 - k0
        if self.batch:
            self.callback(self.done, self.done + n, results[k0:k1], None)
        else:
            self.callback(results[k0], None)
        self.done += n

    def fail(self, n: int, error: BaseException) -> None:
        """The next n proposals failed (all remaining ones if n >= what remains)."""
        n = min(n, self.count - self.done)
        if n <= 0:
            return
        if self.batch:
            self.callback(self.done, self.done + n, (), error)
        else:
            self.callback(None, error)
        self.done += n

    def truncate(self, k: int, error: BaseException) -> None:
        """Proposals k.. (none resolved yet: k >= done) failed; the span now ends before k."""
        if k < self.count:
            if self.batch:
                self.callback(k, self.count, (), error)
            else:
                self.callback(None, error)
            self.count = k


class Committer(Protocol):
    async def commit(self) -> None:
        """Return once every write buffered in the log store so far is durable."""
        ...


class Transport(Protocol):
    def send_many(self, node_id: NodeId, messages: Iterable[nw.Message]) -> int:
        """Queue messages for a peer (they leave together this loop turn); returns drops."""
        ...


@dataclass(frozen=True, slots=True)
class RaftLoopConfig:
    tick_s: float = 0.07  # election timeout 10-20 ticks: 0.7-1.4 s, so failover stays under 1.5 s
    # After a stall, catch up at most this many ticks at once: time lost in a stall is not
    # replayed, so a stall alone never looks like an election timeout.
    ticks_per_turn_max: int = 2
    inbox_messages_max: int = 200_000  # inbound Raft messages waiting for a turn; then drop
    propose_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    # A turn starts at least this long after the previous one started: at moderate load the
    # work of several wake-ups shares one turn (one sync, one write per peer) at the price of
    # at most this much latency per hop. 0 = start a turn as soon as there is work.
    turn_gap_min_s: float = 0.0


@dataclass(slots=True)
class RaftLoopStats:
    turns: int = 0
    syncs: int = 0
    ticks: int = 0
    stepped: int = 0
    dropped_inbound: int = 0
    undecodable: int = 0
    applied: int = 0
    sync_s_total: float = 0.0  # time turns spent waiting for the log sync
    sync_s_max: float = 0.0


class RaftLoop:
    """Drives one Node. Start `run()` in the app's TaskGroup; cancel it to stop."""

    def __init__(
        self,
        node: Node,
        committer: Committer,
        transport: Transport | None = None,
        config: RaftLoopConfig | None = None,
    ) -> None:
        self.node = node
        self.committer = committer
        self.transport = transport  # set before run() when links are built after the loop
        self.config = config or RaftLoopConfig()
        self.stats = RaftLoopStats()
        self._wake = asyncio.Event()
        self._inbox: list[nw.Message] = []
        self._ticks_due = 0
        # group -> proposals handed to the node, waiting for apply, in index order
        self._spans: dict[int, deque[_Span]] = {}
        # group -> (datas, owners) queued by propose_(many_)nowait for the next turn's
        # propose_batch; an owner is (callback, count, batch)
        self._queued: dict[
            int, tuple[list[bytes], list[tuple[Callable[..., None], int, bool]]]
        ] = {}
        self._generation = 0  # advances every propose_timeout_s; see _expire_proposals
        self._ticks_in_generation = 0
        self._reads: dict[bytes, tuple[int, asyncio.Future[object], _Query | None]] = {}
        self._read_ids = itertools.count(1)
        self._tick_handle: asyncio.TimerHandle | None = None
        self._running = False
        self._stopped = False  # run() ended: proposals raise ConnectionAbortedError

    # ---- inputs

    def on_peer_messages(self, peer: NodeId, messages: list[nw.Message]) -> None:
        """PeerLinks callback: queue inbound Raft messages for the next turn."""
        inbox = self._inbox
        room = self.config.inbox_messages_max - len(inbox)
        if room < len(messages):
            self.stats.dropped_inbound += len(messages) - max(room, 0)
            messages = messages[: max(room, 0)]
        inbox.extend(messages)
        self._wake.set()

    async def propose(self, group: int, data: bytes) -> object:
        """Replicate `data` in `group`; return the state machine's result once it is applied
        here. Raises NotLeader (with the leader hint) if this node is not the group's leader or
        the entry was overwritten by a new leader; TimeoutError after `propose_timeout_s`;
        ConnectionAbortedError if `run()` has ended (or ends before it applies)."""
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        def waiter(result: object, error: BaseException | None) -> None:
            if future.done():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self._register(group, data, waiter)
        # On timeout the span stays until it applies or expires; the waiter then finds the
        # future done and does nothing.
        async with asyncio.timeout(self.config.propose_timeout_s):
            return await future

    def propose_nowait(
        self, group: int, data: bytes, on_done: Callable[[object, BaseException | None], None]
    ) -> None:
        """Callback form of `propose` for hot paths (no future, no task): the loop calls
        `on_done(result, None)` right after apply, or `on_done(None, error)` (NotLeader if the
        entry was overwritten, TimeoutError after 1-2 x propose_timeout_s); it must not raise.
        Raises NotLeader at once if this node cannot propose; if it loses leadership before
        the next turn hands the entry to the core, `on_done(None, NotLeader(...))` follows."""
        queued = self._queue_for(group)
        queued[0].append(data)
        queued[1].append((on_done, 1, False))

    def propose_many_nowait(self, group: int, datas: list[bytes], on_done: BatchWaiter) -> None:
        """`propose_nowait` for many entries of one caller (one per item of `datas`, in order)
        with one callback: `on_done(start, stop, results, None)` once datas[start:stop] are
        applied (in order, possibly over several calls), `on_done(start, stop, (), error)` for
        those that failed. It must not raise. Raises NotLeader at once if this node cannot
        propose. `datas` must not change afterwards."""
        if not datas:
            return
        queued = self._queue_for(group)
        queued[0].extend(datas)
        queued[1].append((on_done, len(datas), True))

    def _queue_for(
        self, group: int
    ) -> tuple[list[bytes], list[tuple[Callable[..., None], int, bool]]]:
        if self._stopped:
            raise ConnectionAbortedError("raft loop stopped")
        queued = self._queued.get(group)
        if queued is None:
            # Checked once per group per turn: leadership only changes while the turn steps
            # and ticks, and proposals queued before a change fail at hand-over.
            if not self.node.can_propose(group):
                raise NotLeader(self.node.leader(group))
            queued = self._queued[group] = ([], [])
            self._wake.set()
        return queued

    def _register(self, group: int, data: bytes, waiter: Waiter) -> None:
        if self._stopped:
            raise ConnectionAbortedError("raft loop stopped")
        proposal = self.node.propose(group, data)
        if proposal is None:
            raise NotLeader(self.node.leader(group))
        self._add_span(
            group, _Span(proposal.index, 1, proposal.term, waiter, False, self._generation)
        )
        self._wake.set()

    def _add_span(self, group: int, span: _Span) -> None:
        """Track `span` (its entries were just appended by this node as leader). Older spans at
        or after its first index were overwritten: our log no longer holds them, so they can
        never commit (a future leader's log is a superset of every committed entry)."""
        spans = self._spans.get(group)
        if spans is None:
            spans = self._spans[group] = deque()
        while spans and spans[-1].first + spans[-1].count > span.first:
            last = spans[-1]
            last.truncate(
                max(span.first - last.first, last.done),
                NotLeader(self.node.leader(group), "proposal overwritten"),
            )
            if last.done < last.count:
                break
            spans.pop()
        spans.append(span)

    async def read(self, group: int, query: Callable[[StateMachine], T] | None = None) -> T | int:
        """Linearizable read (read index). Once the group's read index is applied here, run
        `query(state_machine)` at that point and return its result (or the read index if no
        query). Raises NotLeader when no leader is known; TimeoutError if leadership changed
        under the request (retry)."""
        ctx = _READ_ID.pack(next(self._read_ids))
        if not self.node.read_index(group, ctx):
            raise NotLeader(self.node.leader(group))
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._reads[ctx] = (group, future, query)
        self._wake.set()
        try:
            async with asyncio.timeout(self.config.read_timeout_s):
                result = await future
        finally:
            self._reads.pop(ctx, None)
        return result  # type: ignore[return-value]  # query's T, or the int index

    def leader(self, group: int) -> int:
        return self.node.leader(group)

    # ---- the loop

    async def run(self) -> None:
        """Run turns until cancelled. A failed sync ends the loop with its error (the log store
        is unusable; the node must restart)."""
        assert not self._running, "run() twice"
        self._running = True
        self._arm_tick()
        loop = asyncio.get_running_loop()
        gap_s = self.config.turn_gap_min_s
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                started = loop.time()
                await self._turn()
                if gap_s > 0:
                    rest_s = gap_s - (loop.time() - started)
                    if rest_s > 0:
                        await asyncio.sleep(rest_s)
        finally:
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            self._stopped = True  # from now on proposals fail at once (nobody would resolve them)
            self._fail_all(ConnectionAbortedError("raft loop stopped"))
            self._running = False

    def _arm_tick(self) -> None:
        loop = asyncio.get_running_loop()
        self._tick_handle = loop.call_later(self.config.tick_s, self._on_tick_timer)

    def _on_tick_timer(self) -> None:
        self._ticks_due += 1
        self._wake.set()
        self._arm_tick()
        # Expiry runs here, not in a turn: a turn stuck on a slow sync must not stop it.
        self._ticks_in_generation += 1
        if self._ticks_in_generation * self.config.tick_s >= self.config.propose_timeout_s:
            self._ticks_in_generation = 0
            self._generation += 1
            self._expire_proposals(self._generation - 2)

    async def _turn(self) -> None:
        self._feed_inputs()
        node = self.node
        batch = node.collect_ready()
        if not batch:
            return
        node.persist(batch)
        if batch.needs_sync:
            # A leader replicates while its own write is being synced. No step() may follow
            # until after_sync (the inbox is only stepped at the start of a turn).
            self._send(node.messages_before_sync(batch))
            self._apply_durable(batch)
            await self._sync()
        else:
            self._apply_durable(batch)
        out = node.after_sync(batch)
        for group, soft in out.soft_states:
            log.info("n%d g%d: %s", node.id, group, soft.describe())
        self.stats.turns += 1
        self._send(out.messages)
        self._resolve(out)
        self._wake.set()  # inputs that arrived during the sync, and work `advance` uncovered

    def _apply_durable(self, batch: ReadyBatch) -> None:
        early = self.node.apply_durable(batch)
        if early.applied_runs or early.reads:
            self._resolve(early)

    async def _sync(self) -> None:
        self.stats.syncs += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.committer.commit()
        sync_s = loop.time() - started
        self.stats.sync_s_total += sync_s
        self.stats.sync_s_max = max(self.stats.sync_s_max, sync_s)
        if sync_s > SLOW_SYNC_S:
            log.warning("n%d: raft log sync took %.3f s", self.node.id, sync_s)

    def _feed_inputs(self) -> None:
        # Messages before ticks: after a stall (a slow fsync, a busy CPU) the messages that
        # queued up meanwhile prove the peers alive before time catches up. Ticking first
        # would make a leader miss its quorum check and a follower time out its leader.
        if self._inbox:
            self._step_inbox()
        if self._queued:
            self._propose_queued()
        ticks = min(self._ticks_due, self.config.ticks_per_turn_max)
        self._ticks_due = 0
        for _ in range(ticks):
            self.node.tick()
        self.stats.ticks += ticks

    def _propose_queued(self) -> None:
        queued, self._queued = self._queued, {}
        generation = self._generation
        for group, (datas, owners) in queued.items():
            proposed = self.node.propose_batch(group, datas)
            if proposed is None:
                error = NotLeader(self.node.leader(group))
                for callback, count, batch in owners:
                    _Span(0, count, 0, callback, batch, 0).fail(count, error)
                continue
            term, index = proposed.term, proposed.first_index
            for callback, count, batch in owners:
                self._add_span(group, _Span(index, count, term, callback, batch, generation))
                index += count

    def _expire_proposals(self, generation: int) -> None:
        """Fail proposals registered in `generation` or before: a leader cut off from its
        followers never learns whether they commit, and callbacks have no timeout of their own.
        (An expired proposal may still commit later: callers retry idempotently.) Spans are
        registered in time order, so the old ones are at the front."""
        error = TimeoutError("proposal not applied in time")
        for spans in self._spans.values():
            while spans and spans[0].generation <= generation:
                span = spans.popleft()
                span.fail(span.count, error)

    def _step_inbox(self) -> None:
        node = self.node
        inbox, self._inbox = self._inbox, []
        for wire in inbox:
            if wire.msg_type != RAFT_MESSAGE_TYPE:
                continue
            try:
                msg = decode_message(wire.content)
            except DecodeError:
                self.stats.undecodable += 1
                log.warning("n%d: undecodable raft message", node.id, exc_info=True)
                continue
            node.step(msg)
        self.stats.stepped += len(inbox)

    def _send(self, messages: dict[int, list[Message]]) -> None:
        transport = self.transport
        if transport is None:
            return
        blobs: dict[tuple[int, int, int, int], bytes] = {}  # MsgApp entries, encoded once
        for dst, msgs in messages.items():
            transport.send_many(NodeId(dst), _to_wire(msgs, blobs))

    def _resolve(self, out: NodeOutput) -> None:
        for run in out.applied_runs:
            self.stats.applied += len(run.entries)
            spans = self._spans.get(run.group)
            if spans:
                self._resolve_run(run, spans)
        for done in out.reads:
            waiting_read = self._reads.pop(done.context, None)
            if waiting_read is None:
                continue
            group, future, query = waiting_read
            if future.done():
                continue
            if query is None:
                future.set_result(done.index)
                continue
            try:
                future.set_result(query(self.node.state_machine(group)))
            except Exception as exc:  # noqa: BLE001 (the caller's query failed: its error)
                future.set_exception(exc)

    def _resolve_run(self, run: AppliedRun, spans: deque[_Span]) -> None:
        """Hand the results of `run` to the spans it covers (front of `spans`)."""
        entries = run.entries
        first, last = entries[0].index, entries[-1].index
        while spans:
            span = spans[0]
            lo = span.first + span.done  # its next unresolved index
            if lo > last:
                return
            if lo < first:
                # Applied without passing here: a snapshot replaced the log under this span.
                span.fail(first - lo, TimeoutError("proposal outcome unknown (snapshot)"))
                lo = first
            hi = min(span.first + span.count, last + 1)  # resolve indexes lo .. hi - 1
            if hi > lo:
                k0, k1 = lo - first, hi - first
                term = span.term
                if entries[k0].term == term and entries[k1 - 1].term == term:
                    span.succeed(run.results, k0, k1)
                else:
                    # Terms only grow along the log: ours is a prefix, later ones overwrote it.
                    k = k0
                    while k < k1 and entries[k].term == term:
                        k += 1
                    if k > k0:
                        span.succeed(run.results, k0, k)
                    span.fail(
                        k1 - k, NotLeader(self.node.leader(run.group), "proposal overwritten")
                    )
            if span.done < span.count:
                return
            spans.popleft()

    def _fail_all(self, error: BaseException) -> None:
        spans_by_group, self._spans = self._spans, {}
        for spans in spans_by_group.values():
            for span in spans:
                span.fail(span.count, error)
        queued, self._queued = self._queued, {}
        for _, owners in queued.values():
            for callback, count, batch in owners:
                _Span(0, count, 0, callback, batch, 0).fail(count, error)
        for _, future, _ in self._reads.values():
            if not future.done():
                future.set_exception(error)
        self._reads.clear()


_READ_ID = struct.Struct(">Q")


def _to_wire(
    msgs: list[Message], blobs: dict[tuple[int, int, int, int], bytes]
) -> list[nw.Message]:
    """Raft messages as nodewire Messages. The entries of a MsgApp are encoded once per turn
    for all followers (`blobs`): entries with the same first and last (index, term) are the
    same entries (Raft's log matching property)."""
    wire = []
    for m in msgs:
        entries = m.entries
        if entries:
            first, last = entries[0], entries[-1]
            key = (first.index, first.term, last.index, last.term)
            blob = blobs.get(key)
            if blob is None:
                blob = blobs[key] = encode_entries(entries)
            content = encode_message(m, blob)
        else:
            content = encode_message(m)
        wire.append(nw.Message(0, RAFT_MESSAGE_TYPE, 0, content))
    return wire
