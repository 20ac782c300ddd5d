"""The checkers must be able to fail: deliberately broken variants of the cluster loop are run
through the same seeds and must be caught (mutation testing of the simulator itself)."""

import pytest

from wukongim.sim.cluster import SimCluster, SimNode
from wukongim.sim.linearizability import OpKind
from wukongim.sim.workload import Client, KVStateMachine, Request, group_of_key

pytestmark = pytest.mark.sim


class StaleReads(SimCluster):
    """Serves reads from any replica's local state, without read-index."""

    def _attempt(self, client: Client, request: Request, now: int) -> None:
        if request.kind is OpKind.GET:
            sim = self.nodes[self.rng.randint(1, len(self.nodes))]
            group = group_of_key(request.key, self.options.groups)
            if sim.up and sim.node.has_group(group):
                request.node = sim.id
                machine = sim.node.state_machine(group)
                assert isinstance(machine, KVStateMachine)
                self._complete(client, machine.get(request.key), sim)
                return
        super()._attempt(client, request, now)


class SendBeforeSync(SimCluster):
    """Sends a turn's messages before its writes are synced (breaks etcd's order)."""

    def _turn(self, sim: SimNode, now: int) -> None:
        node = sim.node
        batch = node.collect_ready()
        if not batch:
            return
        node.persist(batch)
        for _, rd in batch.readies:
            for msg in rd.messages:
                self.network.send(node.id, msg.to, [msg], now)
        if sim.crash_mid_turn:
            self._crash(sim, now, mid_turn=True)
            return
        sim.disk.sync()
        out = node.after_sync(batch)
        if out.applied:
            self.checker.on_applied(node, out.applied)
            self._on_applied(sim, out.applied)
        for read in out.reads:
            self._on_read(sim, read)


def _failures(cls: type[SimCluster], seeds: range) -> list[int]:
    failed = []
    for seed in seeds:
        try:
            cls(seed).run()
        except AssertionError:  # an invariant, liveness, or an assertion inside the core
            failed.append(seed)
    return failed


def test_stale_reads_are_not_linearizable() -> None:
    assert len(_failures(StaleReads, range(4))) >= 3


def test_sending_before_sync_loses_data_on_crash() -> None:
    assert _failures(SendBeforeSync, range(16))
