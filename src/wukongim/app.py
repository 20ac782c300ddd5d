"""Composition root: builds every object of a node and owns its lifetime."""

from __future__ import annotations

from wukongim.config import Config


def run(config: Config) -> int:
    raise SystemExit(f"wukongim serve is not implemented yet (data dir {config.data_dir})")
