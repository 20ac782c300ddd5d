"""Swarm run of the simulator: `WUKONGIM_SIM_SEEDS` seeds (default 20), each drawing its own
cluster, timings and fault rates. A failure lists the seeds with the command that replays them."""

import os

import pytest

from wukongim.sim.runner import main, run_seed

pytestmark = pytest.mark.sim

SEEDS = int(os.environ.get("WUKONGIM_SIM_SEEDS", "20"))
FIRST_SEED = int(os.environ.get("WUKONGIM_SIM_FIRST_SEED", "0"))
CHUNK = 25  # seeds per test item: keeps each item far below the per-test timeout
CHUNKS = [
    range(start, min(start + CHUNK, FIRST_SEED + SEEDS))
    for start in range(FIRST_SEED, FIRST_SEED + SEEDS, CHUNK)
]


@pytest.mark.parametrize("seeds", CHUNKS, ids=lambda r: f"seeds{r.start}-{r.stop - 1}")
def test_swarm_seeds_pass(seeds: range) -> None:
    failures = [result.describe() for result in map(run_seed, seeds) if not result.ok]
    assert not failures, f"{len(failures)} of {len(seeds)} seeds failed:\n" + "\n".join(failures)


# Seeds that once failed, kept as regressions (docs/sim-findings.md).
REGRESSION_SEEDS = [
    30813,  # a removed node deposing leaders with pre-vote and check-quorum both off
]


@pytest.mark.parametrize("seed", REGRESSION_SEEDS)
def test_regression_seed_passes(seed: int) -> None:
    result = run_seed(seed)
    assert result.ok, result.describe()


def test_runner_prints_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(seeds=3, first_seed=0, seed=None, steps=150) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "3 passed, 0 failed"


def test_replay_prints_trace(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(seeds=1, first_seed=0, seed=5, steps=120) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[1:3] == ["start", "seed=5"]
    assert any(" recv g1 " in line for line in out)
    assert any(" complete c" in line for line in out)
    assert out[-1] == "seed=5 ok"
