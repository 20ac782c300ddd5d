"""Log compaction and snapshots (§7): a lagging follower is sent the snapshot and restores."""

from __future__ import annotations

from tests.unit.raft.harness import Network, pack_list
from wukongim.raft import ConfChange, ConfChangeType, Message, MessageType

MT = MessageType


def test_compact_drops_applied_entries_and_keeps_the_snapshot():
    net = Network([1])
    net.elect(1)
    for i in range(5):
        net.propose(1, b"v%d" % i)
    snap = net.compact(1)
    node = net.nodes[1]
    assert snap.meta.index == node.applied
    assert node.log.first_index() == snap.meta.index + 1
    assert snap.meta.conf.voters == (1,)
    assert snap.data == pack_list([b"v%d" % i for i in range(5)])
    net.propose(1, b"after")
    assert net.data(1)[-1] == b"after"


def test_lagging_follower_gets_snapshot_after_compaction():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"v%d" % i)
    net.compact(1)
    net.heal()
    sent = []

    def record(m: Message) -> Message:
        sent.append(m.type)
        return m

    net.msg_filter = record
    net.tick_all(3)
    assert MT.MSG_SNAP in sent
    assert net.data(3) == [b"v%d" % i for i in range(10)]
    assert net.stores[3].snapshot is not None
    net.propose(1, b"more")
    net.tick_all()
    assert net.data(3)[-1] == b"more"
    assert net.nodes[1].status().progress[3].state == "replicate"


def test_snapshot_carries_membership_to_a_new_node():
    net = Network([1, 2, 3], extra=[4])
    net.elect(1)
    net.propose(1, b"a")
    net.compact(1)
    net.nodes[1].propose_conf_change(ConfChange(ConfChangeType.ADD_VOTER, 4))
    net.stabilize()
    net.tick_all(3)
    assert net.nodes[4].conf_state.voters == (1, 2, 3, 4)
    assert net.data(4) == [b"a"]


def test_lost_snapshot_is_resent():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    for i in range(3):
        net.propose(1, b"v%d" % i)
    net.compact(1)
    net.heal()
    net.msg_filter = lambda m: None if m.type == MT.MSG_SNAP else m
    net.tick_all(3)
    assert net.nodes[1].status().progress[3].state == "snapshot"
    net.msg_filter = None
    net.tick_all(3 * net.config.election_tick)
    assert net.data(3) == [b"v%d" % i for i in range(3)]


def test_report_snapshot_failure_lets_leader_retry():
    net = Network([1, 2, 3])
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"v")
    net.compact(1)
    net.heal()
    net.msg_filter = lambda m: None if m.type == MT.MSG_SNAP else m
    net.tick_all(2)
    net.nodes[1].report_snapshot(3, ok=False)
    assert net.nodes[1].status().progress[3].state == "probe"
    net.msg_filter = None
    net.tick_all(2)
    assert net.data(3) == [b"v"]


def test_follower_restarts_from_snapshot_and_log():
    net = Network([1, 2, 3])
    net.elect(1)
    for i in range(4):
        net.propose(1, b"v%d" % i)
    net.tick_all()
    net.compact(2)
    net.propose(1, b"tail")
    net.tick_all()
    net.crash(2)
    net.restart(2)
    node = net.nodes[2]
    assert node.log.snapshot is not None
    assert node.applied == net.stores[2].applied_index
    net.propose(1, b"again")
    net.tick_all()
    assert net.data(2) == [*(b"v%d" % i for i in range(4)), b"tail", b"again"]
