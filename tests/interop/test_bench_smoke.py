"""Keep bench/one_to_one.py working: a tiny run against a real `wukongim serve` process.

The bench's lean load generator is a client of its own (precomputed SEND frames over the codec),
so this also checks the server against it: every message acknowledged with reason 1 and
delivered exactly once, with idle connections held at the same time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_one_to_one_bench_smoke() -> None:
    argv = [
        sys.executable,
        "-m",
        "bench.one_to_one",
        "--pairs=3",
        "--window=4",
        "--seconds=1",
        "--warmup=0.5",
        "--runs=1",
        "--idle-conns=20",
        "--no-pin",
        "--json",
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    (run,) = results["window=4"]
    assert run["msgs_per_s"] > 0
    assert run["failed"] == 0
    assert run["duplicates"] == 0
    assert run["unexpected"] == 0
    assert run["inflight_at_end"] == 0
    assert run["idle"]["conns"] == 20
