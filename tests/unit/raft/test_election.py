"""Leader election (Raft paper §5.2, §5.4.1), pre-vote and check-quorum (thesis §9.6)."""

from __future__ import annotations

import random

import pytest

from tests.unit.raft.harness import GROUP, Network, msg_types
from wukongim.raft import (
    CAMPAIGN_TRANSFER,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    HardState,
    Message,
    MessageType,
    NotLeader,
    RaftConfig,
    RawNode,
    RestoreState,
    Role,
)

MT = MessageType
NO_PRE_VOTE = RaftConfig(pre_vote=False, check_quorum=False)


def new_node(nid=1, voters=(1, 2, 3), config=NO_PRE_VOTE, seed=1, **restore) -> RawNode:
    rs = RestoreState(conf_state=ConfState(voters), **restore)
    return RawNode(nid, GROUP, config, random.Random(seed), rs)


def drain(node: RawNode) -> list[Message]:
    msgs: list[Message] = []
    while node.has_ready():
        rd = node.ready()
        msgs.extend(rd.messages)
        node.advance(rd)
    return msgs


def test_single_node_becomes_leader_after_election_timeout():
    node = new_node(voters=(1,), config=RaftConfig())
    for _ in range(2 * node.config.election_tick):
        node.tick()
        if node.role == Role.LEADER:
            break
    assert node.role == Role.LEADER
    assert node.leader_id == 1


def test_single_node_commits_a_proposal_on_its_own_persistence():
    net = Network([1])
    net.elect(1)
    net.nodes[1].propose(b"x")
    rd = net.nodes[1].ready()
    # the entry to persist and the entry to apply come out in the same Ready
    assert [e.data for e in rd.entries] == [b"x"]
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert not rd.messages
    net.nodes[1].advance(rd)


def test_follower_starts_election_after_randomized_timeout():
    """§5.2: a follower that hears nothing for an election timeout becomes candidate, votes for
    itself and asks every other voter for its vote."""
    node = new_node()
    for _ in range(2 * node.config.election_tick):
        node.tick()
    assert node.role == Role.CANDIDATE
    assert node.term == 2  # bootstrap entries are term 1
    assert node.vote == 1
    msgs = drain(node)
    assert sorted((m.to, m.type) for m in msgs) == [(2, MT.MSG_VOTE), (3, MT.MSG_VOTE)]


def test_election_timeouts_are_randomized_in_timeout_to_twice_timeout():
    timeouts = set()
    for seed in range(30):
        node = new_node(seed=seed)
        ticks = 0
        while node.role == Role.FOLLOWER:
            node.tick()
            ticks += 1
        assert node.config.election_tick <= ticks < 2 * node.config.election_tick
        timeouts.add(ticks)
    assert len(timeouts) > 3


def test_candidate_wins_with_majority_of_votes():
    for size, grants, want in [(3, 1, Role.LEADER), (5, 1, Role.CANDIDATE), (5, 2, Role.LEADER)]:
        node = new_node(voters=tuple(range(1, size + 1)))
        node.campaign()
        for voter in range(2, 2 + grants):
            node.step(Message(MT.MSG_VOTE_RESP, GROUP, voter, 1, node.term))
        assert node.role == want, (size, grants)


def test_candidate_steps_down_after_majority_of_rejections():
    node = new_node()
    node.campaign()
    for voter in (2, 3):
        node.step(Message(MT.MSG_VOTE_RESP, GROUP, voter, 1, node.term, reject=True))
    assert node.role == Role.FOLLOWER


def test_voter_grants_at_most_one_vote_per_term():
    """§5.2: each server votes for at most one candidate in a given term, first come first
    served."""
    node = new_node()
    node.step(Message(MT.MSG_VOTE, GROUP, 2, 1, 5, log_term=1, index=3))
    node.step(Message(MT.MSG_VOTE, GROUP, 3, 1, 5, log_term=1, index=3))
    node.step(Message(MT.MSG_VOTE, GROUP, 2, 1, 5, log_term=1, index=3))  # repeat: granted
    resps = drain(node)
    assert [(m.to, m.reject) for m in resps] == [(2, False), (3, True), (2, False)]
    assert node.vote == 2


def test_voter_rejects_candidate_with_less_up_to_date_log():
    """§5.4.1: grant only if the candidate's log is at least as up to date (last term, then
    length)."""
    entries = (Entry(1, 1), Entry(2, 2))
    cases = [((2, 2), False), ((3, 2), False), ((1, 2), True), ((5, 1), True), ((1, 3), False)]
    for (index, log_term), reject in cases:
        node = new_node(entries=entries, hard_state=HardState(2, 0, 0))
        node.step(Message(MT.MSG_VOTE, GROUP, 2, 1, 3, log_term=log_term, index=index))
        (resp,) = drain(node)
        assert resp.reject == reject, (index, log_term)


def test_candidate_becomes_follower_on_append_from_leader_of_same_term():
    node = new_node()
    node.campaign()
    node.step(Message(MT.MSG_APP, GROUP, 2, 1, node.term, log_term=1, index=3))
    assert node.role == Role.FOLLOWER
    assert node.leader_id == 2


def test_any_node_steps_down_on_higher_term():
    """§5.1: a server seeing a higher term updates its term and reverts to follower."""
    net = Network([1, 2, 3], config=NO_PRE_VOTE)
    net.elect(1)
    leader = net.nodes[1]
    leader.step(Message(MT.MSG_APP_RESP, GROUP, 2, 1, leader.term + 5))
    assert leader.role == Role.FOLLOWER
    assert leader.term == 7


def test_leader_elected_in_3_and_5_node_clusters_by_ticks_alone():
    for size in (3, 5):
        net = Network(range(1, size + 1), seed=size)
        for _ in range(40):
            net.tick_all()
            if net.leader():
                break
        leader = net.leader()
        assert leader
        followers = [n for n in net.nodes if n != leader]
        assert all(net.nodes[n].leader_id == leader for n in followers)


def test_new_leader_appends_an_empty_entry_of_its_term():
    net = Network([1, 2, 3])
    net.elect(2)
    last = net.stores[2].entries[-1]
    assert (last.term, last.data) == (net.nodes[2].term, b"")
    assert net.nodes[2].log.committed == last.index


def test_pre_vote_prevents_term_inflation_of_partitioned_node():
    net = Network([1, 2, 3])
    net.elect(1)
    term = net.nodes[1].term
    net.isolate(3)
    for _ in range(100):
        net.tick_all()
    # node 3 kept pre-campaigning but never bumped its term
    assert net.nodes[3].term == term
    assert net.nodes[3].role == Role.PRE_CANDIDATE
    net.heal()
    for _ in range(5):
        net.tick_all()
    assert net.leader() == 1
    assert net.nodes[1].term == term
    assert net.nodes[3].leader_id == 1


def test_without_pre_vote_partitioned_node_inflates_its_term():
    net = Network([1, 2, 3], config=NO_PRE_VOTE)
    net.elect(1)
    term = net.nodes[1].term
    net.isolate(3)
    for _ in range(100):
        net.tick_all()
    assert net.nodes[3].term > term + 3  # the test above can fail: this is what it prevents


def test_pre_vote_does_not_change_voter_term_or_vote():
    node = new_node(config=RaftConfig(pre_vote=True, check_quorum=False))
    node.step(Message(MT.MSG_PRE_VOTE, GROUP, 2, 1, 9, log_term=1, index=3))
    (resp,) = drain(node)
    assert (resp.type, resp.reject, resp.term) == (MT.MSG_PRE_VOTE_RESP, False, 9)
    assert (node.term, node.vote) == (1, 0)


def test_check_quorum_leader_steps_down_without_quorum():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    for _ in range(2 * net.config.election_tick + 1):
        net.tick(1)
        net.stabilize()
    assert net.nodes[1].role == Role.FOLLOWER
    with pytest.raises(NotLeader):
        net.nodes[1].propose(b"x")


def test_check_quorum_leader_stays_with_quorum():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for _ in range(5 * net.config.election_tick):
        net.tick_all()
    assert net.nodes[1].role == Role.LEADER


def test_leader_lease_followers_ignore_votes_while_leader_is_alive():
    """With check-quorum a follower that heard from its leader within the election timeout
    ignores a vote request of a higher term, so a rejoining node cannot depose the leader."""
    net = Network([1, 2, 3], config=RaftConfig(pre_vote=False, check_quorum=True))
    net.elect(1)
    term = net.nodes[1].term
    follower = net.nodes[2]
    follower.step(Message(MT.MSG_VOTE, GROUP, 3, 2, term + 1, log_term=term, index=100))
    assert follower.term == term
    assert not any(m.type == MT.MSG_VOTE_RESP for m in drain(follower))
    # ... but a leadership-transfer election overrides the lease
    follower.step(
        Message(
            MT.MSG_VOTE, GROUP, 3, 2, term + 1, log_term=term, index=100, context=CAMPAIGN_TRANSFER
        )
    )
    assert follower.term == term + 1
    assert follower.vote == 3


def test_without_check_quorum_the_lease_still_ignores_a_removed_node():
    """Thesis §4.2.3: a removed node that never learned of its removal times out again and
    again. Without check-quorum a member's vote request is still heard, but a request from a
    node outside the configuration must not depose a live leader or its followers."""
    net = Network([1, 2, 3], config=RaftConfig(pre_vote=False, check_quorum=False))
    net.elect(1)
    term = net.nodes[1].term
    for node_id in (1, 2):  # the leader and a follower that just heard from it
        node = net.nodes[node_id]
        node.step(Message(MT.MSG_VOTE, GROUP, 9, node_id, term + 1, log_term=term, index=100))
        assert node.term == term
        assert not any(m.type == MT.MSG_VOTE_RESP for m in drain(node))
    follower = net.nodes[2]  # a member's request is heard: no lease without check-quorum
    follower.step(Message(MT.MSG_VOTE, GROUP, 3, 2, term + 1, log_term=term, index=100))
    assert follower.term == term + 1
    assert follower.vote == 3


def test_stale_leader_steps_down_when_a_follower_answers_with_higher_term():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(1)
    for _ in range(3 * net.config.election_tick):
        for n in (2, 3):
            net.tick(n)
        net.stabilize()
    new_leader = net.leader()
    assert new_leader in (2, 3)
    net.heal()
    net.nodes[1].step(Message(MT.MSG_APP_RESP, GROUP, new_leader, 1, net.nodes[new_leader].term))
    assert net.nodes[1].role == Role.FOLLOWER


def test_stale_leader_message_gets_a_reply_with_our_term():
    node = new_node(
        config=RaftConfig(),
        hard_state=HardState(5, 0, 0),
        entries=(Entry(1, 1), Entry(2, 1), Entry(3, 1)),
    )
    node.step(Message(MT.MSG_HEARTBEAT, GROUP, 2, 1, 3))
    (resp,) = drain(node)
    assert (resp.type, resp.term, resp.to) == (MT.MSG_APP_RESP, 5, 2)


def test_learner_does_not_campaign_or_count_as_voter():
    net = Network([1, 2, 3], learners=[4])
    for _ in range(30 * net.config.election_tick):
        net.tick(4)
    assert net.nodes[4].role == Role.FOLLOWER
    net.elect(1)
    vote_targets = set()
    net.nodes[2].campaign()
    for m in net.nodes[2].ready().messages:
        vote_targets.add(m.to)
    assert 4 not in vote_targets


def test_election_messages_carry_group():
    node = new_node()
    node.campaign()
    assert {m.group for m in drain(node)} == {GROUP}
    assert msg_types([]) == []


def test_check_quorum_gives_a_new_member_an_election_timeout_to_answer():
    net = Network([1], extra=[2])
    net.elect(1)
    net.crash(2)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 2))
    net.stabilize()
    assert net.nodes[1].voters == (1, 2)
    for _ in range(net.config.election_tick):
        net.tick_all()
    assert net.nodes[1].role == Role.LEADER  # first check: 2 counts as recently added
    net.restart(2)
    for _ in range(3 * net.config.election_tick):
        net.tick_all()
    assert net.leader() in (1, 2)
