"""Log replication (Raft paper §5.3, §5.4.2): commit rule, log repair, flow control."""

from __future__ import annotations

import dataclasses
import random

from tests.unit.raft.harness import GROUP, Network
from wukongim.raft import (
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    RawNode,
    RestoreState,
    Role,
)

MT = MessageType
NO_PRE_VOTE = RaftConfig(pre_vote=False, check_quorum=False)


def log_of(*terms: int) -> tuple[Entry, ...]:
    return tuple(Entry(i + 1, t, data=b"e%d" % (i + 1)) for i, t in enumerate(terms))


def drain(node: RawNode) -> list[Message]:
    msgs: list[Message] = []
    while node.has_ready():
        rd = node.ready()
        msgs.extend(rd.messages)
        node.advance(rd)
    return msgs


def test_leader_commits_entry_once_replicated_on_majority():
    """§5.3: an entry is committed once the leader replicated it on a majority."""
    for size, reachable in [(3, 1), (5, 2)]:
        net = Network(range(1, size + 1))
        net.elect(1)
        net.partition([1, *range(2, 2 + reachable)], range(2 + reachable, size + 1))
        index = net.propose(1, b"x")
        assert net.nodes[1].log.committed == index
        assert net.data(1) == [b"x"]


def test_leader_does_not_commit_without_majority():
    net = Network(range(1, 6))
    net.elect(1)
    net.partition([1, 2], [3, 4, 5])
    index = net.propose(1, b"x")
    assert net.nodes[1].log.committed < index
    assert net.data(1) == []


def test_followers_apply_committed_entries_in_log_order():
    net = Network([1, 2, 3])
    net.elect(1)
    for i in range(20):
        net.nodes[1].propose(b"v%d" % i)
        if i % 3 == 0:
            net.stabilize()
    net.stabilize()
    net.tick_all()  # heartbeat carries the final commit index
    want = [b"v%d" % i for i in range(20)]
    for nid in (1, 2, 3):
        assert net.data(nid) == want


def test_leader_only_commits_entries_of_its_own_term_by_counting():
    """§5.4.2 / Figure 8: an entry from an earlier term is not committed by counting replicas;
    it commits only together with an entry of the current term."""
    node = RawNode(
        1,
        GROUP,
        NO_PRE_VOTE,
        random.Random(1),
        RestoreState(
            hard_state=HardState(3, 0, 1),
            entries=log_of(1, 2),
            conf_state=ConfState((1, 2, 3, 4, 5)),
        ),
    )
    node.campaign()
    for voter in (2, 3):
        node.step(Message(MT.MSG_VOTE_RESP, GROUP, voter, 1, node.term))
    assert node.role == Role.LEADER
    assert node.term == 4
    drain(node)
    # majority (1, 2, 3) holds index 2 of term 2: still not committed
    for voter in (2, 3):
        node.step(Message(MT.MSG_APP_RESP, GROUP, voter, 1, 4, index=2))
    assert node.log.committed == 1
    # once the term-4 no-op at index 3 is on a majority, 2 and 3 commit together
    for voter in (2, 3):
        node.step(Message(MT.MSG_APP_RESP, GROUP, voter, 1, 4, index=3))
    assert node.log.committed == 3


def test_figure8_entry_of_old_term_on_a_majority_is_not_committed_and_may_be_overwritten():
    """Figure 8 on a 5-node network, step by step:
    (a) S1 leads term 2 and puts X at index i on S1, S2 only;
    (b) S1 crashes; S5 wins term 3 (votes S3, S4) and writes its own entry at i, alone;
    (c) S5 crashes; S1 restarts, wins term 4 and copies X to S3: X is on a majority, but it is of
        term 2, so S1 must not commit it (its term-4 entry has not reached a majority);
    (d) S1 crashes; S5 restarts and wins term 5 (its last term 3 beats the others' 2), then
        replaces X everywhere. Nobody ever applied X, so nothing committed was lost."""
    net = Network(
        range(1, 6), config=RaftConfig(pre_vote=False, check_quorum=False, max_size_per_msg=1)
    )
    net.elect(1)
    net.partition([1, 2], [3, 4, 5])
    i = net.propose(1, b"X")
    assert net.nodes[2].log.term(i) == 2
    # (b)
    net.crash(1)
    net.msg_filter = lambda m: None if (m.frm == 5 and m.type == MT.MSG_APP) else m
    net.elect(5)
    assert net.nodes[5].log.term(i) == 3
    assert net.nodes[3].log.last_index() == i - 1
    # (c)
    net.crash(5)
    net.heal()
    net.restart(1)
    # S1's term-4 entries never reach anyone
    net.msg_filter = lambda m: dataclasses.replace(
        m, entries=tuple(e for e in m.entries if e.term != 4)
    )
    for _ in range(3):
        net.nodes[1].campaign()
        net.stabilize()
    assert net.nodes[1].role == Role.LEADER
    assert net.nodes[1].term == 4
    assert sum(net.nodes[n].log.term(i) == 2 for n in (1, 2, 3, 4)) >= 3  # X on a majority
    assert net.nodes[1].log.committed < i  # ... but not committed
    assert net.data(1) == []
    # (d)
    net.crash(1)
    net.msg_filter = None
    net.restart(5)
    for _ in range(3):
        net.nodes[5].campaign()
        net.stabilize()
    assert net.nodes[5].role == Role.LEADER
    net.tick_all(2)
    for nid in (2, 3, 4, 5):
        assert net.nodes[nid].log.term(i) == 3, nid
        assert net.nodes[nid].log.committed >= i
        assert b"X" not in net.data(nid)
    net.check_logs_agree()


FIGURE7_LEADER = (1, 1, 1, 4, 4, 5, 5, 6, 6, 6)
FIGURE7_FOLLOWERS = {
    "a": (1, 1, 1, 4, 4, 5, 5, 6, 6),
    "b": (1, 1, 1, 4),
    "c": (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6),
    "d": (1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7),
    "e": (1, 1, 1, 4, 4, 4, 4),
    "f": (1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3),
}


def _figure7_network(follower_terms: tuple[int, ...], config: RaftConfig = NO_PRE_VOTE) -> Network:
    restore = {
        1: RestoreState(hard_state=HardState(7, 0, 0), entries=log_of(*FIGURE7_LEADER)),
        2: RestoreState(hard_state=HardState(7, 0, 0), entries=log_of(*follower_terms)),
    }
    net = Network([1, 2, 3], config=config, restore=restore)
    net.isolate(3)
    node = net.nodes[1]
    node.campaign()
    node.step(Message(MT.MSG_VOTE_RESP, GROUP, 3, 1, node.term))  # node 3 voted for 1
    assert node.role == Role.LEADER
    return net


def test_leader_brings_every_figure7_follower_log_in_line_with_its_own():
    """§5.3: the leader forces followers' logs to duplicate its own (Figure 7 (a)-(f))."""
    for name, terms in FIGURE7_FOLLOWERS.items():
        net = _figure7_network(terms)
        net.stabilize()
        leader_log = [(e.index, e.term) for e in net.nodes[1].log.entries]
        follower_log = [(e.index, e.term) for e in net.nodes[2].log.entries]
        assert follower_log == leader_log, name
        assert net.stores[2].entries == net.stores[1].entries, name
        assert net.nodes[1].log.committed == len(FIGURE7_LEADER) + 1, name


def test_conflicting_entries_are_truncated_in_the_persisted_log():
    net = _figure7_network(FIGURE7_FOLLOWERS["f"])
    net.stabilize()
    store = net.stores[2]
    assert [e.term for e in store.entries] == [*FIGURE7_LEADER, 8]


def test_rejection_hints_skip_a_term_per_round_trip():
    """Fast backtracking: a follower's reject carries (index, term) hints, so repairing
    follower (f) takes a few round trips, not one per divergent entry."""
    net = _figure7_network(FIGURE7_FOLLOWERS["f"])
    rejects = 0

    def count(m: Message) -> Message:
        nonlocal rejects
        rejects += m.type == MT.MSG_APP_RESP and m.reject
        return m

    net.msg_filter = count
    net.stabilize()
    assert 1 <= rejects <= 3


def test_follower_rejects_append_that_does_not_match_its_log():
    """§5.3 consistency check: reject MsgApp whose (index, log_term) is not in our log."""
    restore = RestoreState(hard_state=HardState(2, 0, 0), entries=log_of(1, 2, 2))
    node = RawNode(2, GROUP, NO_PRE_VOTE, random.Random(1), restore)
    node.step(Message(MT.MSG_APP, GROUP, 1, 2, 3, log_term=3, index=3, entries=(Entry(4, 3),)))
    (resp,) = drain(node)
    assert resp.reject
    assert (resp.reject_hint, resp.log_term) == (3, 2)
    node.step(Message(MT.MSG_APP, GROUP, 1, 2, 3, log_term=2, index=3, entries=(Entry(4, 3),)))
    (resp,) = drain(node)
    assert (resp.reject, resp.index) == (False, 4)


def test_follower_commit_never_exceeds_last_new_entry():
    restore = RestoreState(hard_state=HardState(2, 0, 0), entries=log_of(1, 1, 1, 1, 1))
    node = RawNode(2, GROUP, NO_PRE_VOTE, random.Random(1), restore)
    # matches at 2 and carries only entry 3: commit min(leader commit 10, 3)
    node.step(
        Message(MT.MSG_APP, GROUP, 1, 2, 2, log_term=1, index=2, entries=(Entry(3, 2),), commit=10)
    )
    assert node.log.committed == 3
    assert node.log.last_index() == 3  # the conflicting suffix 3..5 was replaced


def test_proposals_between_readys_go_out_as_one_msgapp_per_follower():
    net = Network([1, 2, 3])
    net.elect(1)
    leader = net.nodes[1]
    for i in range(100):
        leader.propose(b"p%d" % i)
    rd = leader.ready()
    apps = [m for m in rd.messages if m.type == MT.MSG_APP]
    assert sorted(m.to for m in apps) == [2, 3]
    assert all(len(m.entries) == 100 for m in apps)
    assert len(rd.entries) == 100
    leader.advance(rd)


def test_msgapp_size_is_bounded_by_max_size_per_msg():
    net = Network([1, 2], config=RaftConfig(max_size_per_msg=10))
    net.elect(1)
    sizes = []

    def record(m: Message) -> Message:
        if m.type == MT.MSG_APP and m.entries:
            sizes.append(len(m.entries))
        return m

    net.msg_filter = record
    net.nodes[1].propose_batch([b"12345678"] * 4)
    net.stabilize()
    assert sizes
    assert max(sizes) <= 2


def test_inflight_window_bounds_unacknowledged_msgapps():
    net = Network([1, 2], config=RaftConfig(max_inflight_msgs=2))
    net.elect(1)
    net.msg_filter = lambda m: None if m.type == MT.MSG_APP_RESP else m  # acks are lost
    sent = []
    leader = net.nodes[1]
    for i in range(6):
        leader.propose(b"x%d" % i)
        rd = leader.ready()
        sent += [m for m in rd.messages if m.type == MT.MSG_APP and m.entries]
        leader.advance(rd)
    assert len(sent) == 2
    # a heartbeat response frees a slot, and acks resume the pipeline
    net.msg_filter = None
    net.tick_all(2)
    assert net.nodes[2].log.last_index() == leader.log.last_index()


def test_lost_messages_are_repaired_by_heartbeats():
    net = Network([1, 2, 3], seed=3)
    net.elect(1)
    net.drop_rate = 0.3
    for i in range(30):
        net.nodes[1].propose(b"m%d" % i) if net.nodes[1].role == Role.LEADER else None
        net.tick_all()
    net.drop_rate = 0.0
    net.tick_all(30)
    leader = net.leader()
    assert all(net.data(n) == net.data(leader) for n in net.nodes)
    assert len(net.data(leader)) > 0


def test_messages_survive_the_binary_codec():
    net = Network([1, 2, 3], codec=True)
    net.elect(1)
    for i in range(10):
        net.propose(1, b"c%d" % i)
    net.tick_all()
    assert net.data(3) == [b"c%d" % i for i in range(10)]
