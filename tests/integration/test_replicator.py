"""LocalReplicator over the in-memory stores: batching, order, recovery after a crash,
compaction, and a failing store."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from wukongim.chat.commands import Result, SendMessage, SendResult, SetUserToken
from wukongim.chat.state_machine import ChatConfig, ChatStateMachine
from wukongim.server.replicator import LocalReplicator, ReplicatorStoppedError
from wukongim.store.memory import MemoryKVStore, MemoryRaftLogStore

GROUP = 1


class SyncNowCommitter:
    """Commits by syncing the store in the loop thread (the tests need no executor)."""

    def __init__(self, store: MemoryRaftLogStore, *, fail: bool = False) -> None:
        self.store = store
        self.fail = fail
        self.commits = 0
        self._tasks: set[asyncio.Future[None]] = set()

    async def commit(self) -> None:
        await asyncio.sleep(0)
        if self.fail:
            raise OSError("disk on fire")
        self.commits += 1
        self.store.sync()

    def commit_then(self, callback: Callable[[BaseException | None], None]) -> None:
        async def commit_and_tell() -> None:
            try:
                await self.commit()
            except OSError as exc:
                callback(exc)
                return
            callback(None)

        self._tasks.add(asyncio.ensure_future(commit_and_tell()))


def _message(n: int) -> SendMessage:
    return SendMessage(
        from_uid="a",
        channel_id="b",
        channel_type=1,
        client_msg_no=f"c{n}",
        payload=f"m{n}".encode(),
        message_id=1000 + n,
        timestamp_s=1,
    )


def _node(
    kv: MemoryKVStore, log: MemoryRaftLogStore, **kw: int
) -> tuple[ChatStateMachine, LocalReplicator, SyncNowCommitter]:
    machine = ChatStateMachine(kv, ChatConfig(group_id=GROUP))
    committer = SyncNowCommitter(log)
    return machine, LocalReplicator(log, committer, machine, group=GROUP, **kw), committer


async def _run(replicator: LocalReplicator) -> asyncio.Task[None]:
    return asyncio.create_task(replicator.run())


async def test_one_turn_is_one_entry_and_results_keep_order() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    machine, replicator, _ = _node(kv, log)
    task = await _run(replicator)
    first = replicator.submit(GROUP, [_message(1), _message(2)])
    second = replicator.submit(GROUP, [_message(3)])
    results = await first + await second
    assert [r.message_seq for r in results if isinstance(r, SendResult)] == [1, 2, 3]
    assert replicator.round_count == 1
    assert replicator.last_index == 2
    assert machine.applied_index() == 2
    replicator.stop()
    await task


async def test_now_starts_the_round_at_once_with_what_was_queued() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    machine, replicator, _ = _node(kv, log)
    task = await _run(replicator)
    queued = replicator.submit(GROUP, [_message(1)])
    assert replicator.round_count == 0  # a plain submit waits for the next turn
    at_once = replicator.submit(GROUP, [_message(2)], now=True)
    # appended in this call, with the proposal queued before it, as one round of two entries
    assert replicator.round_count == 1
    assert replicator.last_index == 2
    results = await queued + await at_once
    assert [r.message_seq for r in results if isinstance(r, SendResult)] == [1, 2]
    await asyncio.sleep(0)  # the round scheduled by the first submit finds nothing left
    assert replicator.round_count == 1
    assert machine.applied_index() == 2
    replicator.stop()
    await task


async def test_recovery_replays_durable_entries_after_a_crash() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    _, replicator, _ = _node(kv, log)
    task = await _run(replicator)
    for n in range(1, 11):
        await replicator.propose(GROUP, [_message(n)])
    replicator.stop()
    await task
    # the state writes were never synced on their own; the log was
    log.crash()
    kv.crash()
    machine, again, _ = _node(kv, log)
    replayed = again.recover()
    assert replayed >= 1  # the last apply was not durable: it comes back from the log
    assert machine.applied_index() == 10
    messages = machine.sync_messages("a", "b", 1, 0, 0, 100, 0).messages
    assert [m.message_seq for m in messages] == list(range(1, 11))
    assert [m.payload for m in messages] == [f"m{n}".encode() for n in range(1, 11)]
    # and the recovered replicator continues the log without a gap
    task = await _run(again)
    (result,) = await again.propose(GROUP, [_message(11)])
    assert isinstance(result, SendResult)
    assert result.message_seq == 11
    assert again.last_index == 11
    again.stop()
    await task


async def test_compaction_drops_the_applied_prefix() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    machine, replicator, _ = _node(kv, log, compact_every=5)
    task = await _run(replicator)
    for n in range(1, 13):
        await replicator.propose(GROUP, [_message(n)])
    await replicator.propose(GROUP, [SetUserToken("a", 1, 0, "t")])  # one more sync
    replicator.stop()
    await task
    entries = log.load(GROUP).entries
    assert entries
    assert entries[0].index > 1
    assert entries[-1].index == 13
    # compaction is safe across a crash: the state up to the compaction point is durable
    log.crash()
    kv.crash()
    machine, again, _ = _node(kv, log)
    again.recover()
    assert machine.applied_index() == 13
    assert machine.user_token("a", 1) == ("t", 0)
    messages = machine.sync_messages("a", "b", 1, 0, 0, 100, 0).messages
    assert [m.message_seq for m in messages] == list(range(1, 13))


async def test_a_failing_store_fails_the_proposals_and_refuses_more() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    machine = ChatStateMachine(kv, ChatConfig(group_id=GROUP))
    replicator = LocalReplicator(log, SyncNowCommitter(log, fail=True), machine, group=GROUP)
    task = await _run(replicator)
    with pytest.raises(ReplicatorStoppedError):
        await replicator.propose(GROUP, [_message(1)])
    with pytest.raises(ReplicatorStoppedError):
        replicator.submit(GROUP, [_message(2)])
    await task
    assert machine.applied_index() == 0


async def test_on_done_is_called_with_the_resolved_future() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    _, replicator, _ = _node(kv, log)
    task = await _run(replicator)
    calls: list[list[int]] = []

    def on_done(future: asyncio.Future[list[Result]]) -> None:
        assert future.done()
        calls.append([r.message_seq for r in future.result() if isinstance(r, SendResult)])

    future = replicator.submit(GROUP, [_message(1), _message(2)], on_done=on_done)
    await future
    assert calls == [[1, 2]]
    replicator.stop()
    await task


async def test_on_done_hears_of_a_failed_store() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    machine = ChatStateMachine(kv, ChatConfig(group_id=GROUP))
    replicator = LocalReplicator(log, SyncNowCommitter(log, fail=True), machine, group=GROUP)
    task = await _run(replicator)
    failed: list[bool] = []
    future = replicator.submit(
        GROUP,
        [_message(1)],
        on_done=lambda f: failed.append(f.exception() is not None),
    )
    with pytest.raises(ReplicatorStoppedError):
        await future
    assert failed == [True]
    await task


async def test_a_failing_on_done_does_not_stop_later_proposals() -> None:
    kv = MemoryKVStore()
    log = MemoryRaftLogStore(kv)
    _, replicator, _ = _node(kv, log)
    task = await _run(replicator)

    def broken(_: asyncio.Future[list[Result]]) -> None:
        raise RuntimeError("a bug in the caller")

    first = replicator.submit(GROUP, [_message(1)], on_done=broken)
    second = replicator.submit(GROUP, [_message(2)])  # same round, applied after the first
    async with asyncio.timeout(10):  # without the guard the second one would never resolve
        assert [r.message_seq for r in await first if isinstance(r, SendResult)] == [1]
        assert [r.message_seq for r in await second if isinstance(r, SendResult)] == [2]
        third = replicator.submit(GROUP, [_message(3)])  # and the replicator keeps serving
        assert [r.message_seq for r in await third if isinstance(r, SendResult)] == [3]
    replicator.stop()
    await task
