"""`wukongim simulate`: run the deterministic cluster simulator over many seeds."""

from __future__ import annotations


def main(*, seeds: int, first_seed: int, seed: int | None, steps: int | None) -> int:
    raise SystemExit("the simulator is not implemented yet")
