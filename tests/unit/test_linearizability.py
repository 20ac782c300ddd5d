"""The linearizability checker against hand-made histories with known answers."""

from wukongim.sim.linearizability import (
    PENDING,
    Operation,
    OpKind,
    check_history,
    check_key,
)


def put(client: int, value: str, call: int, ret: int, key: str = "x") -> Operation:
    return Operation(client, OpKind.PUT, key, value, call, ret)


def append(client: int, value: str, call: int, ret: int, key: str = "x") -> Operation:
    return Operation(client, OpKind.APPEND, key, value, call, ret)


def get(client: int, output: str | None, call: int, ret: int, key: str = "x") -> Operation:
    return Operation(client, OpKind.GET, key, "", call, ret, output)


def test_empty_history_is_linearizable() -> None:
    assert check_history([]).ok


def test_sequential_history_is_linearizable() -> None:
    ops = [put(1, "a", 1, 2), get(2, "a", 3, 4), append(1, "b", 5, 6), get(2, "ab", 7, 8)]
    assert check_history(ops).ok


def test_read_of_absent_key_before_any_write() -> None:
    assert check_history([get(1, None, 1, 2), put(2, "a", 3, 4)]).ok
    assert not check_history([put(2, "a", 1, 2), get(1, None, 3, 4)]).ok


def test_stale_read_after_completed_write_is_not_linearizable() -> None:
    ops = [put(1, "a", 1, 2), put(1, "b", 3, 4), get(2, "a", 5, 6)]
    result = check_history(ops)
    assert not result.ok
    assert result.key == "x"
    assert "get(x)->'a'" in result.describe()


def test_concurrent_write_may_be_seen_or_not() -> None:
    # The read overlaps the second put, so either value is fine.
    assert check_history([put(1, "a", 1, 2), put(1, "b", 3, 6), get(2, "a", 4, 5)]).ok
    assert check_history([put(1, "a", 1, 2), put(1, "b", 3, 6), get(2, "b", 4, 5)]).ok


def test_reads_must_not_go_back_in_time() -> None:
    # Two sequential reads overlapping one write: new then old is a violation.
    ops = [put(1, "a", 1, 2), put(1, "b", 3, 10), get(2, "b", 4, 5), get(3, "a", 6, 7)]
    assert not check_history(ops).ok
    ops = [put(1, "a", 1, 2), put(1, "b", 3, 10), get(2, "a", 4, 5), get(3, "b", 6, 7)]
    assert check_history(ops).ok


def test_pending_write_may_take_effect_late_or_never() -> None:
    late = [put(1, "a", 1, 2), put(2, "b", 3, PENDING), get(3, "a", 4, 5), get(3, "b", 6, 7)]
    assert check_history(late).ok
    never = [put(1, "a", 1, 2), put(2, "b", 3, PENDING), get(3, "a", 4, 5)]
    assert check_history(never).ok


def test_pending_write_cannot_take_effect_before_its_invocation() -> None:
    ops = [get(3, "b", 1, 2), put(2, "b", 3, PENDING)]
    assert not check_history(ops).ok


def test_unanswered_reads_are_ignored() -> None:
    assert check_history([put(1, "a", 1, 2), get(2, "zzz", 3, PENDING)]).ok


def test_appends_are_applied_once_each() -> None:
    ops = [append(1, "a", 1, 2), append(2, "b", 3, 4), get(3, "ab", 5, 6)]
    assert check_history(ops).ok
    duplicated = [append(1, "a", 1, 2), append(2, "b", 3, 4), get(3, "aab", 5, 6)]
    assert not check_history(duplicated).ok


def test_concurrent_appends_in_either_order_but_consistently() -> None:
    base = [append(1, "a", 1, 10), append(2, "b", 2, 11)]
    assert check_history([*base, get(3, "ab", 12, 13)]).ok
    assert check_history([*base, get(3, "ba", 12, 13)]).ok
    # Two readers after both appends completed cannot disagree on the order.
    assert not check_history([*base, get(3, "ab", 12, 13), get(4, "ba", 14, 15)]).ok


def test_lost_acknowledged_write_is_detected() -> None:
    ops = [append(1, "a", 1, 2), append(1, "b", 3, 4), get(2, "a", 5, 6)]
    assert not check_history(ops).ok


def test_keys_are_checked_independently() -> None:
    ops = [put(1, "a", 1, 2, key="k1"), put(2, "b", 3, 4, key="k2"), get(3, "a", 5, 6, key="k1")]
    assert check_history(ops).ok
    bad = [*ops, get(3, "a", 7, 8, key="k2")]
    result = check_history(bad)
    assert not result.ok
    assert result.key == "k2"


def test_many_concurrent_writers_stay_tractable() -> None:
    # 14 overlapping puts and a final read of one of them: the memoised search must finish.
    ops = [put(c, f"v{c}", c, 100 + c) for c in range(14)]
    ops.append(get(99, "v7", 200, 201))
    assert check_key(ops).ok
    ops.append(get(98, "missing", 202, 203))
    assert not check_key(ops).ok
