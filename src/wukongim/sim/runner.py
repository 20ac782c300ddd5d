"""`wukongim simulate`: run the deterministic cluster simulator over many seeds.

`--seeds N --first-seed S` runs seeds S..S+N-1 and prints one line per failing seed, then
exactly `N passed, M failed`. `--seed S` replays one seed with a readable trace (one line per
event). Everything of a run comes from its seed, so a failing seed reproduces exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from wukongim.sim.cluster import LivenessError, SimCluster, SimStats, Trace
from wukongim.sim.invariants import InvariantError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SeedResult:
    seed: int
    ok: bool
    invariant: str = ""
    detail: str = ""
    stats: SimStats | None = None
    steps: int | None = None  # the --steps override the seed ran with, if any

    def describe(self) -> str:
        if self.ok:
            return f"seed={self.seed} ok"
        steps = "" if self.steps is None else f" --steps {self.steps}"
        return (
            f"seed={self.seed} FAILED: {self.invariant}: {self.detail} "
            f"reproduce with: wukongim simulate --seed {self.seed}{steps}"
        )


def run_seed(seed: int, *, steps: int | None = None, trace: Trace | None = None) -> SeedResult:
    """Run one seed; never raises for a failure of the system under test."""
    cluster = SimCluster(seed, steps=steps, trace=trace)
    try:
        stats = cluster.run()
    except (InvariantError, LivenessError) as exc:
        invariant = getattr(exc, "invariant", "invariant")
        detail = exc.detail if isinstance(exc, InvariantError) else str(exc)
        cluster.trace(f"FAILED {invariant}: {detail}")
        return SeedResult(seed, False, invariant, detail, cluster.stats, steps)
    except Exception as exc:  # seed boundary: a crash in the cores is a failure, not ours
        logger.debug("seed %d crashed", seed, exc_info=True)
        detail = f"{type(exc).__name__}: {exc}"
        cluster.trace(f"FAILED exception: {detail}")
        return SeedResult(seed, False, "exception", detail, cluster.stats, steps)
    return SeedResult(seed, ok=True, stats=stats, steps=steps)


def run_seeds(first_seed: int, seeds: int, *, steps: int | None = None) -> list[SeedResult]:
    return [run_seed(seed, steps=steps) for seed in range(first_seed, first_seed + seeds)]


def main(*, seeds: int, first_seed: int, seed: int | None, steps: int | None) -> int:
    if seed is not None:
        return _replay(seed, steps)
    failed = 0
    total = SimStats()
    for result in (run_seed(s, steps=steps) for s in range(first_seed, first_seed + seeds)):
        if result.stats is not None:
            total.add(result.stats)
        if not result.ok:
            failed += 1
            print(result.describe(), flush=True)
    print(f"coverage: {total.describe()}")
    print(f"{seeds - failed} passed, {failed} failed")
    return 1 if failed else 0


def _replay(seed: int, steps: int | None) -> int:
    result = run_seed(seed, steps=steps, trace=print)
    if result.stats is not None:
        print(f"stats: {result.stats.describe()}")
    print(result.describe())
    return 0 if result.ok else 1
