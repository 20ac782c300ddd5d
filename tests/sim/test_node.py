"""The Node layer on its own: one loop turn in etcd's order, group commit, restart."""

import random

from wukongim.node.node import Node, NodeConfig, StateMachine
from wukongim.raft import MessageType, RaftConfig, Role
from wukongim.sim.disk import SimDisk
from wukongim.sim.workload import KVStateMachine


def _machine(group: int) -> StateMachine:
    return KVStateMachine()


def make_node(node_id: int = 1, *, snapshot_entries: int = 0) -> tuple[Node, SimDisk]:
    disk = SimDisk(random.Random(0))
    config = NodeConfig(RaftConfig(election_tick=10, heartbeat_tick=1), snapshot_entries)
    return Node(node_id, disk, _machine, random.Random(node_id), config), disk


def elect_single(node: Node, group: int) -> None:
    for _ in range(30):
        node.tick()
        node.process_ready()
        if node.raw(group).role == Role.LEADER:
            return
    raise AssertionError("no leader")


def put(client: int, seq: int, key: str, value: str) -> bytes:
    return f"{client}|{seq}|put|{key}|{value}".encode()


def test_single_node_group_commits_and_applies_in_one_turn() -> None:
    node, _ = make_node()
    node.create_group(1, [1])
    elect_single(node, 1)
    proposal = node.propose(1, put(1, 1, "a", "x"))
    assert proposal is not None
    out = node.process_ready()
    assert [a.result for a in out.applied if a.matches(proposal)] == ["ok"]
    machine = node.state_machine(1)
    assert isinstance(machine, KVStateMachine)
    assert machine.get("a") == "x"


def test_follower_refuses_proposals() -> None:
    node, _ = make_node(1)
    node.create_group(1, [1, 2, 3])
    node.process_ready()
    assert node.propose(1, put(1, 1, "a", "x")) is None
    assert node.propose(99, b"x") is None  # unknown group


def test_group_commit_one_sync_for_all_groups() -> None:
    node, disk = make_node()
    for group in (1, 2, 3):
        node.create_group(group, [1])
    for _ in range(30):
        node.tick()
        node.process_ready()
    assert all(node.raw(g).role == Role.LEADER for g in (1, 2, 3))
    before = disk.syncs
    for group in (1, 2, 3):
        assert node.propose(group, put(1, group, "k", str(group))) is not None
    out = node.process_ready()
    assert disk.syncs == before + 1
    assert sorted(a.group for a in out.applied if a.data) == [1, 2, 3]


def test_messages_leave_only_after_sync_and_are_batched_per_peer() -> None:
    node, disk = make_node(1)
    node.create_group(1, [1, 2, 3])
    node.create_group(2, [1, 2, 3])
    node.process_ready()
    for _ in range(40):  # campaign: (pre-)vote requests for both groups
        node.tick()
        batch = node.collect_ready()
        if not batch:
            continue
        node.persist(batch)
        disk.sync()
        out = node.after_sync(batch)
        if out.messages:
            assert sorted(out.messages) == [2, 3]
            for dst, msgs in out.messages.items():
                assert all(m.to == dst for m in msgs)
                assert all(m.type in (MessageType.MSG_PRE_VOTE, MessageType.MSG_VOTE) for m in msgs)
            return
    raise AssertionError("no campaign messages")


def test_crash_before_sync_loses_the_turn_and_restart_reloads() -> None:
    node, disk = make_node()
    node.create_group(1, [1])
    elect_single(node, 1)
    assert node.propose(1, put(1, 1, "a", "kept")) is not None
    node.process_ready()
    assert node.propose(1, put(1, 2, "a", "lost")) is not None
    batch = node.collect_ready()
    node.persist(batch)
    disk.crash()  # power loss between persist and sync
    node.restart()
    machine = node.state_machine(1)
    assert isinstance(machine, KVStateMachine)
    for _ in range(30):
        node.tick()
        node.process_ready()
    assert machine.get("a") == "kept"
    assert all(b"lost" not in e.data for e in node.raw(1).log.entries)


def test_snapshots_compact_the_log_and_survive_restart() -> None:
    node, disk = make_node(snapshot_entries=5)
    node.create_group(1, [1])
    elect_single(node, 1)
    for seq in range(1, 21):
        assert node.propose(1, put(1, seq, "k", str(seq))) is not None
        node.process_ready()
    node.process_ready()
    assert node.raw(1).log.offset >= 15
    disk.sync()
    stored = disk.load(1)
    assert stored.snapshot.index >= 15
    node.restart()
    machine = node.state_machine(1)
    assert isinstance(machine, KVStateMachine)
    for _ in range(30):
        node.tick()
        node.process_ready()
    assert machine.get("k") == "20"
    assert machine.sessions[1] == 20


def test_propose_batch_returns_one_handle_per_entry() -> None:
    node, _ = make_node()
    node.create_group(1, [1])
    elect_single(node, 1)
    proposals = node.propose_batch(1, [put(1, 1, "a", "1"), put(1, 2, "b", "2")])
    assert proposals is not None
    assert [p.index for p in proposals] == [proposals[0].index, proposals[0].index + 1]
    out = node.process_ready()
    results = {a.index: a.result for a in out.applied if a.data}
    assert [results[p.index] for p in proposals] == ["ok", "ok"]
    assert node.propose_batch(2, [b"x"]) is None


def test_joined_group_is_recorded_by_the_next_turn_and_survives_restart() -> None:
    node, disk = make_node(4)
    node.create_group(7)  # joining: no members known yet
    assert disk.groups() == []  # nothing written outside a loop turn
    node.process_ready()
    assert disk.groups() == [7]
    node.restart()
    assert node.groups == [7]
    assert node.raw(7).voters == ()
