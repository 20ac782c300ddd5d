"""Membership changes: single-server changes, one at a time, in effect once applied; learners."""

from __future__ import annotations

import pytest

from tests.unit.raft.harness import Network
from wukongim.raft import (
    ConfChange,
    ConfChangeType,
    ConfState,
    EntryKind,
    MessageType,
    NotLeader,
    ProposalDropped,
    Role,
)
from wukongim.raft.confchange import apply_change

MT = MessageType
ADD_VOTER, ADD_LEARNER, REMOVE = (
    ConfChangeType.ADD_VOTER,
    ConfChangeType.ADD_LEARNER,
    ConfChangeType.REMOVE_NODE,
)


def change(net: Network, leader: int, kind: ConfChangeType, nid: int) -> None:
    net.nodes[leader].propose_conf_change(ConfChange(kind, nid))
    net.stabilize()
    net.tick_all(2)


def test_bootstrap_entries_record_the_initial_members():
    net = Network([1, 2, 3], learners=[4])
    net.stabilize()
    for nid in (1, 2, 3, 4):
        applied = net.stores[nid].applied_entries
        assert [e.kind for e in applied] == [EntryKind.CONF_CHANGE] * 4
        assert net.nodes[nid].conf_state == ConfState((1, 2, 3), (4,))


def test_learner_receives_entries_but_does_not_count_for_commit():
    net = Network([1, 2, 3], learners=[4])
    net.elect(1)
    net.partition([1, 4], [2, 3])
    index = net.propose(1, b"x")
    assert net.nodes[4].log.last_index() == index  # replicated to the learner
    assert net.nodes[1].log.committed < index  # ... but a learner is not a quorum
    net.heal()
    net.tick_all(2)
    assert net.data(4) == [b"x"]


def test_learner_does_not_vote():
    net = Network([1, 2], learners=[3])
    net.nodes[1].campaign()
    rd = net.nodes[1].ready()
    assert sorted(m.to for m in rd.messages if m.type in (MT.MSG_PRE_VOTE, MT.MSG_VOTE)) == [2]
    net.nodes[1].advance(rd)


def test_add_voter_joins_from_empty_log_and_learns_members_from_the_log():
    net = Network([1, 2, 3], extra=[4])
    net.elect(1)
    net.propose(1, b"before")
    change(net, 1, ADD_VOTER, 4)
    assert net.nodes[1].conf_state.voters == (1, 2, 3, 4)
    assert net.nodes[4].conf_state.voters == (1, 2, 3, 4)
    assert net.data(4) == [b"before"]
    # 4 now counts: with 2 and 3 down, 1 and 4 are not a majority of 4
    net.partition([1, 4], [2, 3])
    index = net.propose(1, b"after")
    assert net.nodes[1].log.committed < index


def test_add_learner_then_promote_to_voter():
    net = Network([1, 2, 3], extra=[4])
    net.elect(1)
    change(net, 1, ADD_LEARNER, 4)
    assert net.nodes[1].conf_state == ConfState((1, 2, 3), (4,))
    assert not net.nodes[4].promotable()
    change(net, 1, ADD_VOTER, 4)
    assert net.nodes[1].conf_state == ConfState((1, 2, 3, 4), ())
    assert net.nodes[4].promotable()
    net.partition([1, 2], [3, 4])
    net.nodes[4].campaign()
    net.stabilize()
    net.heal()


def test_remove_follower_shrinks_the_quorum():
    net = Network([1, 2, 3])
    net.elect(1)
    change(net, 1, REMOVE, 3)
    assert net.nodes[1].conf_state.voters == (1, 2)
    net.crash(3)
    assert net.propose(1, b"x") == net.nodes[1].log.committed
    # a removed node never campaigns
    for _ in range(50):
        net.nodes[3].tick()
    assert net.nodes[3].role == Role.FOLLOWER


def test_removed_leader_hands_over_and_steps_down():
    net = Network([1, 2, 3])
    net.elect(1)
    net.propose(1, b"x")
    change(net, 1, REMOVE, 1)
    assert net.nodes[1].role == Role.FOLLOWER
    for _ in range(30):
        net.tick_all()
        if net.leader() in (2, 3):
            break
    leader = net.leader()
    assert leader in (2, 3)
    assert net.nodes[leader].conf_state.voters == (2, 3)
    net.propose(leader, b"y")
    assert net.data(leader) == [b"x", b"y"]


def test_only_one_conf_change_may_be_pending():
    net = Network([1, 2, 3], extra=[4, 5])
    net.elect(1)
    net.partition([1], [2, 3, 4, 5])  # the first change cannot commit
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 4))
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 5))
    net.heal()
    net.tick_all(2)
    net.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 5))


def test_new_leader_may_not_change_conf_before_applying_earlier_entries():
    """A new leader cannot tell whether an unapplied entry of an earlier term is a conf change,
    so it waits until it applied everything it had when elected."""
    net = Network([1], extra=[2])
    node = net.nodes[1]
    node.campaign()
    assert node.role == Role.LEADER
    with pytest.raises(ProposalDropped):
        node.propose_conf_change(ConfChange(ADD_LEARNER, 2))
    net.stabilize()
    node.propose_conf_change(ConfChange(ADD_LEARNER, 2))
    net.stabilize()
    assert net.nodes[2].conf_state == ConfState((1,), (2,))


def test_followers_refuse_proposals_with_a_leader_hint():
    net = Network([1, 2, 3])
    net.elect(1)
    with pytest.raises(NotLeader) as info:
        net.nodes[2].propose_conf_change(ConfChange(ADD_LEARNER, 9))
    assert info.value.leader == 1


def test_unsafe_changes_are_refused():
    net = Network([1])
    net.elect(1)
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose_conf_change(ConfChange(REMOVE, 1))
    net2 = Network([1, 2])
    net2.elect(1)
    with pytest.raises(ProposalDropped):
        net2.nodes[1].propose_conf_change(ConfChange(ADD_LEARNER, 2))


def test_conf_change_survives_restart():
    net = Network([1, 2, 3], extra=[4])
    net.elect(1)
    change(net, 1, ADD_VOTER, 4)
    change(net, 1, REMOVE, 2)
    net.crash(3)
    net.restart(3)
    assert net.nodes[3].conf_state.voters == (1, 3, 4)


def test_apply_change_rules():
    conf = ConfState((1, 2), (3,))
    assert apply_change(conf, ConfChange(ADD_VOTER, 1)) == conf  # idempotent (bootstrap replay)
    assert apply_change(conf, ConfChange(ADD_VOTER, 3)) == ConfState((1, 2, 3), ())
    assert apply_change(conf, ConfChange(ADD_LEARNER, 4)) == ConfState((1, 2), (3, 4))
    assert apply_change(conf, ConfChange(ADD_LEARNER, 2)) is None  # no direct demotion
    assert apply_change(conf, ConfChange(REMOVE, 3)) == ConfState((1, 2), ())
    assert apply_change(conf, ConfChange(REMOVE, 9)) == conf
