"""Process helpers for the benches: free ports, /proc readings, a server child, loadgen children."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def now() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now (they may be taken again before use; good enough here)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid` (from /proc/<pid>/stat)."""
    user, system = cpu_split(pid)
    return user + system


def cpu_split(pid: int) -> tuple[float, float]:
    """(utime, stime) of every thread of `pid` in seconds (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def core_ticks(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU from /proc/stat, to show load from other processes."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:]]
                idle = values[3] + values[4]  # idle + iowait
                return sum(values) - idle, sum(values)
    return 0, 0


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def raise_nofile() -> None:
    """Lift the soft open-files limit to the hard one (children inherit it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pinned(core: int | None, argv: list[str]) -> list[str]:
    if core is None or not Path("/usr/bin/taskset").exists():
        return argv
    return ["taskset", "-c", str(core), *argv]


def wait_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = now() + timeout_s
    while now() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not open within {timeout_s} s")


@dataclass
class Server:
    """`python -m wukongim serve` on free loopback ports, in its own temp data dir."""

    proc: subprocess.Popen[bytes]
    tcp_port: int
    ws_port: int
    http_port: int
    log_path: Path

    @classmethod
    def start(cls, work_dir: Path, *, core: int | None, fsync: bool, extra: list[str]) -> Server:
        tcp, ws, http, manager, cluster = free_ports(5)
        argv = [
            sys.executable,
            "-m",
            "wukongim",
            "serve",
            "--data-dir",
            str(work_dir / "data"),
            "--tcp-addr",
            f"127.0.0.1:{tcp}",
            "--ws-addr",
            f"127.0.0.1:{ws}",
            "--http-addr",
            f"127.0.0.1:{http}",
            "--manager-addr",
            f"127.0.0.1:{manager}",
            "--log-level",
            "WARNING",
            *([] if fsync else ["--no-fsync"]),
            *extra,
        ]
        env = dict(os.environ, WK_CLUSTER_ADDR=f"127.0.0.1:{cluster}")
        log_path = work_dir / "server.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                pinned(core, argv),
                cwd=work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(proc=proc, tcp_port=tcp, ws_port=ws, http_port=http, log_path=log_path)
        try:
            wait_port("127.0.0.1", tcp, proc, timeout_s=60)
        except BaseException:
            server.stop()
            raise
        return server

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10)


def stop_process(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LoadGen:
    """A `python -m bench._loadgen` child speaking JSON lines."""

    def __init__(self, config: dict[str, Any], core: int | None) -> None:
        argv = [sys.executable, "-m", "bench._loadgen", json.dumps(config)]
        self.proc = subprocess.Popen(
            pinned(core, argv),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._buffer = bytearray()

    def read_event(self, timeout_s: float = 120.0) -> dict[str, Any]:
        """The next JSON line from the child; TimeoutError if none comes within timeout_s."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = now() + timeout_s
        while b"\n" not in self._buffer:
            left = deadline - now()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"load generator sent nothing for {timeout_s} s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                code = self.proc.wait()
                raise RuntimeError(f"load generator exited with code {code}")
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        event: dict[str, Any] = json.loads(line)
        return event

    def write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        stop_process(self.proc, grace_s=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
