"""Quorum math against naive definitions (like etcd quorum/quick_test.go)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wukongim.raft.quorum import (
    INDEX_MAX,
    VoteResult,
    has_quorum,
    joint_committed_index,
    majority_committed_index,
    majority_vote_result,
)

voter_sets = st.sets(st.integers(1, 9), max_size=7)
indexes = st.dictionaries(st.integers(1, 9), st.integers(0, 20), max_size=9)


def naive_committed_index(voters: set[int], match: dict[int, int]) -> int:
    """The largest i such that a strict majority of voters has match >= i."""
    if not voters:
        return INDEX_MAX
    best = 0
    for i in range(0, 21):
        if sum(1 for v in voters if match.get(v, 0) >= i) > len(voters) // 2:
            best = i
    return best


@given(voter_sets, indexes)
def test_majority_committed_index_matches_naive(voters, match):
    assert majority_committed_index(voters, match) == naive_committed_index(voters, match)


@given(voter_sets, voter_sets, indexes)
def test_joint_committed_index_is_min_of_both_majorities(incoming, outgoing, match):
    want = min(naive_committed_index(incoming, match), naive_committed_index(outgoing, match))
    assert joint_committed_index(incoming, outgoing, match) == want


@given(voter_sets, st.dictionaries(st.integers(1, 9), st.booleans(), max_size=9))
def test_vote_result_matches_naive(voters, votes):
    yes = sum(1 for v in voters if votes.get(v) is True)
    missing = sum(1 for v in voters if v not in votes)
    quorum = len(voters) // 2 + 1
    if not voters or yes >= quorum:
        want = VoteResult.WON
    elif yes + missing >= quorum:
        want = VoteResult.PENDING
    else:
        want = VoteResult.LOST
    assert majority_vote_result(voters, votes) == want


@given(voter_sets, st.sets(st.integers(1, 9)))
def test_has_quorum_is_a_strict_majority(voters, members):
    want = not voters or len(voters & members) * 2 > len(voters)
    assert has_quorum(voters, members) == want


def test_examples():
    assert majority_committed_index([1, 2, 3], {1: 5, 2: 3, 3: 1}) == 3
    assert majority_committed_index([1, 2, 3, 4], {1: 5, 2: 3, 3: 1, 4: 9}) == 3
    assert majority_committed_index([1], {}) == 0
