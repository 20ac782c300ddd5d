"""Command line: parse arguments, build a Config, hand over. Nothing else lives here."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wukongim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start a single node on its embedded defaults")
    serve.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    serve.add_argument("--data-dir", type=Path, default=None, help="default ./wukongim-data")
    serve.add_argument("--tcp-addr", default=None, help="WKProto over TCP (default 0.0.0.0:5100)")
    serve.add_argument("--ws-addr", default=None, help="WKProto over WebSocket (0.0.0.0:5200)")
    serve.add_argument("--http-addr", default=None, help="HTTP API (default 0.0.0.0:5001)")
    serve.add_argument("--manager-addr", default=None, help="metrics/dashboard (0.0.0.0:5300)")
    serve.add_argument("--node-id", type=int, default=None)
    serve.add_argument("--token-auth", action="store_true", default=None, help="tokenAuthOn")
    serve.add_argument("--no-fsync", action="store_true", help="unsafe: skip fsync (benchmarks)")
    serve.add_argument("--log-level", default="INFO")

    sim = sub.add_parser("simulate", help="run the deterministic cluster simulator")
    sim.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    sim.add_argument("--first-seed", type=int, default=0)
    sim.add_argument("--seed", type=int, default=None, help="replay one seed with a trace")
    sim.add_argument("--steps", type=int, default=None, help="override steps per seed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.command == "serve":
        from wukongim.app import run as run_app  # noqa: PLC0415 - keep `simulate` light
        from wukongim.config import load_config  # noqa: PLC0415

        logging.basicConfig(
            level=args.log_level.upper(),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        config = load_config(
            args.config,
            overrides={
                "data_dir": args.data_dir,
                "tcp_addr": args.tcp_addr,
                "ws_addr": args.ws_addr,
                "http_addr": args.http_addr,
                "manager_addr": args.manager_addr,
                "node_id": args.node_id,
                "token_auth_on": args.token_auth,
                "fsync": False if args.no_fsync else None,
            },
        )
        return run_app(config)
    if args.command == "simulate":
        from wukongim.sim.runner import main as run_simulator  # noqa: PLC0415

        return run_simulator(
            seeds=args.seeds, first_seed=args.first_seed, seed=args.seed, steps=args.steps
        )
    return 2
