"""Safety invariants of the simulated cluster, checked after every step.

Rules of this file: observation only. The checker reads the nodes' Raft cores and what the loop
turns produced; it never changes them. Every check is incremental (it looks at what is new since
the last step) so that it can run after every step.

* Election safety: at most one leader per (group, term).
* Log matching: two entries with the same (group, index, term) carry the same data and follow an
  entry of the same term (so, inductively, the logs are identical up to there).
* Committed entries never change: every node's log agrees, up to its commit index, with the
  first committed entry anyone reported at that index.
* Leader completeness: a leader of term T holds every entry known committed in a term < T.
* State-machine safety: every node applies the same entry at the same index.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from wukongim.node.node import Applied, Node
from wukongim.raft import Entry, Role


class InvariantError(AssertionError):
    """A safety property broke. `invariant` names it; the message says where."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Committed:
    term: int  # the entry's term
    digest: int  # crc32 of kind + data
    seen_term: int  # term of the node that first reported it committed (>= its commit term)
    seen_node: int


def _digest(entry: Entry | Applied) -> int:
    return zlib.crc32(entry.data, int(entry.kind))


@dataclass(slots=True)
class SafetyChecker:
    leaders: dict[tuple[int, int], int] = field(default_factory=dict)  # (group, term) -> node
    # (group, index, term) -> (digest, previous term): the identity of every entry ever written
    entries: dict[tuple[int, int, int], tuple[int, int]] = field(default_factory=dict)
    committed: dict[int, dict[int, _Committed]] = field(default_factory=dict)  # group -> index
    applied: dict[int, dict[int, tuple[int, int]]] = field(default_factory=dict)
    verified: dict[tuple[int, int], int] = field(default_factory=dict)  # (node, group) -> index
    checks: int = 0

    # -- per loop turn ---------------------------------------------------------------------------

    def on_entries(self, node: Node, group: int, entries: tuple[Entry, ...]) -> None:
        """Entries a node is about to persist (log matching)."""
        raw = node.raw(group)
        for e in entries:
            prev = raw.log.term(e.index - 1)
            prev_term = -1 if prev is None else prev
            key = (group, e.index, e.term)
            digest = _digest(e)
            known = self.entries.get(key)
            if known is None:
                self.entries[key] = (digest, prev_term)
                continue
            same_prev = prev_term in (-1, known[1]) or known[1] == -1
            if known[0] != digest or not same_prev:
                raise InvariantError(
                    "log matching",
                    f"g{group} n{node.id} entry {e.term}/{e.index} (prev term {prev_term}) "
                    f"differs from an earlier copy (prev term {known[1]})",
                )

    def on_applied(self, node: Node, applied: list[Applied]) -> None:
        """Entries a node applied (state-machine safety)."""
        for a in applied:
            per_group = self.applied.setdefault(a.group, {})
            ident = (a.term, _digest(a))
            known = per_group.get(a.index)
            if known is None:
                per_group[a.index] = ident
            elif known != ident:
                raise InvariantError(
                    "state machine safety",
                    f"n{node.id} applied {a.describe()} at g{a.group}/{a.index} but another node "
                    f"applied term {known[0]} there",
                )

    def forget_node(self, node_id: int) -> None:
        """The node restarted: re-verify its whole log against the committed entries."""
        for key in [key for key in self.verified if key[0] == node_id]:
            del self.verified[key]

    # -- after every step ------------------------------------------------------------------------

    def check(self, nodes: list[Node]) -> None:
        self.checks += 1
        for node in nodes:
            for group in node.groups:
                self._check_group(node, group)

    def _check_group(self, node: Node, group: int) -> None:
        raw = node.raw(group)
        if raw.role == Role.LEADER:
            key = (group, raw.term)
            leader = self.leaders.get(key)
            if leader is None:
                self.leaders[key] = node.id
                self._check_leader_completeness(node, group)
            elif leader != node.id:
                raise InvariantError(
                    "election safety",
                    f"g{group} term {raw.term} has two leaders: n{leader} and n{node.id}",
                )
        self._check_committed(node, group)

    def _check_committed(self, node: Node, group: int) -> None:
        raw = node.raw(group)
        log = raw.log
        start = max(self.verified.get((node.id, group), 0), log.offset) + 1
        if start > log.committed:
            return
        per_group = self.committed.setdefault(group, {})
        for index in range(start, log.committed + 1):
            e = log.entries[index - log.offset - 1]
            known = per_group.get(index)
            if known is None:
                per_group[index] = _Committed(e.term, _digest(e), raw.term, node.id)
            elif known.term != e.term or known.digest != _digest(e):
                raise InvariantError(
                    "committed entry changed",
                    f"g{group}/{index}: n{node.id} has {e.describe()} committed, but "
                    f"n{known.seen_node} reported term {known.term} committed there",
                )
        self.verified[(node.id, group)] = log.committed

    def _check_leader_completeness(self, node: Node, group: int) -> None:
        raw = node.raw(group)
        log = raw.log
        for index, known in sorted(self.committed.get(group, {}).items()):
            if index <= log.offset or known.seen_term >= raw.term:
                continue
            term = log.term(index)
            if term != known.term:
                raise InvariantError(
                    "leader completeness",
                    f"g{group} n{node.id} leader of term {raw.term} has term {term} at {index}, "
                    f"committed as term {known.term} (seen by n{known.seen_node} "
                    f"in term {known.seen_term})",
                )
