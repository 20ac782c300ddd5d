"""The Ready contract: what comes out when, and what advance() accepts."""

from __future__ import annotations

import random

import pytest

from tests.unit.raft.harness import GROUP, Network
from wukongim.raft import (
    ConfState,
    HardState,
    MessageType,
    RaftConfig,
    RawNode,
    RestoreState,
    Role,
    SoftState,
)

MT = MessageType


def new_node(voters=(1, 2, 3)) -> RawNode:
    return RawNode(
        1,
        GROUP,
        RaftConfig(pre_vote=False),
        random.Random(1),
        RestoreState(conf_state=ConfState(voters)),
    )


def test_bootstrap_ready_persists_and_applies_the_initial_members():
    node = new_node()
    rd = node.ready()
    assert rd.hard_state == HardState(1, 0, 3)
    assert [e.index for e in rd.entries] == [1, 2, 3]
    assert [e.index for e in rd.committed_entries] == [1, 2, 3]
    node.advance(rd)
    assert not node.has_ready()


def test_vote_request_comes_with_the_hard_state_that_records_our_vote():
    node = new_node()
    node.advance(node.ready())
    node.campaign()
    rd = node.ready()
    assert rd.hard_state == HardState(2, 1, 3)
    assert rd.soft_state == SoftState(0, Role.CANDIDATE)
    assert {m.type for m in rd.messages} == {MT.MSG_VOTE}
    node.advance(rd)
    assert not node.has_ready()


def test_unchanged_hard_and_soft_state_are_none():
    net = Network([1, 2, 3])
    net.elect(1)
    net.nodes[1].tick()
    rd = net.nodes[1].ready()
    assert rd.hard_state is None
    assert rd.soft_state is None
    assert {m.type for m in rd.messages} == {MT.MSG_HEARTBEAT}
    net.nodes[1].advance(rd)


def test_ready_twice_without_advance_is_a_bug():
    node = new_node()
    node.ready()
    with pytest.raises(AssertionError):
        node.ready()


def test_steps_between_ready_and_advance_come_out_in_the_next_ready():
    net = Network([1, 2, 3])
    net.elect(1)
    leader = net.nodes[1]
    leader.propose(b"a")
    rd1 = leader.ready()
    leader.propose(b"b")  # while the caller persists rd1
    leader.advance(rd1)
    rd2 = leader.ready()
    assert [e.data for e in rd1.entries] == [b"a"]
    assert [e.data for e in rd2.entries] == [b"b"]
    leader.advance(rd2)


def test_status_describes_the_node():
    net = Network([1, 2, 3])
    net.elect(1)
    st = net.nodes[1].status()
    assert st.role == Role.LEADER
    assert sorted(st.progress) == [1, 2, 3]
    assert st.progress[2].state == "replicate"
    assert "leader" in st.describe()
