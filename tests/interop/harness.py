"""Drive the official JS SDK (npm wukongimjssdk 1.0.4) from pytest.

Each simulated user is one Node process running ``sdk_user.mjs`` (bundled with esbuild, because
the SDK ships extensionless ES modules), controlled over JSON lines on stdin/stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

INTEROP_DIR = Path(__file__).resolve().parent
EVENT_WAIT_S = 15.0

Event = dict[str, Any]


def node_binary() -> str | None:
    return shutil.which("node")


def ensure_node_modules() -> None:
    """Install the pinned npm packages when CI (or a developer) has not run `npm ci` yet."""
    if (INTEROP_DIR / "node_modules" / "wukongimjssdk").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("node_modules missing and npm not found: run `npm ci` in tests/interop")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=INTEROP_DIR,
        check=True,
        timeout=300,
    )


def build_driver(out_dir: Path) -> Path:
    """Bundle sdk_user.mjs with the SDK and `ws` into one CommonJS file; return its path."""
    ensure_node_modules()
    out = out_dir / "sdk_user.cjs"
    esbuild = INTEROP_DIR / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [
            str(esbuild),
            str(INTEROP_DIR / "sdk_user.mjs"),
            "--bundle",
            "--platform=node",
            "--format=cjs",
            "--log-level=warning",
            f"--outfile={out}",
        ],
        cwd=INTEROP_DIR,
        check=True,
        timeout=120,
    )
    return out


@dataclass
class SdkUser:
    """One JS SDK user in its own Node process. Use `SdkUser.spawn` and `close`."""

    uid: str
    process: asyncio.subprocess.Process
    events: list[Event] = field(default_factory=list)
    stderr_tail: list[str] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def spawn(cls, driver: Path, uid: str) -> SdkUser:
        node = node_binary()
        assert node is not None
        process = await asyncio.create_subprocess_exec(
            node,
            str(driver),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        user = cls(uid=uid, process=process)
        user._readers = [
            asyncio.create_task(user._read_stdout()),
            asyncio.create_task(user._read_stderr()),
        ]
        await user.wait_for(lambda e: e["ev"] == "ready")
        return user

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.stderr_tail.append(f"[stdout] {line}")
                continue
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()
        async with self._changed:
            self.events.append({"ev": "exit"})
            self._changed.notify_all()

    async def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())
            del self.stderr_tail[:-200]

    async def command(self, **cmd: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.process.stdin.drain()

    def of_kind(self, kind: str) -> list[Event]:
        return [e for e in self.events if e["ev"] == kind]

    async def wait_for(
        self, predicate: Callable[[Event], bool], timeout_s: float = EVENT_WAIT_S
    ) -> Event:
        """Return the first event (past or future) matching predicate, or fail after timeout."""
        return (await self.wait_count(predicate, 1, timeout_s))[0]

    async def wait_count(
        self, predicate: Callable[[Event], bool], count: int, timeout_s: float = EVENT_WAIT_S
    ) -> list[Event]:
        """Wait until at least `count` events match predicate; return all the matches."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                while True:
                    matches = [e for e in self.events if predicate(e)]
                    if len(matches) >= count:
                        return matches
                    if any(e["ev"] == "exit" for e in self.events):
                        break
                    await self._changed.wait()
        except TimeoutError:
            pass
        raise AssertionError(
            f"{self.uid}: waited for {count} matching events; have "
            f"{sum(1 for e in self.events if predicate(e))}.\nevents: {self.events[-20:]}\n"
            f"node stderr: {self.stderr_tail[-20:]}"
        )

    async def connect(self, addr: str, token: str = "token") -> None:
        await self.command(op="connect", addr=addr, uid=self.uid, token=token)
        status = await self.wait_for(lambda e: e["ev"] == "status" and e["name"] != "Connecting")
        assert status["name"] == "Connected", f"{self.uid}: connect failed: {status}"

    async def send(self, channel_id: str, channel_type: int, text: str) -> None:
        """Hand a text message to the SDK (ChatManager.send). Its `sent` event follows."""
        await self.command(op="send", channelId=channel_id, channelType=channel_type, text=text)

    async def close(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.command(op="exit")
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for task in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def sdk_users(driver: Path, uids: list[str]) -> AsyncIterator[dict[str, SdkUser]]:
    users: dict[str, SdkUser] = {}
    try:
        for uid in uids:
            users[uid] = await SdkUser.spawn(driver, uid)
        yield users
    finally:
        for user in users.values():
            await user.close()


@dataclass(frozen=True)
class ServerAddrs:
    host: str
    tcp_port: int
    ws_port: int
    http_port: int

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.ws_port}"

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"


@contextlib.asynccontextmanager
async def running_server(data_dir: Path) -> AsyncIterator[ServerAddrs]:
    """Our server in-process (wukongim.app.start) on 127.0.0.1 with kernel-chosen ports."""
    from wukongim.app import start  # noqa: PLC0415 - keep collection cheap
    from wukongim.config import Config  # noqa: PLC0415

    config = Config(
        data_dir=data_dir / "wukongim-data",
        tcp_addr="127.0.0.1:0",
        ws_addr="127.0.0.1:0",
        http_addr="127.0.0.1:0",
        manager_addr="127.0.0.1:0",
        cluster_addr="127.0.0.1:0",
    )
    app = await start(config)
    try:
        yield ServerAddrs("127.0.0.1", app.tcp_port, app.ws_port, app.http_port)
    finally:
        await app.stop()
