"""Restart from durable state: the core is rebuilt from RestoreState alone."""

from __future__ import annotations

import random

from tests.unit.raft.harness import GROUP, Network
from wukongim.raft import RaftConfig, RawNode, RestoreState, Role


def test_single_node_restarts_and_keeps_term_vote_and_log():
    net = Network([1])
    net.elect(1)
    net.propose(1, b"a")
    term = net.nodes[1].term
    net.crash(1)
    net.restart(1)
    node = net.nodes[1]
    assert (node.term, node.vote) == (term, 1)
    assert node.log.committed == node.log.last_index()
    for _ in range(3 * node.config.election_tick):
        node.tick()
    net.stabilize()
    assert node.role == Role.LEADER
    assert node.term == term + 1
    net.propose(1, b"b")
    assert net.data(1) == [b"a", b"b"]


def test_restart_hands_out_committed_entries_after_applied_again():
    net = Network([1])
    net.elect(1)
    for i in range(3):
        net.propose(1, b"v%d" % i)
    store = net.stores[1]
    rs = store.restore_state(net.conf)
    node = RawNode(
        1,
        GROUP,
        RaftConfig(),
        random.Random(1),
        RestoreState(hard_state=rs.hard_state, entries=rs.entries, applied=rs.applied - 2),
    )
    rd = node.ready()
    assert [e.data for e in rd.committed_entries] == [b"v1", b"v2"]
    assert rd.entries == ()  # nothing new to persist
    node.advance(rd)


def test_follower_crash_and_restart_catches_up():
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"a")
    net.crash(3)
    net.propose(1, b"b")
    net.restart(3)
    net.tick_all(2)
    assert net.data(3) == [b"a", b"b"]


def test_voted_for_survives_restart():
    """§5.2 / Figure 2: currentTerm and votedFor are persisted before answering."""
    net = Network([1, 2, 3], config=RaftConfig(pre_vote=False, check_quorum=False))
    net.isolate(3)
    net.nodes[1].campaign()
    net.stabilize()
    assert net.nodes[2].vote == 1
    net.crash(2)
    net.restart(2)
    assert net.nodes[2].vote == 1
    assert net.nodes[2].term == net.nodes[1].term
