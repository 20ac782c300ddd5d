"""A linearizability checker for key-value histories (Wing & Gong search, Lowe's memoisation,
partitioned per key as Porcupine does).

Rules of this file: pure functions over recorded operations; no clock, no randomness.

A history is a list of `Operation`s, each with the event numbers of its invocation and of its
completion. An operation whose outcome is unknown (the client timed out) completes at
`PENDING` (+infinity): it may take effect at any point after its invocation, or never. The search
tries, from the left, every operation that could come next (one invoked before the earliest
completion among the operations not yet placed), steps the model, and remembers every
(placed-set, state) pair it has already explored, so each pair is expanded at most once.

A key-value history is linearizable iff the sub-history of each key is (operations on different
keys commute), which keeps every search small.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PENDING = 1 << 62  # completion event of an operation whose outcome is unknown


class OpKind(enum.Enum):
    PUT = "put"
    GET = "get"
    APPEND = "append"


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation. `output` is the value a GET returned (None = key absent)."""

    client: int
    kind: OpKind
    key: str
    value: str  # PUT: the value written; APPEND: the suffix; GET: unused ("")
    call: int  # event number of the invocation
    ret: int  # event number of the completion, PENDING if unknown
    output: str | None = None

    def describe(self) -> str:
        end = "?" if self.ret == PENDING else str(self.ret)
        if self.kind is OpKind.GET:
            return f"c{self.client} get({self.key})->{self.output!r} [{self.call},{end}]"
        return f"c{self.client} {self.kind.value}({self.key},{self.value!r}) [{self.call},{end}]"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    key: str = ""
    longest_prefix: tuple[Operation, ...] = ()  # best linearization found for the failing key
    stuck: tuple[Operation, ...] = ()  # operations that could not be placed after it

    def describe(self) -> str:
        if self.ok:
            return "linearizable"
        placed = "; ".join(op.describe() for op in self.longest_prefix[-6:])
        stuck = "; ".join(op.describe() for op in self.stuck[:6])
        return (
            f"not linearizable on key {self.key!r}: after [{placed}] cannot place any of [{stuck}]"
        )


def _step(state: str | None, op: Operation) -> tuple[bool, str | None]:
    """The sequential specification of one key: (is `op` legal in `state`, next state)."""
    if op.kind is OpKind.PUT:
        return True, op.value
    if op.kind is OpKind.APPEND:
        return True, (state or "") + op.value
    return state == op.output, state


def check_key(ops: Sequence[Operation]) -> CheckResult:
    """Check the history of a single key. Operations with an unknown outcome must be writes
    (drop unanswered reads before calling: they constrain nothing)."""
    order = sorted(ops, key=lambda op: op.call)
    count = len(order)
    full = (1 << count) - 1
    seen: set[tuple[int, str | None]] = {(0, None)}
    stack: list[tuple[int, str | None, int]] = [(0, None, 0)]  # (placed mask, state, depth)
    best: tuple[int, int] = (-1, 0)  # (depth, mask) of the deepest node explored
    while stack:
        mask, state, depth = stack.pop()
        if mask == full:
            return CheckResult(ok=True)
        if depth > best[0]:
            best = (depth, mask)
        # Push in reverse so the earliest-invoked candidate is explored first: in a correct
        # history that is nearly always right, and the search runs straight through.
        for index in reversed(_candidates(order, mask)):
            legal, after = _step(state, order[index])
            node = (mask | (1 << index), after)
            if legal and node not in seen:
                seen.add(node)
                stack.append((node[0], after, depth + 1))
    return _failure(order, best[1])


def _candidates(order: Sequence[Operation], mask: int) -> list[int]:
    """Indices of unplaced operations that may be linearized next: invoked before every
    unplaced operation's completion. `order` is sorted by invocation, so the scan starts at the
    first unplaced operation and stops at the first one invoked after the earliest completion
    seen so far (everything later is invoked later still, and completes later than that)."""
    index = (~mask & (mask + 1)).bit_length() - 1  # lowest unplaced
    earliest_ret = PENDING + 1
    result: list[int] = []
    count = len(order)
    while index < count:
        op = order[index]
        if op.call > earliest_ret:
            break
        if not mask >> index & 1:
            result.append(index)
            earliest_ret = min(earliest_ret, op.ret)
        index += 1
    return result


def _failure(order: Sequence[Operation], mask: int) -> CheckResult:
    placed = tuple(op for index, op in enumerate(order) if mask >> index & 1)
    stuck = tuple(order[index] for index in _candidates(order, mask))
    key = order[0].key if order else ""
    return CheckResult(ok=False, key=key, longest_prefix=placed, stuck=stuck)


def check_history(ops: Iterable[Operation]) -> CheckResult:
    """Check a whole key-value history, one key at a time (keys in sorted order)."""
    per_key: dict[str, list[Operation]] = {}
    for op in ops:
        if op.kind is OpKind.GET and op.ret == PENDING:
            continue  # an unanswered read has no effect and no observed value
        per_key.setdefault(op.key, []).append(op)
    for key in sorted(per_key):
        result = check_key(per_key[key])
        if not result.ok:
            return result
    return CheckResult(ok=True)
