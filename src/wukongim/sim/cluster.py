"""The simulated cluster: N `Node`s on a `SimNetwork` with `SimDisk`s, driven by simulated clients,
with crashes, partitions, clogs, membership changes and leadership transfers, all from one seed.

Rules of this file: everything random comes from `self.rng` (seeded once) or from generators
drawn from it; nodes, groups and clients are visited in id order; no real clock, no I/O.

One step (one tick of simulated time):
  1. faults: crash / restart nodes, start or heal partitions, swizzle-clog links, membership
     changes, leadership transfers (safety phase only);
  2. the network delivers the packets due now;
  3. every live node ticks;
  4. clients start operations, or retry the ones that timed out;
  5. every live node runs one loop turn (persist, sync, send, apply) - see node/node.py;
  6. the safety checker runs.
`run()` = a safety phase with faults, then a liveness phase that heals everything and requires
the cluster to converge and serve new operations within a bound, then the final checks
(replicas identical, no acknowledged write lost, the history linearizable).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from wukongim.node.node import Applied, Node, NodeConfig, ReadDone, StateMachine
from wukongim.raft import (
    ConfChange,
    ConfChangeType,
    EntryKind,
    Message,
    RaftConfig,
    RawNode,
    Role,
    decode_conf_change,
)
from wukongim.sim.clock import SimClock
from wukongim.sim.disk import SimDisk
from wukongim.sim.invariants import InvariantError, SafetyChecker
from wukongim.sim.linearizability import OpKind, check_history
from wukongim.sim.nemesis import Nemesis
from wukongim.sim.network import NetworkOptions, SimNetwork
from wukongim.sim.options import SimOptions, draw_options
from wukongim.sim.workload import (
    Client,
    Command,
    KVStateMachine,
    Request,
    Workload,
    group_of_key,
)

Trace = Callable[[str], None]


@dataclass(slots=True)
class SimNode:
    id: int
    disk: SimDisk
    node: Node
    up: bool = True
    restart_at: int = 0
    crash_mid_turn: bool = False  # crash at the next turn, between persist and sync
    hold_down: bool = False  # crashed by hand: stays down until restarted by hand
    tick_skip: float = 0.0  # share of ticks this node's slow clock misses


@dataclass(slots=True)
class SimStats:
    steps: int = 0
    crashes: int = 0
    mid_turn_crashes: int = 0
    partitions: int = 0
    clogs: int = 0
    membership_changes: int = 0
    transfers: int = 0
    elections: int = 0
    completed_ops: int = 0
    snapshots_installed: int = 0
    liveness_steps: int = 0

    def add(self, other: SimStats) -> None:
        """Accumulate another run's counters (the runner's coverage line)."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def describe(self) -> str:
        return (
            f"steps={self.steps} ops={self.completed_ops} elections={self.elections} "
            f"crashes={self.crashes}({self.mid_turn_crashes} mid-turn) "
            f"partitions={self.partitions} clogs={self.clogs} "
            f"membership={self.membership_changes} transfers={self.transfers} "
            f"snapshots_installed={self.snapshots_installed} "
            f"liveness_steps={self.liveness_steps}"
        )


class LivenessError(AssertionError):
    invariant = "liveness"


class SimCluster:
    def __init__(
        self,
        seed: int,
        options: SimOptions | None = None,
        *,
        steps: int | None = None,
        trace: Trace | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.options = options if options is not None else draw_options(self.rng, steps=steps)
        self.clock = SimClock()
        self.network: SimNetwork[Message] = SimNetwork(self.rng, self.options.network)
        self.checker = SafetyChecker()
        self.workload = Workload(self.rng, self.options.workload)
        self.stats = SimStats()
        self._trace = trace
        self.faults_on = True
        self.removed: dict[int, list[int]] = {g: [] for g in self.groups}
        self._conf_seen: set[tuple[int, int]] = set()  # (group, index) of handled conf changes
        self._seq_max: dict[int, int] | None = None  # liveness phase: last seq per client
        self.nodes: dict[int, SimNode] = {}
        self.nemesis = Nemesis(self)
        for node_id in range(1, self.options.nodes + 1):
            self.nodes[node_id] = self._new_node(node_id)
        voters = list(range(1, self.options.voters + 1))
        for node_id in voters:
            for group in self.groups:
                self.nodes[node_id].node.create_group(group, voters)
        self.trace(f"start seed={seed} {self.options.describe()}")

    # -- setup ---------------------------------------------------------------------------------

    @property
    def groups(self) -> list[int]:
        return list(range(1, self.options.groups + 1))

    def _new_node(self, node_id: int) -> SimNode:
        opts = self.options
        config = NodeConfig(
            raft=RaftConfig(
                election_tick=opts.election_tick,
                heartbeat_tick=opts.heartbeat_tick,
                pre_vote=opts.pre_vote,
                check_quorum=opts.check_quorum,
                max_inflight_msgs=opts.max_inflight_msgs,
                max_size_per_msg=opts.max_size_per_msg,
                max_committed_size_per_ready=opts.max_committed_size_per_ready,
            ),
            snapshot_entries=opts.snapshot_entries,
        )
        disk = SimDisk(random.Random(self.rng.getrandbits(64)), lying_sync=opts.lying_sync)
        node = Node(node_id, disk, _kv_factory, random.Random(self.rng.getrandbits(64)), config)
        drift = opts.clock_drift
        return SimNode(node_id, disk, node, tick_skip=self.rng.uniform(0, drift) if drift else 0)

    def trace(self, line: str) -> None:
        if self._trace is not None:
            self._trace(f"{self.clock.ticks:5d} {line}")

    @property
    def now(self) -> int:
        return self.clock.ticks

    # -- running -------------------------------------------------------------------------------

    def run(self) -> SimStats:
        """The whole simulation. Raises InvariantError / LivenessError on failure."""
        for _ in range(self.options.safety_steps):
            self.step()
        self.heal()
        self.run_liveness()
        self.final_checks()
        return self.stats

    def step(self) -> None:
        now = self.clock.advance()
        self.stats.steps += 1
        if self.faults_on:
            self._faults(now)
        self._restarts(now)
        if now % 5 == 0:
            self._reconcile_members()
        for _src, dst, msg in self.network.deliver(now):
            target = self.nodes[dst]
            if target.up:
                if self._trace is not None:
                    self.trace(f"recv {msg.describe()}")
                target.node.step(msg)
        for sim in self.nodes.values():
            if sim.up and not (sim.tick_skip and self.rng.random() < sim.tick_skip):
                sim.node.tick()
        self._clients(now)
        for sim in self.nodes.values():
            if sim.up:
                self._turn(sim, now)
        self.checker.check([sim.node for sim in self.nodes.values() if sim.up])

    def _turn(self, sim: SimNode, now: int) -> None:
        node = sim.node
        batch = node.collect_ready()
        if not batch:
            return
        for group, rd in batch.readies:
            if rd.entries:
                self.checker.on_entries(node, group, rd.entries)
            if rd.soft_state is not None:
                if rd.soft_state.role == Role.LEADER:
                    self.stats.elections += 1
                self.trace(
                    f"n{node.id} g{group} {rd.soft_state.describe()} t{node.raw(group).term}"
                )
        node.persist(batch)
        # The same order as server/raft_loop.py: entries already durable are applied and a
        # leader's MsgApp/heartbeats leave BEFORE this turn's sync; a mid-turn crash then
        # happens after those early outputs, which is the case that must stay safe.
        early = node.apply_durable(batch)
        for dst, msgs in node.messages_before_sync(batch).items():
            self.network.send(node.id, dst, msgs, now)
        if early.applied:
            self.checker.on_applied(node, early.applied)
            self._on_applied(sim, early.applied)
        for read in early.reads:
            self._on_read(sim, read)
        if sim.crash_mid_turn:
            self._crash(sim, now, mid_turn=True)
            return
        if batch.needs_sync:
            sim.disk.sync()
        out = node.after_sync(batch)
        for group, index in out.snapshots_restored:
            self.stats.snapshots_installed += 1
            self.trace(f"n{node.id} g{group} installed snapshot at {index}")
        for dst, msgs in out.messages.items():
            self.network.send(node.id, dst, msgs, now)
        if out.applied:
            self.checker.on_applied(node, out.applied)
            self._on_applied(sim, out.applied)
        for read in out.reads:
            self._on_read(sim, read)

    # -- clients -------------------------------------------------------------------------------

    def _clients(self, now: int) -> None:
        for client in self.workload.clients:
            request = client.request
            if request is None:
                if not self.workload.enabled or now < client.next_at:
                    continue
                if self._seq_max is not None and client.seq >= self._seq_max[client.id]:
                    continue
                request = self.workload.next_request(client)
                self.trace(f"invoke {request.describe()}")
                self._attempt(client, request, now)
            elif now >= request.deadline:
                self._attempt(client, request, now)

    def _attempt(self, client: Client, request: Request, now: int) -> None:
        request.attempts += 1
        hint = client.leader_hint
        target = hint if hint and self.rng.random() < 0.8 else self.rng.randint(1, len(self.nodes))
        request.node = target
        request.deadline = now + self.options.workload.timeout_ticks
        sim = self.nodes[target]
        group = group_of_key(request.key, self.options.groups)
        if not sim.up or not sim.node.has_group(group):
            client.leader_hint = 0
            request.deadline = now + 2  # connection refused: try elsewhere soon
            return
        if request.kind is OpKind.GET:
            request.read_ctx = f"{client.id}.{request.seq}.{request.attempts}".encode()
            accepted = sim.node.read_index(group, request.read_ctx)
        else:
            accepted = sim.node.propose(group, request.command().encode()) is not None
        if not accepted:
            client.leader_hint = sim.node.leader(group)
            request.deadline = now + 2
        elif request.attempts > 1:
            self.trace(f"retry {request.describe()} at n{target} (attempt {request.attempts})")

    def _complete(self, client: Client, output: str | None, sim: SimNode) -> None:
        request = client.request
        assert request is not None
        op = self.workload.complete(client, output, self.now)
        client.leader_hint = sim.id
        self.stats.completed_ops += 1
        self.trace(f"complete {op.describe()} at n{sim.id}")

    def _on_applied(self, sim: SimNode, applied: list[Applied]) -> None:
        for a in applied:
            if a.kind == EntryKind.CONF_CHANGE:
                self._on_conf_change(sim, a)
            elif a.data:
                command = Command.decode(a.data)
                if not 0 < command.client <= len(self.workload.clients):
                    continue  # proposed directly by a scenario test, no simulated client
                client = self.workload.clients[command.client - 1]
                request = client.request
                if (
                    request is not None
                    and request.seq == command.seq
                    and request.kind is not OpKind.GET
                    and request.node == sim.id
                ):
                    self._complete(client, None, sim)

    def _on_read(self, sim: SimNode, read: ReadDone) -> None:
        if not sim.node.has_group(read.group):
            return  # left the group while the read was pending: the client times out
        for client in self.workload.clients:
            request = client.request
            if (
                request is not None
                and request.kind is OpKind.GET
                and request.node == sim.id
                and request.read_ctx == read.context
            ):
                machine = sim.node.state_machine(read.group)
                assert isinstance(machine, KVStateMachine)
                self._complete(client, machine.get(request.key), sim)
                return

    # -- membership ----------------------------------------------------------------------------

    def _on_conf_change(self, sim: SimNode, a: Applied) -> None:
        change = decode_conf_change(a.data)
        group, target = a.group, change.node_id
        if change.type == ConfChangeType.REMOVE_NODE:
            if target not in self.removed[group]:
                self.removed[group].append(target)
            if target == sim.id:
                self.trace(f"n{sim.id} g{group} removed itself at {a.index}: leaves the group")
                sim.node.remove_group(group)
        key = (group, a.index)
        if key in self._conf_seen:
            return
        self._conf_seen.add(key)
        self.trace(f"g{group} conf change {change.describe()} applied at {a.index} (n{sim.id})")
        member = self.nodes.get(target)
        if (
            change.type != ConfChangeType.REMOVE_NODE
            and member is not None
            and member.up
            and not member.node.has_group(group)
            and target not in self.removed[group]
        ):
            member.node.create_group(group)

    def leader_of(self, group: int) -> SimNode | None:
        """The live leader with the highest term (None if there is none)."""
        best: SimNode | None = None
        best_term = -1
        for sim in self.nodes.values():
            if sim.up and sim.node.has_group(group):
                raw = sim.node.raw(group)
                if raw.role == Role.LEADER and raw.term > best_term:
                    best, best_term = sim, raw.term
        return best

    # -- faults --------------------------------------------------------------------------------

    def _faults(self, now: int) -> None:
        faults = self.options.faults
        rng = self.rng
        for sim in self.nodes.values():
            if sim.up and not sim.crash_mid_turn and faults.crash and rng.random() < faults.crash:
                if rng.random() < faults.crash_mid_turn:
                    sim.crash_mid_turn = True
                else:
                    self._crash(sim, now, mid_turn=False)
        self.nemesis.step(now)

    def _crash(self, sim: SimNode, now: int, *, mid_turn: bool) -> None:
        faults = self.options.faults
        sim.up = False
        sim.crash_mid_turn = False
        pending = sim.disk.has_pending
        sim.disk.crash()
        sim.restart_at = now + self.rng.randint(faults.restart_ticks_min, faults.restart_ticks_max)
        if sim.hold_down:
            sim.restart_at = 1 << 62
        self.checker.forget_node(sim.id)
        self.stats.crashes += 1
        self.stats.mid_turn_crashes += int(mid_turn)
        where = "between persist and sync" if mid_turn else "between turns"
        self.trace(f"CRASH n{sim.id} {where} (unsynced writes lost: {pending})")

    def _restarts(self, now: int) -> None:
        for sim in self.nodes.values():
            if not sim.up and sim.restart_at <= now:
                self._restart(sim)

    def _restart(self, sim: SimNode) -> None:
        sim.up = True
        sim.hold_down = False
        sim.node.restart()
        for group in self.groups:
            if sim.id in self.removed[group]:
                sim.node.remove_group(group)
            elif not sim.node.has_group(group) and self._is_member(sim.id, group):
                sim.node.create_group(group)
        desc = ", ".join(sim.node.status(g).describe() for g in sim.node.groups)
        self.trace(f"RESTART n{sim.id}: {desc}")

    def _reconcile_members(self) -> None:
        """What a controller does: a live node that its group's leader counts as a member but
        that lacks the group (it crashed before its empty start became durable) gets it."""
        for group in self.groups:
            leader = self.leader_of(group)
            if leader is None:
                continue
            raw = leader.node.raw(group)
            for member in (*raw.voters, *raw.learners):
                sim = self.nodes[member]
                if sim.up and not sim.node.has_group(group) and member not in self.removed[group]:
                    self.trace(f"n{member} g{group} re-created (a member without the group)")
                    sim.node.create_group(group)

    def _is_member(self, node_id: int, group: int) -> bool:
        for sim in self.nodes.values():
            if sim.up and sim.id != node_id and sim.node.has_group(group):
                raw = sim.node.raw(group)
                if node_id in raw.voters or node_id in raw.learners:
                    return True
        return False

    # -- manual control (hand-written scenarios) -------------------------------------------------

    def run_steps(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def run_until(self, condition: Callable[[], bool], steps_max: int) -> bool:
        """Step until `condition()` holds (True) or `steps_max` steps passed (False)."""
        for _ in range(steps_max):
            if condition():
                return True
            self.step()
        return condition()

    def crash(self, node_id: int, *, mid_turn: bool = False) -> None:
        """Crash a node now (or, with mid_turn, during its next loop turn, between persist and
        sync). It stays down until `restart(node_id)`."""
        sim = self.nodes[node_id]
        sim.hold_down = True
        if mid_turn:
            sim.crash_mid_turn = True
        else:
            self._crash(sim, self.now, mid_turn=False)

    def restart(self, node_id: int) -> None:
        self._restart(self.nodes[node_id])

    def partition(self, side_a: list[int], side_b: list[int], *, symmetric: bool) -> None:
        self.network.partition(side_a, side_b, symmetric=symmetric)
        arrow = "<->" if symmetric else "->"
        self.trace(f"PARTITION {side_a} {arrow} {side_b}")

    def heal_network(self) -> None:
        self.network.heal()
        self.trace("partition healed")

    def propose_conf_change(self, group: int, change: ConfChange) -> bool:
        leader = self.leader_of(group)
        if leader is None:
            return False
        accepted = leader.node.propose_conf_change(group, change) is not None
        self.trace(f"n{leader.id} g{group} propose {change.describe()}: {accepted}")
        return accepted

    def transfer_leader(self, group: int, target: int) -> bool:
        leader = self.leader_of(group)
        if leader is None:
            return False
        ok = leader.node.transfer_leader(group, target)
        self.trace(f"n{leader.id} g{group} transfer leadership to n{target}: {ok}")
        return ok

    def voters(self, group: int) -> tuple[int, ...]:
        leader = self.leader_of(group)
        return () if leader is None else leader.node.raw(group).voters

    # -- liveness --------------------------------------------------------------------------------

    def heal(self) -> None:
        """End of the safety phase: no more faults, a clean network, every node up."""
        self.faults_on = False
        self.nemesis.stop()
        self.network.heal()
        self.network.unclog_all(self.now)
        opts = self.options.network
        self.network.options = NetworkOptions(delay_min=opts.delay_min, delay_max=opts.delay_max)
        for sim in self.nodes.values():
            sim.crash_mid_turn = False
            if not sim.up:
                self._restart(sim)
        self.trace("HEAL: network healed, every node up, faults off")

    def run_liveness(self) -> None:
        wanted = self.options.liveness_ops
        # Each client finishes what it has open, then does `wanted` new operations, then stops.
        self._seq_max = {c.id: c.seq + wanted for c in self.workload.clients}
        # The bound scales with the election timeout: a few elections may be needed to settle.
        bound = max(self.options.liveness_steps_max, 30 * self.options.election_tick)
        for _ in range(bound):
            self.step()
            self.stats.liveness_steps += 1
            served = all(
                c.request is None and c.seq >= self._seq_max[c.id] for c in self.workload.clients
            )
            if served and self.converged() is None:
                self.workload.enabled = False
                return
        problem = self.converged() or "clients still waiting: " + ", ".join(
            c.request.describe() for c in self.workload.clients if c.request is not None
        )
        raise LivenessError(f"no convergence {bound} steps after heal: {problem}")

    def converged(self) -> str | None:
        """None if every group has one leader and every member applied all it committed."""
        for group in self.groups:
            leader = self.leader_of(group)
            if leader is None:
                return f"g{group} has no leader"
            raw = leader.node.raw(group)
            if raw.log.committed != raw.log.last_index():
                return f"g{group} leader n{leader.id} has uncommitted entries"
            for member in (*raw.voters, *raw.learners):
                node = self.nodes[member].node
                if not node.has_group(group):
                    return f"g{group} member n{member} lacks the group"
                if node.applied_index(group) != raw.log.committed:
                    return (
                        f"g{group} n{member} applied {node.applied_index(group)} "
                        f"< leader commit {raw.log.committed}"
                    )
                if node.raw(group).leader_id != leader.id:
                    return f"g{group} n{member} follows {node.raw(group).leader_id}"
        return None

    # -- final checks ----------------------------------------------------------------------------

    def final_checks(self) -> None:
        for group in self.groups:
            self._check_replicas(group)
        self._check_acked_writes()
        result = check_history(self.workload.history())
        if not result.ok:
            raise InvariantError("linearizability", result.describe())

    def _members(self, group: int) -> list[tuple[int, RawNode, KVStateMachine]]:
        leader = self.leader_of(group)
        assert leader is not None
        raw = leader.node.raw(group)
        out = []
        for member in sorted((*raw.voters, *raw.learners)):
            node = self.nodes[member].node
            machine = node.state_machine(group)
            assert isinstance(machine, KVStateMachine)
            out.append((member, node.raw(group), machine))
        return out

    def _check_replicas(self, group: int) -> None:
        members = self._members(group)
        first_id, _, first = members[0]
        for member, _, machine in members[1:]:
            if machine.snapshot() != first.snapshot():
                raise InvariantError(
                    "replicas diverged",
                    f"g{group}: n{member} state {machine.data} != n{first_id} state {first.data}",
                )

    def _check_acked_writes(self) -> None:
        for command in self.workload.acked_writes:
            group = group_of_key(command.key, self.options.groups)
            for member, _, machine in self._members(group):
                if machine.sessions.get(command.client, 0) < command.seq:
                    raise InvariantError(
                        "acknowledged write lost",
                        f"n{member} g{group} lacks c{command.client}#{command.seq} "
                        f"{command.kind.value}({command.key},{command.value!r})",
                    )


def _kv_factory(group: int) -> StateMachine:
    return KVStateMachine()
