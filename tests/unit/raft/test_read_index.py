"""Linearizable reads via read-index (thesis §6.4)."""

from __future__ import annotations

import pytest

from tests.unit.raft.harness import Network
from wukongim.raft import MessageType, NotLeader, RaftConfig, ReadState

MT = MessageType


def test_single_node_read_index_is_immediate():
    net = Network([1])
    net.elect(1)
    net.propose(1, b"x")
    net.nodes[1].read_index(b"r1")
    net.stabilize()
    assert net.stores[1].read_states == [ReadState(net.nodes[1].log.committed, b"r1")]


def test_leader_confirms_leadership_with_a_heartbeat_round():
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    net.nodes[1].read_index(b"r1")
    rd = net.nodes[1].ready()
    assert sorted((m.type, m.to) for m in rd.messages) == [
        (MT.MSG_HEARTBEAT, 2),
        (MT.MSG_HEARTBEAT, 3),
    ]
    assert {m.context for m in rd.messages} == {b"r1"}
    assert not rd.read_states
    net.nodes[1].advance(rd)
    for m in rd.messages:
        net.send(m)
    net.stabilize()
    assert net.stores[1].read_states == [ReadState(net.nodes[1].log.committed, b"r1")]


def test_partitioned_leader_cannot_serve_a_read():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    net.nodes[1].read_index(b"r1")
    net.stabilize()
    assert net.stores[1].read_states == []


def test_one_ack_confirms_all_earlier_reads():
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[1].read_index(b"a")
    net.nodes[1].read_index(b"b")
    net.stabilize()
    assert [r.context for r in net.stores[1].read_states] == [b"a", b"b"]


def test_new_leader_answers_reads_only_after_committing_in_its_term():
    """A new leader's commit index may lag; it serves reads only once its own no-op commits."""
    net = Network([1, 2, 3], config=RaftConfig(pre_vote=False, check_quorum=False))
    net.elect(1)
    net.propose(1, b"x")
    contexts = []

    def drop_appends(m):
        contexts.append(m.context)
        return None if m.type == MT.MSG_APP else m

    net.msg_filter = drop_appends
    net.elect(2)
    node = net.nodes[2]
    assert node.log.term(node.log.committed) != node.term
    node.read_index(b"r")
    net.stabilize()
    assert b"r" not in contexts  # no heartbeat round yet: it would prove nothing
    assert net.stores[2].read_states == []
    net.msg_filter = None
    net.tick_all(2)
    assert [r.context for r in net.stores[2].read_states] == [b"r"]
    assert net.stores[2].read_states[0].index == node.log.committed


def test_follower_forwards_read_to_leader_and_gets_the_read_index():
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    net.nodes[3].read_index(b"f")
    net.stabilize()
    assert net.stores[3].read_states == [ReadState(net.nodes[1].log.committed, b"f")]
    assert net.stores[1].read_states == []


def test_read_index_without_known_leader_raises():
    net = Network([1, 2, 3])
    with pytest.raises(NotLeader):
        net.nodes[2].read_index(b"x")
