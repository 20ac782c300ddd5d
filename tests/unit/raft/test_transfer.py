"""Leadership transfer (thesis §3.10): catch the target up, MsgTimeoutNow, abort on timeout."""

from __future__ import annotations

import pytest

from tests.unit.raft.harness import Network
from wukongim.raft import MessageType, NotLeader, ProposalDropped, Role

MT = MessageType


def test_transfer_to_an_up_to_date_follower_sends_timeout_now_at_once():
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[1].transfer_leader(2)
    rd = net.nodes[1].ready()
    assert [(m.type, m.to) for m in rd.messages] == [(MT.MSG_TIMEOUT_NOW, 2)]
    net.nodes[1].advance(rd)
    for m in rd.messages:
        net.send(m)
    net.stabilize()
    assert net.leader() == 2
    assert net.nodes[1].role == Role.FOLLOWER
    assert net.nodes[1].leader_id == 2


def test_transfer_overrides_leader_lease_and_pre_vote():
    net = Network([1, 2, 3])  # pre-vote and check-quorum on
    net.elect(1)
    term = net.nodes[1].term
    net.nodes[1].transfer_leader(3)
    net.stabilize()
    assert net.leader() == 3
    assert net.nodes[3].term == term + 1


def test_transfer_catches_up_a_lagging_target_first():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"x%d" % i)
    net.heal()
    net.nodes[1].transfer_leader(3)
    with pytest.raises(NotLeader) as info:
        net.nodes[1].propose(b"during")
    assert info.value.leader == 3
    net.stabilize()
    assert net.leader() == 3
    net.propose(3, b"after")
    assert net.data(3) == [*(b"x%d" % i for i in range(5)), b"after"]


def test_transfer_aborts_after_an_election_timeout():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.nodes[1].transfer_leader(3)
    net.stabilize()
    with pytest.raises(NotLeader):
        net.nodes[1].propose(b"x")
    for _ in range(net.config.election_tick):
        net.tick_all()
    assert net.leader() == 1
    assert net.nodes[1].status().lead_transferee == 0
    net.propose(1, b"x")
    assert net.data(1) == [b"x"]


def test_transfer_request_on_a_follower_is_forwarded_to_the_leader():
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[2].transfer_leader(2)
    net.stabilize()
    assert net.leader() == 2


def test_transfer_to_a_learner_or_stranger_is_refused():
    net = Network([1, 2], learners=[3])
    net.elect(1)
    for target in (3, 9):
        with pytest.raises(ProposalDropped):
            net.nodes[1].transfer_leader(target)
    net.nodes[1].propose(b"fine")
