"""Randomised safety and liveness on the in-test network (a small swarm, seeded).

Safety phase: ticks, message loss, partitions, crashes/restarts, compactions and proposals at
random; after every step, at most one leader per term and applied entries agree everywhere.
Liveness phase: heal everything, then the cluster must elect a leader, commit a last entry and
bring every member to the same state.
"""

from __future__ import annotations

import contextlib
import os
import random

import pytest

from tests.unit.raft.harness import Network
from wukongim.raft import ConfChange, ConfChangeType, NotLeader, ProposalDropped, RaftConfig, Role

SEEDS = int(os.environ.get("WUKONGIM_RAFT_SEEDS", "40"))


def _random_step(
    net: Network, rng: random.Random, stats: dict[str, int], reads: dict[bytes, int]
) -> None:
    roll = rng.random()
    ids = sorted(net.nodes)
    if roll < 0.05 and len(ids) > 1:
        net.heal()
        a = rng.sample(ids, rng.randrange(1, len(ids)))
        net.partition(a, [n for n in ids if n not in a])
    elif roll < 0.10:
        net.heal()
    elif roll < 0.12 and len(net.down) < 2:
        victim = rng.choice(ids)
        net.crash(victim)
        stats["crashes"] += 1
    elif roll < 0.16 and net.down:
        net.restart(rng.choice(sorted(net.down)))
    elif roll < 0.18:
        nid = rng.choice(ids)
        if nid not in net.down and net.stores[nid].applied_index > net.nodes[nid].log.offset:
            net.compact(nid)
            stats["compactions"] += 1
    elif roll < 0.5:
        leader = net.leader()
        if leader and leader not in net.down:
            try:
                net.nodes[leader].propose_batch(
                    [f"v{stats['proposals'] + i}".encode() for i in range(rng.randrange(1, 4))]
                )
                stats["proposals"] += 1
            except (NotLeader, ProposalDropped):
                pass
    elif roll < 0.53 and stats["conf"]:
        leader = net.leader()
        if leader and leader not in net.down:
            node = net.nodes[leader]
            target = rng.choice(ids)
            members = (*node.voters, *node.learners)
            if target not in members:
                kind = rng.choice([ConfChangeType.ADD_VOTER, ConfChangeType.ADD_LEARNER])
            elif target in node.learners:
                kind = rng.choice([ConfChangeType.ADD_VOTER, ConfChangeType.REMOVE_NODE])
            else:
                kind = ConfChangeType.REMOVE_NODE
            if (
                kind == ConfChangeType.REMOVE_NODE
                and len(node.voters) <= 2
                and target in node.voters
            ):
                return
            try:
                node.propose_conf_change(ConfChange(kind, target))
                stats["conf_changes"] += 1
            except (NotLeader, ProposalDropped):
                pass
    elif roll < 0.54:
        nid = rng.choice(ids)
        if nid not in net.down:
            ctx = b"read%d" % len(reads)
            # Linearizability: the read must see everything applied anywhere before it starts.
            reads[ctx] = max(store.applied_index for store in net.stores.values())
            with contextlib.suppress(NotLeader):
                net.nodes[nid].read_index(ctx)
    elif roll < 0.55:
        leader = net.leader()
        if leader and leader not in net.down:
            with contextlib.suppress(NotLeader, ProposalDropped):
                net.nodes[leader].transfer_leader(rng.choice(sorted(net.nodes[leader].voters)))
    else:
        for nid in ids:
            if nid not in net.down:
                net.nodes[nid].tick()
    # deliver a random amount of traffic
    for _ in range(rng.randrange(0, 30)):
        for nid in ids:
            net.process(nid)
        if net.queue:
            if rng.random() < 0.1:
                net.queue.rotate(rng.randrange(len(net.queue)))  # reorder
            net.deliver_one()
    net.check_logs_agree()
    for store in net.stores.values():
        for rs in store.read_states:
            assert rs.index >= reads[rs.context], (rs, reads[rs.context])
            stats["reads"] += 1
        store.read_states.clear()


@pytest.mark.parametrize("seed", range(SEEDS))
def test_random_faults_keep_safety_and_recover(seed):
    rng = random.Random(seed)
    size = rng.choice([1, 2, 3, 3, 4, 5])
    election_tick = rng.choice([3, 10])
    config = RaftConfig(
        election_tick=election_tick,
        heartbeat_tick=rng.choice([1, election_tick // 3 or 1]),
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        max_inflight_msgs=rng.choice([1, 4, 256]),
        max_size_per_msg=rng.choice([1, 64, 1 << 20]),
    )
    learners = [size + 1] if rng.random() < 0.3 else []
    conf_changes = size > 1 and rng.random() < 0.5
    extra = [size + 2, size + 3] if conf_changes else []
    net = Network(
        range(1, size + 1),
        learners=learners,
        config=config,
        seed=seed,
        codec=rng.random() < 0.3,
        extra=extra,
    )
    net.drop_rate = rng.choice([0.0, 0.05, 0.2])
    stats = {
        "crashes": 0,
        "compactions": 0,
        "proposals": 0,
        "conf": int(conf_changes),
        "conf_changes": 0,
        "reads": 0,
    }
    reads: dict[bytes, int] = {}
    try:
        for _ in range(600):
            _random_step(net, rng, stats, reads)
        # liveness: heal, restart everyone, let an election settle
        net.heal()
        net.drop_rate = 0.0
        for nid in sorted(net.down):
            net.restart(nid)
        # A proposal may still be lost to a leader change (e.g. a check-quorum step-down right
        # after the heal): retry, as a client would, until one commits.
        proposed: tuple[int, int] | None = None  # (leader, term) of the last attempt
        for _ in range(300):
            net.tick_all()
            leader = net.leader()
            if not leader:
                continue
            if b"final" in net.data(leader):
                break
            node = net.nodes[leader]
            if proposed != (leader, node.term) and node.status().lead_transferee == 0:
                with contextlib.suppress(NotLeader):
                    node.propose(b"final")
                    proposed = (leader, node.term)
        else:
            raise AssertionError("no leader committed the final proposal")
        for _ in range(50):
            net.tick_all()
        leader_node = net.nodes[net.leader()]
        members = (*leader_node.voters, *leader_node.learners)
        want = net.data(leader_node.id)
        for nid in members:
            assert net.data(nid) == want, (nid, net.nodes[nid].status().describe())
        net.check_logs_agree()
        commits = {net.nodes[n].log.committed for n in members}
        assert len(commits) == 1, commits
        assert all(net.nodes[n].role in (Role.LEADER, Role.FOLLOWER) for n in members)
    except AssertionError:
        print(f"reproduce with seed={seed} size={size} {config} stats={stats}")
        raise
