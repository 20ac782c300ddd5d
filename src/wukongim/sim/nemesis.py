"""The nemesis (Jepsen's name for the fault injector): partitions, swizzle-clogs, membership
changes and leadership transfers, drawn step by step from the cluster's seeded generator.
Crashes and restarts live with the nodes in cluster.py.

Rules of this file: every choice comes from the cluster's `rng`; nodes are visited in id order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wukongim.raft import ConfChange, ConfChangeType

if TYPE_CHECKING:
    from wukongim.sim.cluster import SimCluster

ClogAction = tuple[int, bool, tuple[int, int]]  # (tick, clog or unclog, link)


class Nemesis:
    def __init__(self, cluster: SimCluster) -> None:
        self._cluster = cluster
        self.rng = cluster.rng
        self._options = cluster.options.faults
        self._partition_until = 0
        self._clog: list[ClogAction] = []

    def step(self, now: int) -> None:
        """Maybe start, advance or end a fault (call once per step, in the safety phase)."""
        faults = self._options
        rng = self.rng
        if self._partition_until and now >= self._partition_until:
            self._partition_until = 0
            self._cluster.network.heal()
            self._cluster.trace("partition healed")
        elif not self._partition_until and faults.partition and rng.random() < faults.partition:
            self._partition(now)
        if self._clog:
            self._run_clog_plan(now)
        elif faults.clog and rng.random() < faults.clog:
            self._plan_clog(now)
        if faults.membership and rng.random() < faults.membership:
            self._membership_change(now)
        if faults.transfer and rng.random() < faults.transfer:
            self._transfer()

    def stop(self) -> None:
        """Forget running faults (the caller heals the network itself)."""
        self._partition_until = 0
        self._clog = []

    def _partition(self, now: int) -> None:
        ids = list(self._cluster.nodes)
        rng = self.rng
        symmetric = rng.random() < 0.5
        if rng.random() < 0.5:
            alone = rng.choice(ids)
            side_a, side_b = [alone], [n for n in ids if n != alone]
            if not symmetric and rng.random() < 0.5:
                side_a, side_b = side_b, side_a
        else:
            rng.shuffle(ids)
            cut = rng.randint(1, len(ids) - 1)
            side_a, side_b = sorted(ids[:cut]), sorted(ids[cut:])
        self._cluster.network.partition(side_a, side_b, symmetric=symmetric)
        self._partition_until = now + rng.randint(10, self._options.partition_ticks_max)
        self._cluster.stats.partitions += 1
        arrow = "<->" if symmetric else "->"
        self._cluster.trace(f"PARTITION {side_a} {arrow} {side_b} until {self._partition_until}")

    def _plan_clog(self, now: int) -> None:
        rng = self.rng
        ids = list(self._cluster.nodes)
        links = [(a, b) for a in ids for b in ids if a != b]
        chosen = rng.sample(links, rng.randint(1, len(links)))
        tick = now
        actions: list[ClogAction] = []
        for link in chosen:
            tick += rng.randint(0, 5)
            actions.append((tick, True, link))
        tick += rng.randint(5, self._options.clog_ticks_max)
        rng.shuffle(chosen)
        for link in chosen:
            tick += rng.randint(0, 5)
            actions.append((tick, False, link))
        self._clog = actions
        self._cluster.stats.clogs += 1
        self._cluster.trace(f"SWIZZLE-CLOG {len(chosen)} links from {now} to {tick}")

    def _run_clog_plan(self, now: int) -> None:
        actions = self._clog
        while actions and actions[0][0] <= now:
            _, clog, (src, dst) = actions.pop(0)
            if clog:
                self._cluster.network.clog(src, dst)
            else:
                self._cluster.network.unclog(src, dst, now)
            self._cluster.trace(f"{'clog' if clog else 'unclog'} {src}->{dst}")

    def _membership_change(self, now: int) -> None:
        group = self.rng.choice(self._cluster.groups)
        leader = self._cluster.leader_of(group)
        if leader is None:
            return
        raw = leader.node.raw(group)
        voters, learners = list(raw.voters), list(raw.learners)
        spares = [
            n
            for n in self._cluster.nodes
            if n not in voters and n not in learners and n not in self._cluster.removed[group]
        ]
        change: ConfChange | None = None
        caught_up = [n for n in learners if n in raw.prs and raw.prs[n].match >= raw.log.committed]
        if caught_up:
            change = ConfChange(ConfChangeType.ADD_VOTER, self.rng.choice(caught_up))
        elif spares and self.rng.random() < 0.6:
            change = ConfChange(ConfChangeType.ADD_LEARNER, self.rng.choice(spares))
        elif len(voters) > 3 or (len(voters) == 3 and spares):
            change = ConfChange(ConfChangeType.REMOVE_NODE, self.rng.choice(voters))
        if change is None:
            return
        proposal = leader.node.propose_conf_change(group, change)
        self._cluster.trace(
            f"n{leader.id} g{group} propose {change.describe()}: "
            + ("accepted" if proposal is not None else "refused")
        )
        if proposal is not None:
            self._cluster.stats.membership_changes += 1

    def _transfer(self) -> None:
        group = self.rng.choice(self._cluster.groups)
        leader = self._cluster.leader_of(group)
        if leader is None:
            return
        voters = [v for v in leader.node.raw(group).voters if v != leader.id]
        if not voters:
            return
        target = self.rng.choice(voters)
        ok = leader.node.transfer_leader(group, target)
        self._cluster.trace(f"n{leader.id} g{group} transfer leadership to n{target}: {ok}")
        self._cluster.stats.transfers += 1
