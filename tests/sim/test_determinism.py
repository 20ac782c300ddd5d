"""The same seed gives the identical run: trace, history and statistics."""

import pytest

from wukongim.sim.cluster import SimCluster
from wukongim.sim.runner import run_seed

pytestmark = pytest.mark.sim


def _trace(seed: int, steps: int) -> list[str]:
    lines: list[str] = []
    result = run_seed(seed, steps=steps, trace=lines.append)
    assert result.ok, result.describe()
    return lines


@pytest.mark.parametrize("seed", [3, 11])
def test_same_seed_same_trace(seed: int) -> None:
    first = _trace(seed, 250)
    second = _trace(seed, 250)
    assert len(first) > 100
    assert first == second


def test_different_seeds_differ() -> None:
    assert _trace(3, 150) != _trace(4, 150)


def test_same_seed_same_history() -> None:
    a, b = SimCluster(21, steps=200), SimCluster(21, steps=200)
    a.run()
    b.run()
    assert a.workload.history() == b.workload.history()
    assert a.stats == b.stats


def test_trace_does_not_depend_on_hash_seed() -> None:
    """Run in fresh interpreters with different PYTHONHASHSEED: a set of strings iterated
    anywhere in the simulated cluster would change the trace."""
    import hashlib  # noqa: PLC0415
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = (
        "import hashlib; from wukongim.sim.runner import run_seed; lines = [];"
        "r = run_seed(7, steps=200, trace=lines.append); assert r.ok;"
        "print(hashlib.sha256('\\n'.join(lines).encode()).hexdigest())"
    )
    digests = set()
    for hash_seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    expected = hashlib.sha256("\n".join(_trace(7, 200)).encode()).hexdigest()
    assert digests == {expected}
