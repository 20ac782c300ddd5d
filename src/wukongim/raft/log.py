"""The in-memory Raft log of one group: a snapshot, then entries, with a persistence cursor.

Rules of this file:
- `entries[k]` has index `offset + 1 + k`; `offset`/`offset_term` are the last index and term
  covered by the snapshot (0/0 for a log that was never compacted).
- `stable` is the last index known durable. Entries after it are handed out in the next Ready
  and become stable at `stable_to`, only if the entry there still has the same term (it may have
  been truncated and replaced while the caller was persisting).
- `committed` never moves back. Nothing here knows about roles or messages.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from operator import attrgetter

from wukongim.raft.messages import Entry, Snapshot

_data_of = attrgetter("data")


class RaftLog:
    __slots__ = (
        "_cum_bytes",
        "committed",
        "entries",
        "offset",
        "offset_term",
        "pending_snapshot",
        "snapshot",
        "stable",
    )

    def __init__(self, snapshot: Snapshot | None, entries: Sequence[Entry], committed: int) -> None:
        self.snapshot = snapshot
        self.offset = snapshot.meta.index if snapshot is not None else 0
        self.offset_term = snapshot.meta.term if snapshot is not None else 0
        self.entries: list[Entry] = list(entries)
        # _cum_bytes[k] = data bytes of entries[0..k]: MsgApp/Ready size limits by bisection
        self._cum_bytes: list[int] = list(accumulate(map(len, map(_data_of, self.entries))))
        if self.entries and self.entries[0].index != self.offset + 1:
            raise ValueError(
                f"entries start at {self.entries[0].index}, snapshot ends at {self.offset}"
            )
        self.stable = self.last_index()
        self.committed = max(committed, self.offset)
        self.pending_snapshot: Snapshot | None = None  # received, not yet persisted

    # -- reading ----------------------------------------------------------------------------

    def last_index(self) -> int:
        return self.offset + len(self.entries)

    def first_index(self) -> int:
        return self.offset + 1

    def last_term(self) -> int:
        return self.entries[-1].term if self.entries else self.offset_term

    def term(self, index: int) -> int | None:
        """The term at `index`, or None when it is compacted or beyond the end."""
        k = index - self.offset - 1
        if k < 0:
            return self.offset_term if k == -1 else None
        if k >= len(self.entries):
            return None
        return self.entries[k].term

    def match_term(self, index: int, term: int) -> bool:
        return self.term(index) == term

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Election restriction (§5.4.1): is a candidate's log at least as up to date as ours?"""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    def slice(self, lo: int, hi: int, max_bytes: int) -> list[Entry]:
        """Entries [lo, hi), at least one, stopping once `max_bytes` of data is exceeded.
        Precondition: offset < lo."""
        assert lo > self.offset, (lo, self.offset)
        k_lo = lo - self.offset - 1
        k_hi = min(hi, self.last_index() + 1) - self.offset - 1
        if k_hi <= k_lo:
            return []
        cum = self._cum_bytes
        limit = (cum[k_lo - 1] if k_lo else 0) + max_bytes
        if cum[k_hi - 1] > limit:
            k_hi = max(bisect_right(cum, limit, k_lo, k_hi), k_lo + 1)
        return self.entries[k_lo:k_hi]

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """The largest (i, term(i)) with i <= index and term(i) <= term. Used on both sides of
        a rejected MsgApp to skip a whole term of mismatching entries per round trip."""
        i = min(index, self.last_index())
        while i > self.offset:
            t = self.entries[i - self.offset - 1].term
            if t <= term:
                return i, t
            i -= 1
        return self.offset, self.offset_term

    def unstable_entries(self) -> tuple[Entry, ...]:
        k = self.stable - self.offset
        if k >= len(self.entries):
            return ()
        return tuple(self.entries[max(k, 0) :])

    # -- writing ----------------------------------------------------------------------------

    def append(self, entries: Sequence[Entry]) -> None:
        """Append, truncating our suffix from `entries[0].index` if it overlaps."""
        if not entries:
            return
        first = entries[0].index
        assert first > self.committed, f"truncating committed entries at {first}"
        assert first <= self.last_index() + 1, f"gap: appending {first} after {self.last_index()}"
        k = first - self.offset - 1
        if k < len(self.entries):
            del self.entries[k:]
            del self._cum_bytes[k:]
            self.stable = min(self.stable, first - 1)
        self.entries.extend(entries)
        cum = self._cum_bytes
        if len(entries) == 1:
            cum.append((cum[-1] if cum else 0) + len(entries[0].data))
        else:
            sizes = map(len, map(_data_of, entries))
            cum.extend(accumulate(sizes, initial=cum[-1] if cum else 0))
            del cum[-len(entries) - 1]

    def append_next(self, entry: Entry) -> None:
        """Leader: append one entry right after the last one (`append` for one entry, minus
        the overlap handling a leader never needs)."""
        assert entry.index == self.offset + len(self.entries) + 1, (entry.index, self.offset)
        self.entries.append(entry)
        cum = self._cum_bytes
        cum.append((cum[-1] if cum else 0) + len(entry.data))

    def maybe_append(
        self, index: int, log_term: int, commit: int, entries: Sequence[Entry]
    ) -> int | None:
        """Follower side of MsgApp: None if (index, log_term) does not match our log; else the
        last index known to match the leader, after appending what is new."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(entries)
        conflict = self._find_conflict(entries)
        if conflict:
            self.append(entries[conflict - index - 1 :])
        self.commit_to(min(commit, last_new))
        return last_new

    def _find_conflict(self, entries: Sequence[Entry]) -> int:
        """First index of `entries` that we lack or hold with another term; 0 if none."""
        last = self.last_index()
        for e in entries:
            if e.index > last:
                return e.index
            if e.index > self.offset and self.term(e.index) != e.term:
                return e.index
        return 0

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            assert index <= self.last_index(), f"commit {index} beyond last {self.last_index()}"
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Leader: commit `index` only if it holds an entry of the current `term` (§5.4.2)."""
        if index > self.committed and self.term(index) == term:
            self.committed = index
            return True
        return False

    def stable_to(self, index: int, term: int) -> None:
        if index > self.stable and self.term(index) == term:
            self.stable = index

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole log by a snapshot received from the leader."""
        meta = snapshot.meta
        self.snapshot = snapshot
        self.pending_snapshot = snapshot
        self.offset, self.offset_term = meta.index, meta.term
        self.entries = []
        self._cum_bytes = []
        self.stable = meta.index
        self.committed = meta.index

    def compact(self, snapshot: Snapshot) -> None:
        """Drop entries up to the snapshot's index (already applied and durable)."""
        index = snapshot.meta.index
        assert self.offset < index <= self.stable, (self.offset, index, self.stable)
        del self.entries[: index - self.offset]
        del self._cum_bytes[: index - self.offset]
        self.offset, self.offset_term = index, snapshot.meta.term
        self.snapshot = snapshot
