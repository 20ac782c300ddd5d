"""RaftLoop's proposal bookkeeping (spans of consecutive proposals), without a running loop:
proposals are registered as the loop's turn does, then applied runs are resolved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from wukongim.node.node import AppliedRun, Node, NodeOutput
from wukongim.raft import Entry, NotLeader
from wukongim.server.raft_loop import RaftLoop, _Span

GROUP = 1


class StubNode:
    """Just what the bookkeeping asks of a Node."""

    def leader(self, group: int) -> int:
        return 0


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int, list[object], str]] = []

    def __call__(
        self, start: int, stop: int, results: Sequence[object], error: BaseException | None
    ) -> None:
        self.calls.append((start, stop, list(results), type(error).__name__ if error else ""))


def make_loop() -> RaftLoop:
    return RaftLoop(cast(Node, StubNode()), committer=cast("object", None))  # type: ignore[arg-type]


def add(loop: RaftLoop, first: int, count: int, term: int, generation: int = 0) -> Recorder:
    rec = Recorder()
    loop._add_span(GROUP, _Span(first, count, term, rec, True, generation))
    return rec


def applied(first: int, terms: Sequence[int]) -> NodeOutput:
    entries = tuple(Entry(first + k, t, data=b"x") for k, t in enumerate(terms))
    out = NodeOutput()
    out.applied_runs.append(AppliedRun(GROUP, entries, [f"r{e.index}" for e in entries]))
    return out


def test_a_span_is_answered_in_slices_as_its_entries_apply() -> None:
    loop = make_loop()
    rec = add(loop, 10, 5, term=2)
    loop._resolve(applied(8, [2, 2, 2, 2, 2]))  # 8..12
    loop._resolve(applied(13, [2, 2, 2]))  # 13..15
    assert rec.calls == [(0, 3, ["r10", "r11", "r12"], ""), (3, 5, ["r13", "r14"], "")]
    assert not loop._spans[GROUP]


def test_entries_of_a_later_term_fail_the_rest_of_the_span() -> None:
    loop = make_loop()
    rec = add(loop, 10, 4, term=2)
    loop._resolve(applied(10, [2, 3, 3, 3]))
    assert rec.calls == [(0, 1, ["r10"], ""), (1, 4, [], "NotLeader")]
    assert not loop._spans[GROUP]


def test_consecutive_spans_share_one_applied_run() -> None:
    loop = make_loop()
    first, second = add(loop, 10, 2, term=1), add(loop, 12, 2, term=1)
    loop._resolve(applied(10, [1, 1, 1, 1]))
    assert first.calls == [(0, 2, ["r10", "r11"], "")]
    assert second.calls == [(0, 2, ["r12", "r13"], "")]


def test_a_new_leader_term_overwriting_a_span_fails_its_overlap_at_once() -> None:
    loop = make_loop()
    old = add(loop, 10, 5, term=1)  # 10..14
    new = add(loop, 12, 3, term=2)  # our log was truncated at 12
    assert old.calls == [(2, 5, [], "NotLeader")]
    loop._resolve(applied(10, [1, 1, 2, 2, 2]))
    assert old.calls[1:] == [(0, 2, ["r10", "r11"], "")]
    assert new.calls == [(0, 3, ["r12", "r13", "r14"], "")]


def test_a_span_wholly_overwritten_is_dropped() -> None:
    loop = make_loop()
    old = add(loop, 10, 2, term=1)
    add(loop, 9, 1, term=2)
    assert old.calls == [(0, 2, [], "NotLeader")]
    assert len(loop._spans[GROUP]) == 1


def test_entries_skipped_by_a_snapshot_fail_with_an_unknown_outcome() -> None:
    loop = make_loop()
    rec = add(loop, 10, 4, term=1)
    loop._resolve(applied(12, [1, 1]))
    assert rec.calls == [(0, 2, [], "TimeoutError"), (2, 4, ["r12", "r13"], "")]


def test_single_waiters_get_their_own_result() -> None:
    loop = make_loop()
    outcomes: list[tuple[object, BaseException | None]] = []
    for index in (5, 6):
        loop._add_span(GROUP, _Span(index, 1, 1, lambda r, e: outcomes.append((r, e)), False, 0))
    loop._resolve(applied(5, [1, 2]))
    assert outcomes[0] == ("r5", None)
    assert outcomes[1][0] is None
    assert isinstance(outcomes[1][1], NotLeader)


def test_expiry_fails_old_generations_only() -> None:
    loop = make_loop()
    old, new = add(loop, 10, 2, term=1, generation=0), add(loop, 12, 2, term=1, generation=1)
    loop._expire_proposals(0)
    assert old.calls == [(0, 2, [], "TimeoutError")]
    assert new.calls == []
    loop._resolve(applied(10, [1, 1, 1, 1]))
    assert new.calls == [(0, 2, ["r12", "r13"], "")]


def test_stopping_fails_everything_pending() -> None:
    loop = make_loop()
    rec = add(loop, 10, 3, term=1)
    loop._resolve(applied(10, [1]))
    loop._fail_all(ConnectionAbortedError("stop"))
    assert rec.calls == [(0, 1, ["r10"], ""), (1, 3, [], "ConnectionAbortedError")]
