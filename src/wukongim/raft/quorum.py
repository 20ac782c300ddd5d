"""Quorum math: the commit index of a majority, and the outcome of an election.

Rules of this file: pure functions over voter ids and per-voter numbers. A voter missing from
the map counts as index 0 / no answer yet. An empty voter set commits everything (it never
constrains a joint configuration) and wins every vote, as etcd's quorum package defines it.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping


class VoteResult(enum.Enum):
    PENDING = "pending"
    LOST = "lost"
    WON = "won"


INDEX_MAX = (1 << 64) - 1


def majority_committed_index(voters: Collection[int], match: Mapping[int, int]) -> int:
    """The largest index that a majority of `voters` has acknowledged."""
    return committed_index([match.get(v, 0) for v in voters])


def committed_index(indexes: list[int]) -> int:
    """The largest index that a majority holds, given one acknowledged index per voter.
    Sorts `indexes` in place (the hot path: the leader calls it on every acknowledgement)."""
    n = len(indexes)
    if n == 0:
        return INDEX_MAX
    indexes.sort()
    return indexes[(n - 1) // 2]


def joint_committed_index(
    incoming: Collection[int], outgoing: Collection[int], match: Mapping[int, int]
) -> int:
    """Joint consensus: an index is committed only when both majorities have it."""
    return min(majority_committed_index(incoming, match), majority_committed_index(outgoing, match))


def majority_vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a majority granted, LOST once a majority can no longer be reached."""
    n = len(voters)
    if n == 0:
        return VoteResult.WON
    granted = rejected = 0
    for v in voters:
        answer = votes.get(v)
        if answer is None:
            continue
        if answer:
            granted += 1
        else:
            rejected += 1
    quorum = n // 2 + 1
    if granted >= quorum:
        return VoteResult.WON
    if n - rejected < quorum:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Collection[int], members: Collection[int]) -> bool:
    """True when `members` (e.g. recently active nodes) include a majority of `voters`."""
    n = len(voters)
    if n == 0:
        return True
    present = sum(1 for v in voters if v in members)
    return present >= n // 2 + 1
