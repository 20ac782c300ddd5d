"""One-to-one chat throughput and latency against a real `wukongim serve` process.

N sender/recipient pairs over TCP; each pair keeps W messages in flight (closed loop), or all
pairs together start --rate messages/s (open loop). 100-byte payloads, encryption on (it is
mandatory), fsync on unless --no-fsync. The server runs pinned to core 0 and the load generator
to core 1 (`taskset`). Each run starts a fresh server in a fresh temp dir and measures over a
fixed window after a warm-up:

  msgs/s        messages completed in the window (SEND -> SENDACK -> RECV -> RECVACK)
  cpu us/msg    server utime+stime over the window (/proc/<pid>/stat) / completed messages
  sendack p50/p99, recv p50/p99   SEND -> SENDACK and SEND -> RECV, messages started in window
  rss MB        server VmRSS at the end of the window
  loadgen cpu   the load generator's share of its core (it must stay well below 100%)
  start lag     rate mode: how late the generator started messages (already inside latency)
  busy          each core's total use by ALL processes: on a shared machine, when it is far
                above what the server and the generator use, others compete and msg/s and
                latency are not capacity figures (cpu us/msg is the most robust one)

The load generator (bench/_loadgen.py) is not WKClient: measured here WKClient costs ~63 us of
client CPU per message, about as much as the server, so one core could not saturate the server.
The lean generator patches clientSeq, clientMsgNo and msgKey into a SEND frame the codec encoded
once (same key, IV and plaintext give the same ciphertext) and costs ~20-30 us per message.
The payload is 100 bytes of plaintext JSON (152 bytes on the wire once encrypted).

  python -m bench.one_to_one                       # 100 pairs, window 16, 10 s, 3 runs
  python -m bench.one_to_one --window 16,1         # both windows
  python -m bench.one_to_one --rate 10000          # fixed rate: p99 SENDACK at 10,000 msg/s
  python -m bench.one_to_one --idle-conns 10000    # also hold 10,000 idle connections
  python -m bench.one_to_one --ws                  # the same load over WebSocket
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._procs import (
    LoadGen,
    Server,
    core_ticks,
    cpu_seconds,
    cpu_split,
    now,
    raise_nofile,
    rss_mb,
)

PAYLOAD_BYTES = 100
IDLE_CONNS_PER_PROC = 5000
START_DELAY_S = 0.3
DRAIN_S = 5.0


KEEP_LOG = os.environ.get("ONE_TO_ONE_SERVER_LOG", "")  # copy the server's log to this path
TIMELINE = os.environ.get("ONE_TO_ONE_TIMELINE", "") == "1"  # print completions per second


def payload_text(size: int) -> str:
    """A JSON text message of exactly `size` bytes (the JS SDK's payload convention)."""
    head, tail = '{"type":1,"content":"', '"}'
    return head + "x" * max(0, size - len(head) - len(tail)) + tail


def sendack_p99_by_second(result: dict[str, Any]) -> list[float]:
    """p99 SEND->SENDACK (ms) of the messages sent in each second of the window."""
    by_second: dict[int, list[int]] = {}
    for start_ms, us in zip(
        result.get("sendack_start_ms", []), result.get("sendack_us", []), strict=True
    ):
        by_second.setdefault(start_ms // 1000, []).append(us)
    return [round(percentile(v, 0.99) / 1000, 1) for _, v in sorted(by_second.items())]


def percentile(samples: list[int], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


@dataclass(frozen=True)
class Options:
    pairs: int
    window: int
    seconds: float
    warmup: float
    rate: float
    idle_conns: int
    version: int
    fsync: bool
    server_core: int | None
    load_core: int | None
    server_args: list[str]
    ws: bool = False  # the load connects over WebSocket (:5200) instead of TCP (:5100)


@dataclass
class RunResult:
    msgs_per_s: float
    cpu_us_per_msg: float
    sys_us_per_msg: float  # the kernel's part of cpu_us_per_msg
    sendack_p50_ms: float
    sendack_p99_ms: float
    recv_p50_ms: float
    recv_p99_ms: float
    rss_mb: float
    loadgen_cpu_pct: float
    start_lag_p99_ms: float
    server_core_busy_pct: float
    server_cpu_pct: float
    load_core_busy_pct: float
    started: int
    failed: int
    duplicates: int
    unexpected: int
    inflight_at_end: int
    idle: dict[str, float]

    def line(self) -> str:
        text = (
            f"{self.msgs_per_s:9.0f} msg/s  cpu {self.cpu_us_per_msg:7.1f} us/msg  "
            f"sendack p50 {self.sendack_p50_ms:7.2f} p99 {self.sendack_p99_ms:7.2f} ms  "
            f"recv p50 {self.recv_p50_ms:7.2f} p99 {self.recv_p99_ms:7.2f} ms  "
            f"rss {self.rss_mb:6.1f} MB  loadgen cpu {self.loadgen_cpu_pct:3.0f}%"
        )
        if self.start_lag_p99_ms >= 0.05:
            text += f"  start lag p99 {self.start_lag_p99_ms:.1f} ms"
        text += (
            f"\n      server used {self.server_cpu_pct:.0f}% of a core"
            f" (kernel {self.sys_us_per_msg:.1f} us/msg); busy (all processes):"
            f" server core {self.server_core_busy_pct:.0f}%,"
            f" load core {self.load_core_busy_pct:.0f}%"
        )
        problems = []
        if self.failed:
            problems.append(f"{self.failed} not-ok SENDACKs")
        if self.duplicates:
            problems.append(f"{self.duplicates} duplicate RECVs")
        if self.unexpected:
            problems.append(f"{self.unexpected} unexpected frames")
        if self.inflight_at_end:
            problems.append(f"{self.inflight_at_end} unfinished")
        if problems:
            text += "  !! " + ", ".join(problems)
        if self.idle:
            text += (
                f"\n      idle conns {self.idle['conns']:.0f}: rss {self.idle['rss_before_mb']:.1f}"
                f" -> {self.idle['rss_after_mb']:.1f} MB "
                f"({self.idle['kb_per_conn']:.1f} KB/conn), "
                f"connect cpu {self.idle['cpu_us_per_conn']:.0f} us/conn"
            )
        return text


def open_idle(server: Server, opts: Options) -> tuple[list[LoadGen], dict[str, float]]:
    """Open opts.idle_conns authenticated connections from several load-generator processes."""
    pid = server.proc.pid
    rss_before, cpu_before = rss_mb(pid), cpu_seconds(pid)
    gens: list[LoadGen] = []
    for first in range(0, opts.idle_conns, IDLE_CONNS_PER_PROC):
        config = {
            "mode": "idle",
            "host": "127.0.0.1",
            "port": server.tcp_port,
            "version": opts.version,
            "first_conn": first,
            "conns": min(IDLE_CONNS_PER_PROC, opts.idle_conns - first),
        }
        gens.append(LoadGen(config, opts.load_core))
    opened = sum(int(gen.read_event()["conns"]) for gen in gens)
    time.sleep(1.0)  # let the server settle (allocations, GC) before reading RSS
    rss_after, cpu_after = rss_mb(pid), cpu_seconds(pid)
    idle = {
        "conns": float(opened),
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "kb_per_conn": (rss_after - rss_before) * 1024 / max(1, opened),
        "cpu_us_per_conn": (cpu_after - cpu_before) * 1e6 / max(1, opened),
    }
    return gens, idle


def one_run(opts: Options) -> RunResult:
    work = Path(tempfile.mkdtemp(prefix="wukongim-bench-"))
    server: Server | None = None
    gens: list[LoadGen] = []
    try:
        server = Server.start(work, core=opts.server_core, fsync=opts.fsync, extra=opts.server_args)
        idle: dict[str, float] = {}
        if opts.idle_conns:
            gens, idle = open_idle(server, opts)
        load = LoadGen(
            {
                "mode": "load",
                "host": "127.0.0.1",
                "port": server.ws_port if opts.ws else server.tcp_port,
                "ws": opts.ws,
                "version": opts.version,
                "first_pair": 0,
                "pairs": opts.pairs,
                "window": opts.window,
                "rate": opts.rate,
                "payload": payload_text(PAYLOAD_BYTES),
            },
            opts.load_core,
        )
        gens.append(load)
        load.read_event()  # ready
        t0 = now() + START_DELAY_S
        window_start = t0 + opts.warmup
        window_end = window_start + opts.seconds
        load.write(
            {
                "t0": t0,
                "window_start": window_start,
                "window_end": window_end,
                "stop_at": window_end + DRAIN_S,
            }
        )
        pid = server.proc.pid
        cores = (opts.server_core or 0, opts.load_core or 0)
        time.sleep(max(0.0, window_start - now()))
        cpu_start = cpu_split(pid)
        ticks_start = [core_ticks(c) for c in cores]
        time.sleep(max(0.0, window_end - now()))
        cpu_end = cpu_split(pid)
        ticks_end = [core_ticks(c) for c in cores]
        rss = rss_mb(pid)
        result = load.read_event()
        busy = [
            100 * (end[0] - start[0]) / max(1, end[1] - start[1])
            for start, end in zip(ticks_start, ticks_end, strict=True)
        ]
        user_s, sys_s = cpu_end[0] - cpu_start[0], cpu_end[1] - cpu_start[1]
        if TIMELINE:
            print(f"      completed per second: {result.get('per_second')}", flush=True)
            print(f"      SENDACK p99 ms by second sent: {sendack_p99_by_second(result)}")
        return summarize(result, opts, (user_s, sys_s), rss, idle, busy)
    except BaseException:
        if server is not None:
            print(f"server log tail:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        for gen in gens:
            gen.stop()
        if server is not None:
            server.stop()
            if KEEP_LOG:  # e.g. with `-- --log-level INFO`: rounds and fsyncs at shutdown
                shutil.copy(server.log_path, KEEP_LOG)
        shutil.rmtree(work, ignore_errors=True)


def summarize(
    result: dict[str, Any],
    opts: Options,
    server_cpu: tuple[float, float],
    rss: float,
    idle: dict[str, float],
    busy: list[float],
) -> RunResult:
    done = int(result["completed_in_window"])
    server_cpu_s = server_cpu[0] + server_cpu[1]
    reasons = {int(k): v for k, v in result["reasons"].items()}
    return RunResult(
        msgs_per_s=done / opts.seconds,
        cpu_us_per_msg=server_cpu_s * 1e6 / done if done else float("nan"),
        sys_us_per_msg=server_cpu[1] * 1e6 / done if done else float("nan"),
        sendack_p50_ms=percentile(result["sendack_us"], 0.50) / 1000,
        sendack_p99_ms=percentile(result["sendack_us"], 0.99) / 1000,
        recv_p50_ms=percentile(result["recv_us"], 0.50) / 1000,
        recv_p99_ms=percentile(result["recv_us"], 0.99) / 1000,
        rss_mb=rss,
        loadgen_cpu_pct=100 * float(result["loadgen_cpu_s"]) / opts.seconds,
        start_lag_p99_ms=percentile(result["start_lag_us"], 0.99) / 1000,
        server_core_busy_pct=busy[0],
        server_cpu_pct=100 * server_cpu_s / opts.seconds,
        load_core_busy_pct=busy[1],
        started=int(result["started"]),
        failed=sum(v for k, v in reasons.items() if k != 1),
        duplicates=int(result["duplicates"]),
        unexpected=int(result["unexpected"]),
        inflight_at_end=int(result["inflight_at_end"]),
        idle=idle,
    )


def median_line(results: list[RunResult]) -> str:
    def med(attr: str) -> float:
        return float(statistics.median(float(getattr(r, attr)) for r in results))

    return (
        f"{med('msgs_per_s'):9.0f} msg/s  cpu {med('cpu_us_per_msg'):7.1f} us/msg  "
        f"sendack p50 {med('sendack_p50_ms'):7.2f} p99 {med('sendack_p99_ms'):7.2f} ms  "
        f"recv p50 {med('recv_p50_ms'):7.2f} p99 {med('recv_p99_ms'):7.2f} ms  "
        f"rss {med('rss_mb'):6.1f} MB"
    )


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[int]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument(
        "--window",
        default=None,
        help="messages in flight per pair, or a list: 16,1 (default 16; 1000 with --rate)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=0.0, help="fixed total msg/s (open loop)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-conns", type=int, default=0)
    parser.add_argument("--version", type=int, default=5, help="WKProto version of the clients")
    parser.add_argument("--no-fsync", action="store_true", help="pass --no-fsync to the server")
    parser.add_argument(
        "--ws", action="store_true", help="load over WebSocket (:5200), one frame per message"
    )
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--json", action="store_true", help="also print results as JSON")
    parser.add_argument("server_args", nargs="*", help="extra `wukongim serve` args after --")
    args = parser.parse_args(argv)
    if args.window is None:
        args.window = "1000" if args.rate else "16"
    windows = [int(w) for w in str(args.window).split(",") if w]
    return args, windows


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args, windows = parse_args(argv)
    raise_nofile()
    # Stop cleanly (children, temp dirs) on Ctrl-C and on SIGTERM, also when started in the
    # background by a shell that ignores SIGINT.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    all_results: dict[str, list[dict[str, Any]]] = {}
    for window in windows:
        opts = Options(
            pairs=args.pairs,
            window=window,
            seconds=args.seconds,
            warmup=args.warmup,
            rate=args.rate,
            idle_conns=args.idle_conns,
            version=args.version,
            fsync=not args.no_fsync,
            server_core=None if args.no_pin else args.server_core,
            load_core=None if args.no_pin else args.load_core,
            server_args=list(args.server_args),
            ws=args.ws,
        )
        mode = f"rate {args.rate:.0f}/s" if args.rate else "closed loop"
        print(
            f"== one_to_one: {opts.pairs} pairs{' over WebSocket' if opts.ws else ''}, "
            f"window {window}, {mode}, "
            f"{PAYLOAD_BYTES} B payload, v{opts.version}, encryption on, "
            f"fsync {'on' if opts.fsync else 'off'}, {opts.warmup:g} s warm-up + "
            f"{opts.seconds:g} s window, server core {opts.server_core}, "
            f"load core {opts.load_core}",
            flush=True,
        )
        results = []
        for i in range(args.runs):
            result = one_run(opts)
            results.append(result)
            print(f"  run {i + 1}: {result.line()}", flush=True)
        print(f"  median: {median_line(results)}", flush=True)
        all_results[f"window={window}"] = [r.__dict__ for r in results]
    if args.json:
        print(json.dumps(all_results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
