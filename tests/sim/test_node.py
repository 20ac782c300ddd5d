"""The Node layer on its own: one loop turn in etcd's order, group commit, restart."""

import random

import pytest

from wukongim.node.node import Node, NodeConfig, StateMachine
from wukongim.raft import Message, MessageType, RaftConfig, Role
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


# -- when a turn syncs, and what it applies before the sync ------------------------------------


def make_trio() -> dict[int, tuple[Node, SimDisk]]:
    trio = {n: make_node(n) for n in (1, 2, 3)}
    for node, _ in trio.values():
        node.create_group(1, [1, 2, 3])
    return trio


def exchange(trio: dict[int, tuple[Node, SimDisk]], rounds: int = 1) -> None:
    """`rounds` lock-step turns of every node, delivering each turn's messages to the next."""
    for _ in range(rounds):
        inflight: list[Message] = []
        for node, _ in trio.values():
            out = node.process_ready()
            inflight.extend(m for msgs in out.messages.values() for m in msgs)
        for msg in inflight:
            trio[msg.to][0].step(msg)


def elect_in_trio(trio: dict[int, tuple[Node, SimDisk]]) -> Node:
    leader = trio[1][0]
    leader.campaign(1)
    for _ in range(10):
        exchange(trio)
        if leader.raw(1).role == Role.LEADER:
            exchange(trio, 3)  # the leader's no-op commits everywhere
            return leader
    raise AssertionError("no leader")


def test_a_commit_only_hard_state_is_written_but_needs_no_sync() -> None:
    trio = make_trio()
    leader = elect_in_trio(trio)
    follower, disk = trio[2]
    assert leader.propose(1, put(1, 1, "a", "x")) is not None
    exchange(trio, 2)  # leader appends and sends; followers append and ack
    commit_before = follower.raw(1).log.committed
    exchange(trio)  # the leader commits and tells the followers
    batch = follower.collect_ready()
    assert batch.readies
    [(_, rd)] = batch.readies
    assert rd.hard_state is not None
    assert rd.hard_state.commit > commit_before
    assert not rd.entries
    assert not batch.needs_sync  # etcd's MustSync: term and vote unchanged, nothing appended
    syncs = disk.syncs
    follower.persist(batch)
    out = follower.after_sync(batch)
    assert disk.syncs == syncs
    assert [a.data for a in out.applied] == [put(1, 1, "a", "x")]  # durable: applied at once
    # The write is buffered: a crash may lose it (commit is re-learned), a later sync keeps it.
    assert disk.has_pending
    disk.sync()
    assert disk.load(1).hard_state.commit == rd.hard_state.commit


def test_a_lost_commit_index_is_relearned_after_restart() -> None:
    trio = make_trio()
    leader = elect_in_trio(trio)
    follower, disk = trio[3]
    assert leader.propose(1, put(1, 1, "a", "x")) is not None
    exchange(trio, 4)
    machine = follower.state_machine(1)
    assert isinstance(machine, KVStateMachine)
    assert machine.get("a") == "x"
    durable_commit = disk.load(1).hard_state.commit
    disk.crash()  # the commit-only hard state was never synced
    follower.restart()
    assert follower.raw(1).log.committed == durable_commit < leader.raw(1).log.committed
    for _ in range(5):
        for node, _ in trio.values():
            node.tick()
        exchange(trio)
    machine = follower.state_machine(1)
    assert isinstance(machine, KVStateMachine)
    assert machine.get("a") == "x"


def test_a_term_or_vote_change_needs_a_sync() -> None:
    node, _ = make_node(1)
    node.create_group(1, [1, 2, 3])
    node.process_ready()
    node.campaign(1)  # pre-vote first: no term change yet
    batch = node.collect_ready()
    node.persist(batch)
    node.after_sync(batch)
    node.step(Message(MessageType.MSG_PRE_VOTE_RESP, 1, 2, 1, term=2))
    batch = node.collect_ready()  # now a candidate: term 2, vote for itself
    [(_, rd)] = batch.readies
    assert rd.hard_state is not None
    assert (rd.hard_state.term, rd.hard_state.vote) == (2, 1)
    assert batch.needs_sync


def test_leader_answers_durable_commits_before_syncing_new_entries() -> None:
    trio = make_trio()
    leader = elect_in_trio(trio)
    first = leader.propose(1, put(1, 1, "a", "1"))
    assert first is not None
    exchange(trio, 2)  # appended (and synced) everywhere; the acks are queued at the leader
    second = leader.propose(1, put(1, 2, "b", "2"))  # arrives while the acks are processed
    assert second is not None
    batch = leader.collect_ready()
    [(_, rd)] = batch.readies
    assert [e.index for e in rd.entries] == [second.index]
    assert [e.index for e in rd.committed_entries] == [first.index]
    assert batch.needs_sync
    leader.persist(batch)
    early = leader.apply_durable(batch)
    assert [(a.index, a.result) for a in early.applied if a.matches(first)] == [(first.index, "ok")]
    assert not early.messages  # nothing leaves before the sync
    trio[1][1].sync()
    late = leader.after_sync(batch)
    assert late.applied == []  # each entry is applied exactly once
    assert late.messages


def test_single_voter_applies_its_own_append_only_after_the_sync() -> None:
    node, disk = make_node()
    node.create_group(1, [1])
    elect_single(node, 1)
    proposal = node.propose(1, put(1, 1, "a", "x"))
    assert proposal is not None
    batch = node.collect_ready()
    [(_, rd)] = batch.readies
    assert [e.index for e in rd.committed_entries] == [proposal.index]  # committed at append
    node.persist(batch)
    early = node.apply_durable(batch)
    assert early.applied == []  # not on our disk yet: a crash now would lose it
    disk.sync()
    out = node.after_sync(batch)
    assert [a.result for a in out.applied if a.matches(proposal)] == ["ok"]


def test_leader_replicates_before_its_own_sync_and_only_then() -> None:
    trio = make_trio()
    leader = elect_in_trio(trio)
    proposal = leader.propose(1, put(1, 1, "a", "x"))
    assert proposal is not None
    batch = leader.collect_ready()
    assert batch.needs_sync
    leader.persist(batch)
    early = leader.messages_before_sync(batch)
    assert sorted(early) == [2, 3]
    for msgs in early.values():
        assert [m.type for m in msgs] == [MessageType.MSG_APP]
        assert [e.index for m in msgs for e in m.entries] == [proposal.index]
    with pytest.raises(AssertionError, match="step"):  # an ack must wait for our own sync
        leader.step(Message(MessageType.MSG_APP_RESP, 1, 2, 1, term=leader.raw(1).term))
    trio[1][1].sync()
    assert leader.after_sync(batch).messages == {}  # each message leaves once


def test_followers_acks_and_votes_wait_for_the_sync() -> None:
    trio = make_trio()
    leader = elect_in_trio(trio)
    assert leader.propose(1, put(1, 1, "a", "x")) is not None
    exchange(trio)  # the follower receives the MsgApp
    follower = trio[2][0]
    batch = follower.collect_ready()
    follower.persist(batch)
    assert follower.messages_before_sync(batch) == {}  # its MsgAppResp claims durability
    trio[2][1].sync()
    out = follower.after_sync(batch)
    assert [m.type for m in out.messages[1]] == [MessageType.MSG_APP_RESP]
    candidate, _ = make_node(1)
    candidate.create_group(1, [1, 2, 3])
    candidate.process_ready()
    candidate.campaign(1)
    candidate.process_ready()
    candidate.step(Message(MessageType.MSG_PRE_VOTE_RESP, 1, 2, 1, term=2))
    batch = candidate.collect_ready()
    candidate.persist(batch)
    assert candidate.messages_before_sync(batch) == {}  # MsgVote with a new term and vote


def test_single_voter_leader_keeps_messages_to_learners_until_the_sync() -> None:
    pair = {n: make_node(n) for n in (1, 2)}
    for node, _ in pair.values():
        node.create_group(1, [1], learners=[2])
    leader = pair[1][0]
    elect_single(leader, 1)
    assert leader.propose(1, put(1, 1, "a", "0")) is not None
    for _ in range(6):  # heartbeats find the learner; it catches up
        leader.tick()
        exchange(pair, 2)
    assert pair[2][0].raw(1).log.last_index() == leader.raw(1).log.last_index()
    assert leader.propose(1, put(1, 2, "a", "x")) is not None
    batch = leader.collect_ready()
    [(_, rd)] = batch.readies
    assert any(m.type == MessageType.MSG_APP for m in rd.messages)
    leader.persist(batch)
    # Its commit index counts its own unsynced append: telling a learner now could make the
    # learner apply an entry the only voter may still lose.
    assert leader.messages_before_sync(batch) == {}
