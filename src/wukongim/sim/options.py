"""Simulation options, drawn from the seed ("swarm testing", as TigerBeetle's VOPR does): every
seed picks its own cluster size, timings and fault rates, so different seeds stress different
corners instead of all running one average mix.

Rules of this file: all randomness from the `random.Random` handed in; rates are per step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from wukongim.sim.network import NetworkOptions
from wukongim.sim.workload import WorkloadOptions


@dataclass(frozen=True, slots=True)
class FaultOptions:
    crash: float = 0.0  # per node per step
    crash_mid_turn: float = 0.0  # fraction of crashes that hit between persist and sync
    restart_ticks_min: int = 5
    restart_ticks_max: int = 40
    partition: float = 0.0  # per step: start a partition
    partition_ticks_max: int = 80
    clog: float = 0.0  # per step: start a swizzle-clog
    clog_ticks_max: int = 60
    membership: float = 0.0  # per step: propose a membership change
    transfer: float = 0.0  # per step: ask a leader to transfer leadership

    def describe(self) -> str:
        return (
            f"crash={self.crash:.4f} mid_turn={self.crash_mid_turn:.2f} "
            f"restart={self.restart_ticks_min}..{self.restart_ticks_max} "
            f"partition={self.partition:.4f} clog={self.clog:.4f} "
            f"membership={self.membership:.4f} transfer={self.transfer:.4f}"
        )


@dataclass(frozen=True, slots=True)
class SimOptions:
    nodes: int = 3
    voters: int = 3  # initial voters of every group (nodes beyond are spares)
    groups: int = 1
    election_tick: int = 10
    heartbeat_tick: int = 2
    snapshot_entries: int = 0
    clock_drift: float = 0.0  # each node skips up to this share of its ticks (slow clocks)
    pre_vote: bool = True
    check_quorum: bool = True
    # Flow-control knobs of the core, small values force its paging and throttling paths.
    max_inflight_msgs: int = 256
    max_size_per_msg: int = 1 << 20
    max_committed_size_per_ready: int = 8 << 20
    safety_steps: int = 500
    liveness_steps_max: int = 400
    liveness_ops: int = 2  # operations each client must complete after the heal
    network: NetworkOptions = field(default_factory=NetworkOptions)
    faults: FaultOptions = field(default_factory=FaultOptions)
    workload: WorkloadOptions = field(default_factory=WorkloadOptions)
    lying_sync: float = 0.0  # broken-disk negative tests only

    def describe(self) -> str:
        return (
            f"nodes={self.nodes} voters={self.voters} groups={self.groups} "
            f"election={self.election_tick} heartbeat={self.heartbeat_tick} "
            f"pre_vote={self.pre_vote} check_quorum={self.check_quorum} "
            f"drift={self.clock_drift:.2f} inflight={self.max_inflight_msgs} "
            f"msg_bytes={self.max_size_per_msg} apply_bytes={self.max_committed_size_per_ready} "
            f"snapshot_every={self.snapshot_entries} steps={self.safety_steps}\n"
            f"  network: {self.network.describe()}\n  faults: {self.faults.describe()}\n"
            f"  workload: {self.workload.describe()}"
        )


def _maybe(rng: random.Random, low: float, high: float, off: float = 0.3) -> float:
    """A rate in [low, high], or 0 with probability `off` (swarm: some faults stay off)."""
    return 0.0 if rng.random() < off else rng.uniform(low, high)


def draw_options(rng: random.Random, *, steps: int | None = None) -> SimOptions:
    nodes = rng.choice((3, 3, 4, 5))
    voters = 3 if nodes <= 4 else rng.choice((3, 5))
    election_tick = rng.randint(8, 16)
    network = NetworkOptions(
        delay_min=1,
        delay_max=rng.randint(1, 4),
        drop=_maybe(rng, 0.0, 0.08),
        duplicate=_maybe(rng, 0.0, 0.05),
    )
    faults = FaultOptions(
        crash=_maybe(rng, 0.0005, 0.004),
        crash_mid_turn=rng.uniform(0.0, 0.6),
        restart_ticks_min=rng.randint(1, 10),
        restart_ticks_max=rng.randint(10, 80),
        partition=_maybe(rng, 0.002, 0.02),
        partition_ticks_max=rng.randint(20, 120),
        clog=_maybe(rng, 0.002, 0.02),
        clog_ticks_max=rng.randint(10, 80),
        membership=_maybe(rng, 0.004, 0.02, off=0.4),
        transfer=_maybe(rng, 0.002, 0.01, off=0.5),
    )
    workload = WorkloadOptions(
        clients=rng.randint(2, 5),
        keys=rng.randint(1, 5),
        timeout_ticks=election_tick * rng.randint(2, 4),
        think_ticks_max=rng.randint(0, 6),
        read_ratio=rng.uniform(0.2, 0.6),
        append_ratio=rng.uniform(0.2, 0.6),
    )
    return SimOptions(
        nodes=nodes,
        voters=voters,
        groups=rng.choice((1, 1, 2, 3)),
        election_tick=election_tick,
        heartbeat_tick=rng.randint(1, max(1, election_tick // 4)),
        snapshot_entries=rng.choice((0, rng.randint(8, 64))),
        clock_drift=_maybe(rng, 0.0, 0.3, off=0.5),
        pre_vote=rng.random() < 0.8,
        check_quorum=rng.random() < 0.8,
        max_inflight_msgs=rng.choice((256, 256, 8, 2, 1)),
        max_size_per_msg=rng.choice((1 << 20, 1 << 20, 256, 64, 1)),
        max_committed_size_per_ready=rng.choice((8 << 20, 8 << 20, 1024, 256)),
        safety_steps=steps if steps is not None else rng.randint(400, 900),
        network=network,
        faults=faults,
        workload=workload,
    )
