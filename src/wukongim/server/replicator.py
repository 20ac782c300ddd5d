"""`LocalReplicator`: the single-node stand-in for a Raft group behind `propose`.

The send path and the HTTP API only see `propose(group, commands) -> results` (or `submit`, its
callback form). A Raft group replaces this class later without touching them (ARCHITECTURE §4).

Pipeline, one round per loop turn with proposals (the first `submit` of a turn schedules it):

  1. take every proposal made since the last round: one log entry per proposal, term 1,
     consecutive indexes;
  2. append them to the raft log and start `committer.commit_then()`: one fsync'd batch, off the
     loop. The next round does not wait: it is appended while this fsync runs and goes out in
     the next one (the group committer keeps one sync in flight), so the loop keeps decoding,
     applying and delivering while the disk works;
  3. when a commit finishes, apply its entries, in index order, to the state machine (its KV
     writes carry the applied index, unsynced), rounds strictly in order;
  4. resolve each proposal's future with its results.

Recovery (`recover`, before serving): re-apply the log entries after the machine's applied index.

Compaction: every `compact_every` applied entries, or `compact_bytes` of appended entry data
(whichever comes first; an entry holds a whole round), the log prefix up to the applied index is
dropped. Safe without syncing the state first: the node's RocksDB has ONE write-ahead log, the
state writes of those entries precede the compaction in it, and the compaction only becomes
durable with the next synced log write, which makes every earlier write durable too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from wukongim.chat.commands import Command, Result, decode_commands, encode_commands
from wukongim.store.interfaces import LogEntry, RaftLogStore

log = logging.getLogger(__name__)

TERM = 1
ENTRY_NORMAL = 0
COMPACT_EVERY_ENTRIES = 2_000
COMPACT_EVERY_BYTES = 8 * 1024 * 1024  # also bounds the replay after a crash


class Committer(Protocol):
    def commit_then(self, callback: Callable[[BaseException | None], None]) -> None:
        """Make every write buffered in the log store so far durable (fsync), off the loop;
        then call `callback` on the loop with the sync's error (or None) as soon as the sync
        returns: no future, no extra loop iteration."""
        ...


class Machine(Protocol):
    def applied_index(self) -> int: ...

    def apply(self, index: int, commands: Sequence[Command]) -> list[Result]: ...


class ReplicatorStoppedError(RuntimeError):
    """The replicator is stopped or its store failed; nothing more can be proposed."""


ProposalFuture = asyncio.Future[list[Result]]
OnDone = Callable[[ProposalFuture], None]
_Proposal = tuple[list[Command], ProposalFuture, OnDone | None]


@dataclass(slots=True)
class _Round:
    """Entries appended together and the commit (fsync) that makes them durable."""

    entries: list[LogEntry]
    batch: list[_Proposal]
    synced: bool = False
    error: BaseException | None = None


class LocalReplicator:
    """Local log + apply for one group. Call `recover()`, then run `run()` as a task (it waits
    for `stop()`, then for the rounds in flight; proposals are served from the first `submit`)."""

    def __init__(
        self,
        log_store: RaftLogStore,
        committer: Committer,
        machine: Machine,
        *,
        group: int = 1,
        compact_every: int = COMPACT_EVERY_ENTRIES,
        compact_bytes: int = COMPACT_EVERY_BYTES,
    ) -> None:
        self._log = log_store
        self._committer = committer
        self._machine = machine
        self.group = group
        self._compact_every = compact_every
        self._compact_bytes = compact_bytes
        self._bytes_since_compaction = 0
        self._pending: list[_Proposal] = []
        self._wake = asyncio.Event()
        self._stopped = False
        self._failed: BaseException | None = None
        self._in_flight: deque[_Round] = deque()
        self._drained: asyncio.Future[None] | None = None  # run() waits on it at shutdown
        self.round_count = 0  # metrics: rounds (log appends) and proposals so far
        self.proposal_count = 0
        self.last_index = 0
        self._compacted_to = 0

    # ---- proposing -----------------------------------------------------------------------

    def submit(
        self,
        group: int,
        commands: Sequence[Command],
        *,
        on_done: OnDone | None = None,
        now: bool = False,
    ) -> ProposalFuture:
        """Queue `commands` as one log entry; the future resolves with one result per command
        once the entry is durable and applied. `on_done(future)`, if given, is called right
        after the future is resolved (or failed), in the same loop iteration: unlike a done
        callback of the future, it costs no extra turn of the loop.

        The round that appends the proposals of a loop turn starts in the next turn, so that
        one round takes them all. `now=True` starts it at once, with this proposal and any
        queued before it: for a caller that already gathered a turn's work into this one
        proposal (the send path), waiting a turn would only add a poll phase of latency."""
        if group != self.group:
            raise ValueError(f"this node serves group {self.group}, not {group}")
        if self._stopped or self._failed is not None:
            raise ReplicatorStoppedError("replicator stopped") from self._failed
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Result]] = loop.create_future()
        pending = self._pending
        if now:
            pending.append((list(commands), future, on_done))
            self._start_round()  # a round scheduled earlier in this turn finds nothing left
            return future
        if not pending:  # the first proposal of this turn: one round takes them all
            loop.call_soon(self._round)
        pending.append((list(commands), future, on_done))
        return future

    async def propose(self, group: int, commands: Sequence[Command]) -> list[Result]:
        return await self.submit(group, commands)

    # ---- recovery ------------------------------------------------------------------------

    def recover(self) -> int:
        """Re-apply the durable entries the state machine has not applied. Returns their count."""
        state = self._log.load(self.group)
        applied = self._machine.applied_index()
        self.last_index = max(applied, state.snapshot.index)
        self._compacted_to = state.snapshot.index
        replayed = 0
        for entry in state.entries:
            self.last_index = entry.index
            if entry.index <= applied:
                continue
            self._machine.apply(entry.index, decode_commands(entry.data))
            replayed += 1
        if state.entries:
            self._compacted_to = state.entries[0].index - 1
        if replayed:
            log.info(
                "group %d: replayed %d log entries up to %d", self.group, replayed, self.last_index
            )
        return replayed

    # ---- the loop ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve proposals until `stop()`; then wait for the rounds in flight, fail the rest."""
        try:
            await self._wake.wait()  # set by stop()
            while self._in_flight and self._failed is None:
                self._drained = asyncio.get_running_loop().create_future()
                with contextlib.suppress(Exception):
                    await self._drained
        finally:
            self._fail_pending(ReplicatorStoppedError("replicator stopped"))
            log.info(
                "group %d stopped after %d rounds of %d proposals",
                self.group,
                self.round_count,
                self.proposal_count,
            )

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()

    def _round(self) -> None:
        """Scheduled by the first `submit` of a loop turn (one callback, no task switch)."""
        if self._pending and not self._stopped:
            self._start_round()

    def _start_round(self) -> None:
        """Append the pending proposals and start making them durable. Rounds overlap: the
        next one is appended while this one's fsync runs; they are applied in order."""
        batch, self._pending = self._pending, []
        entries: list[LogEntry] = []
        index = self.last_index
        for commands, _, _ in batch:
            index += 1
            data = encode_commands(commands)
            self._bytes_since_compaction += len(data)
            entries.append(LogEntry(index, TERM, ENTRY_NORMAL, data))
        try:
            self._log.append(self.group, entries)
        except Exception as exc:  # noqa: BLE001 - store boundary: it is unusable from now on
            self._fail_store(exc, [batch])
            return
        self.last_index = index
        self.round_count += 1
        self.proposal_count += len(batch)
        round_ = _Round(entries, batch)
        self._in_flight.append(round_)

        def synced(error: BaseException | None) -> None:
            round_.synced = True
            round_.error = error
            self._on_commit()

        self._committer.commit_then(synced)

    def _on_commit(self) -> None:
        """Apply every round at the head of the queue whose commit finished, in order."""
        in_flight = self._in_flight
        while in_flight and in_flight[0].synced:
            head = in_flight[0]
            if head.error is not None:
                batches = [item.batch for item in in_flight]
                in_flight.clear()
                self._fail_store(head.error, batches)
                return
            in_flight.popleft()
            self._apply(head.entries, head.batch)
        self._maybe_compact()
        drained = self._drained
        if not in_flight and drained is not None and not drained.done():
            drained.set_result(None)

    def _fail_store(self, exc: BaseException, batches: list[list[_Proposal]]) -> None:
        log.critical("group %d: log write failed; refusing proposals", self.group, exc_info=exc)
        self._failed = exc
        self._stopped = True
        self._wake.set()
        for batch in batches:
            for _, future, on_done in batch:
                _settle(future, on_done, ReplicatorStoppedError("log write failed"))
        self._fail_pending(ReplicatorStoppedError("log write failed"))
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _apply(self, entries: list[LogEntry], batch: list[_Proposal]) -> None:
        machine = self._machine
        for entry, (commands, future, on_done) in zip(entries, batch, strict=True):
            try:
                results = machine.apply(entry.index, commands)
            except Exception as exc:  # our bug: report it to this proposal, keep serving
                log.exception("group %d: apply of entry %d failed", self.group, entry.index)
                _settle(future, on_done, exc)
                continue
            if not future.done():
                future.set_result(results)
            if on_done is not None:
                _tell(on_done, future)

    def _maybe_compact(self) -> None:
        applied = self._machine.applied_index()
        if (
            applied - self._compacted_to >= self._compact_every
            or self._bytes_since_compaction >= self._compact_bytes
        ) and applied > self._compacted_to:
            self._log.compact(self.group, applied)
            self._compacted_to = applied
            self._bytes_since_compaction = 0

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, []
        for _, future, on_done in pending:
            _settle(future, on_done, exc)


def _settle(future: ProposalFuture, on_done: OnDone | None, exc: BaseException) -> None:
    """Fail a proposal and tell its `on_done`."""
    if not future.done():
        future.set_exception(exc)
    if on_done is not None:
        _tell(on_done, future)


def _tell(on_done: OnDone, future: ProposalFuture) -> None:
    """Call a proposer's `on_done`; its bug must not stop the rounds after it."""
    try:
        on_done(future)
    except Exception:
        log.exception("on_done callback of a proposal failed")
