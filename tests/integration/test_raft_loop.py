"""The Raft loop over real loopback peer links: elect, propose, read, fail over."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.waiting import wait_until as _wait_until
from wukongim.ids import NodeId
from wukongim.node.node import Node, NodeConfig
from wukongim.raft import RaftConfig, Role
from wukongim.server.group_commit import GroupCommitter
from wukongim.server.peer_links import PeerLinks, PeerLinksConfig
from wukongim.server.raft_loop import BatchWaiter, NotLeader, RaftLoop, RaftLoopConfig
from wukongim.store.interfaces import RaftLogStore
from wukongim.store.memory import MemoryRaftLogStore
from wukongim.store.raftlog import LOG_CF, RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
GROUP = 1
LOOP_CONFIG = RaftLoopConfig(tick_s=0.05, propose_timeout_s=10.0, read_timeout_s=10.0)
LINKS_CONFIG = PeerLinksConfig(reconnect_delay_min_s=0.01, reconnect_delay_max_s=0.1)


async def wait_until(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    await _wait_until(cond, timeout_s)


class KV:
    """Test state machine: data = b"key=value"; apply returns the previous value."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def apply(self, index: int, data: bytes) -> object:
        key, _, value = data.partition(b"=")
        previous = self.data.get(key)
        self.data[key] = value
        return previous

    def snapshot(self) -> bytes:
        return b"\n".join(k + b"=" + v for k, v in sorted(self.data.items()))

    def restore(self, data: bytes) -> None:
        self.data = dict(line.partition(b"=")[::2] for line in data.split(b"\n") if line)


@dataclass
class Member:
    node_id: int
    node: Node
    loop: RaftLoop
    links: PeerLinks
    task: asyncio.Task[None] | None = None
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    @property
    def is_leader(self) -> bool:
        return self.node.status(GROUP).role == Role.LEADER

    def kv(self) -> KV:
        machine = self.node.state_machine(GROUP)
        assert isinstance(machine, KV)
        return machine

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.stack.aclose()


async def start_member(
    node_id: int, voters: list[int], store: RaftLogStore, executor: ThreadPoolExecutor
) -> Member:
    rng = random.Random(node_id)
    config = NodeConfig(raft=RaftConfig(election_tick=10, heartbeat_tick=1), snapshot_entries=50)
    node = Node(node_id, store, lambda group: KV(), rng, config)
    if store.groups():
        node.restart()
    else:
        node.create_group(GROUP, voters)
    committer = GroupCommitter(store, executor)
    loop = RaftLoop(node, committer, config=LOOP_CONFIG)
    links = PeerLinks(
        NodeId(node_id),
        (HOST, 0),
        {},
        loop.on_peer_messages,
        config=LINKS_CONFIG,
        rng=rng,
    )
    loop.transport = links
    member = Member(node_id, node, loop, links)
    await member.stack.enter_async_context(links)
    member.task = asyncio.create_task(loop.run())
    return member


@asynccontextmanager
async def cluster(size: int) -> AsyncIterator[list[Member]]:
    voters = list(range(1, size + 1))
    with ThreadPoolExecutor(max_workers=size) as executor:
        members = [await start_member(n, voters, MemoryRaftLogStore(), executor) for n in voters]
        connect_all(members)
        try:
            yield members
        finally:
            for m in members:
                await m.stop()


def connect_all(members: list[Member]) -> None:
    for a in members:
        for b in members:
            if a is not b:
                a.links.add_peer(NodeId(b.node_id), (HOST, b.links.listen_port))


async def leader_of(members: list[Member]) -> Member:
    await wait_until(lambda: any(m.is_leader for m in members if m.task is not None))
    return next(m for m in members if m.task is not None and m.is_leader)


async def test_single_member_group_commits_and_reads() -> None:
    async with cluster(1) as [only]:
        await wait_until(lambda: only.is_leader)
        assert await only.loop.propose(GROUP, b"a=1") is None
        assert await only.loop.propose(GROUP, b"a=2") == b"1"
        assert await only.loop.read(GROUP, lambda kv: kv.data[b"a"]) == b"2"  # type: ignore[attr-defined]


async def test_three_members_replicate_and_followers_redirect() -> None:
    async with cluster(3) as members:
        leader = await leader_of(members)
        results = await asyncio.gather(
            *(leader.loop.propose(GROUP, b"k%d=%d" % (i, i)) for i in range(200))
        )
        assert results == [None] * 200
        assert leader.loop.stats.syncs < 200  # proposals shared syncs (group commit)
        follower = next(m for m in members if m is not leader)
        with pytest.raises(NotLeader) as info:
            await follower.loop.propose(GROUP, b"x=1")
        assert info.value.leader == leader.node_id
        # A read on a follower goes through the leader's read index, then waits for apply.
        value = await follower.loop.read(GROUP, lambda kv: kv.data.get(b"k199"))  # type: ignore[attr-defined]
        assert value == b"199"
        await wait_until(lambda: all(len(m.kv().data) == 200 for m in members))
        assert all(m.loop.stats.syncs > 0 for m in members)


async def test_a_new_leader_serves_after_the_leader_stops() -> None:
    async with cluster(3) as members:
        old = await leader_of(members)
        await old.loop.propose(GROUP, b"before=1")
        await old.stop()
        new = await leader_of(members)
        assert new is not old
        assert await new.loop.propose(GROUP, b"before=2") == b"1"


async def test_proposals_pending_when_the_loop_stops_fail() -> None:
    async with cluster(1) as [only]:
        await wait_until(lambda: only.is_leader)
        pending = asyncio.ensure_future(only.loop.propose(GROUP, b"z=1"))
        await only.stop()
        with pytest.raises((ConnectionAbortedError, asyncio.CancelledError)):
            await pending


async def test_proposals_after_the_loop_stopped_fail_at_once() -> None:
    # A proposal whose first step runs after run()'s cleanup must not wait for its timeout:
    # nobody would ever resolve it.
    async with cluster(1) as [only]:
        await wait_until(lambda: only.is_leader)
        await only.stop()
        with pytest.raises(ConnectionAbortedError):
            await only.loop.propose(GROUP, b"z=1")
        with pytest.raises(ConnectionAbortedError):
            only.loop.propose_nowait(GROUP, b"z=2", lambda result, error: None)
        with pytest.raises(ConnectionAbortedError):
            only.loop.propose_many_nowait(GROUP, [b"z=3"], lambda *args: None)


async def test_restart_from_rocksdb_keeps_committed_state(tmp_path: Path) -> None:
    async def run_once(proposals: list[bytes]) -> list[object]:
        kv = RocksKVStore.open(tmp_path / "db", [LOG_CF])
        store = RocksRaftLogStore(kv)
        member = await start_member(1, [1], store, executor)
        try:
            await wait_until(lambda: member.is_leader)
            return [await member.loop.propose(GROUP, p) for p in proposals]
        finally:
            await member.stop()
            store.close()
            kv.close()

    with ThreadPoolExecutor(max_workers=1) as executor:
        # past snapshot_entries: a snapshot and a compaction happen
        await run_once([b"n=%d" % i for i in range(120)])
        gc.collect()  # rocksdict releases the database lock when the last handle goes
        assert await run_once([b"n=last"]) == [b"119"]


class GatedCommitter:
    """A GroupCommitter whose syncs wait while the gate is closed (a disk that hangs)."""

    def __init__(self, inner: GroupCommitter) -> None:
        self.inner = inner
        self.gate = asyncio.Event()
        self.gate.set()

    async def commit(self) -> None:
        await self.gate.wait()
        await self.inner.commit()


async def test_callback_proposals_expire_when_nothing_applies() -> None:
    store = MemoryRaftLogStore()
    config = NodeConfig(raft=RaftConfig(election_tick=10, heartbeat_tick=1))
    node = Node(1, store, lambda group: KV(), random.Random(1), config)
    node.create_group(GROUP, [1])
    with ThreadPoolExecutor(max_workers=1) as executor:
        committer = GatedCommitter(GroupCommitter(store, executor))
        loop_config = RaftLoopConfig(tick_s=0.01, propose_timeout_s=0.1)
        raft_loop = RaftLoop(node, committer, config=loop_config)
        task = asyncio.create_task(raft_loop.run())
        try:
            await wait_until(lambda: node.status(GROUP).role == Role.LEADER)
            await raft_loop.propose(GROUP, b"a=1")  # the group works
            committer.gate.clear()  # the disk hangs from now on
            outcomes: list[tuple[object, BaseException | None]] = []
            raft_loop.propose_nowait(GROUP, b"a=2", lambda r, e: outcomes.append((r, e)))
            await wait_until(lambda: bool(outcomes))
            [(result, error)] = outcomes
            assert result is None
            assert isinstance(error, TimeoutError)
            committer.gate.set()  # the late apply finds no waiter: nothing is called twice
            assert await raft_loop.propose(GROUP, b"a=3") == b"2"
            assert len(outcomes) == 1
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_callback_proposals_are_batched_and_answered_in_order() -> None:
    async with cluster(3) as members:
        leader = await leader_of(members)
        outcomes: list[tuple[object, BaseException | None]] = []
        for i in range(300):  # queued within one loop iteration: handed over in one batch
            leader.loop.propose_nowait(GROUP, b"q=%d" % i, lambda r, e: outcomes.append((r, e)))
        await wait_until(lambda: len(outcomes) == 300)
        assert outcomes == [(None, None)] + [(b"%d" % i, None) for i in range(299)]
        follower = next(m for m in members if m is not leader)
        with pytest.raises(NotLeader):
            follower.loop.propose_nowait(GROUP, b"q=x", lambda r, e: None)


async def test_queued_proposals_fail_if_leadership_is_lost_before_the_turn() -> None:
    async with cluster(3) as members:
        leader = await leader_of(members)
        await leader.loop.propose(GROUP, b"w=1")
        target = next(m for m in members if m is not leader)
        outcomes: list[tuple[object, BaseException | None]] = []
        leader.loop.propose_nowait(GROUP, b"w=2", lambda r, e: outcomes.append((r, e)))
        leader.node.transfer_leader(GROUP, target.node_id)  # before the next turn runs
        await wait_until(lambda: bool(outcomes))
        [(result, error)] = outcomes
        assert result is None
        assert isinstance(error, NotLeader)


async def test_batch_proposals_are_answered_in_order_with_their_results() -> None:
    async with cluster(3) as members:
        leader = await leader_of(members)
        answers: dict[str, list[tuple[int, int, list[object], BaseException | None]]] = {
            "b": [],
            "c": [],
        }

        def recorder(name: str) -> BatchWaiter:
            def on_done(
                start: int, stop: int, results: Sequence[object], error: BaseException | None
            ) -> None:
                answers[name].append((start, stop, list(results), error))

            return on_done

        def answered(name: str) -> int:
            return sum(stop - start for start, stop, _, _ in answers[name])

        # queued in the same loop iteration: one batch, three spans
        leader.loop.propose_many_nowait(GROUP, [b"b=%d" % i for i in range(200)], recorder("b"))
        leader.loop.propose_nowait(GROUP, b"b=single", lambda r, e: None)
        leader.loop.propose_many_nowait(GROUP, [b"c=%d" % i for i in range(50)], recorder("c"))
        await wait_until(lambda: answered("b") == 200 and answered("c") == 50)
        for name, count in (("b", 200), ("c", 50)):
            calls = answers[name]
            assert all(error is None for *_, error in calls)
            assert [start for start, *_ in calls] == [0] + [stop for _, stop, *_ in calls[:-1]]
            assert calls[-1][1] == count
        # KV.apply returns the key's previous value
        assert [r for *_, rs, _ in answers["b"] for r in rs] == [None] + [
            b"%d" % i for i in range(199)
        ]
        assert [r for *_, rs, _ in answers["c"] for r in rs] == [None] + [
            b"%d" % i for i in range(49)
        ]
        follower = next(m for m in members if m is not leader)
        with pytest.raises(NotLeader):
            follower.loop.propose_many_nowait(GROUP, [b"b=x"], recorder("b"))
