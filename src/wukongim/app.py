"""Composition root: builds every object of a node and owns its lifetime.

`run(config)` is `wukongim serve`: uvloop, then `start`, serve until SIGINT/SIGTERM, `stop`.
`start(config)` is the in-process form for tests: it returns a `RunningApp` with the bound ports
(port 0 in the config picks a free one).

Shutdown order: stop accepting (listeners), close the client sessions, let the replicator finish
the round it has taken (its proposals become durable or fail), drain the group committer, close
the raft log, then the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import sys
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from wukongim.api.web_app import ApiServices, make_api_app
from wukongim.chat.ids import SnowflakeIds
from wukongim.chat.state_machine import ChatConfig, ChatStateMachine
from wukongim.clock import Clock, SystemClock
from wukongim.config import Config
from wukongim.server.delivery import Delivery
from wukongim.server.gateway import Gateway
from wukongim.server.gateway_tcp import start_tcp_gateway
from wukongim.server.gateway_ws import make_ws_app
from wukongim.server.group_commit import GroupCommitter
from wukongim.server.presence import Presence
from wukongim.server.replicator import LocalReplicator
from wukongim.server.send_path import SendPath
from wukongim.server.sessions import SessionRegistry
from wukongim.server.timers import run_sweeps
from wukongim.store.raftlog import RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore

log = logging.getLogger(__name__)

# The fsync thread needs the GIL 3-4 times per group commit (take the batch, finish, post the
# result); each time the busy loop thread holds it, the fsync thread waits up to one interval.
# The interval only matters while another thread waits, so a short one costs nothing otherwise.
GIL_SWITCH_INTERVAL_S = 0.0001
# The hot path allocates a few container objects per message that die young; the default gen-0
# threshold (700) runs a collection every few dozen messages, each scanning the young objects.
GC_GEN0_THRESHOLD = 10_000
PROFILE_ENV = "WUKONGIM_PROFILE"  # `wukongim serve` writes a cProfile dump to this path at exit
LOCAL_GROUP = 1  # the one data group of a single node (group 0 is the controller's)
SHUTDOWN_TIMEOUT_S = 15.0
HTTP_DRAIN_S = 2.0  # how long HTTP requests in progress may finish at shutdown


def split_addr(addr: str) -> tuple[str, int]:
    """'host:port' (host may be empty or bracketed IPv6) -> (host, port)."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


@dataclass
class RunningApp:
    """A started node. `stop()` shuts it down; the ports are the bound ones."""

    config: Config
    tcp_port: int
    ws_port: int
    http_port: int
    machine: ChatStateMachine
    replicator: LocalReplicator
    presence: Presence
    registry: SessionRegistry
    delivery: Delivery
    _stop: asyncio.Event = field(repr=False)
    _supervisor: asyncio.Task[None] = field(repr=False)

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        self._stop.set()
        async with asyncio.timeout(SHUTDOWN_TIMEOUT_S):
            await self._supervisor

    async def wait_stopped(self) -> None:
        await asyncio.shield(self._supervisor)


def _site_port(runner: web.AppRunner) -> int:
    return int(runner.addresses[0][1])


@dataclass(frozen=True, slots=True)
class _Core:
    """The node without its listeners: storage, state machine, replicator, client services."""

    machine: ChatStateMachine
    replicator: LocalReplicator
    registry: SessionRegistry
    presence: Presence
    delivery: Delivery
    send_path: SendPath
    gateway: Gateway


def _open_storage(
    config: Config, cleanup: contextlib.AsyncExitStack
) -> tuple[RocksKVStore, RocksRaftLogStore, GroupCommitter]:
    """The node's RocksDB, its raft log and the group committer; closed by `cleanup`."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    kv = RocksKVStore.open(config.data_dir / "db")
    cleanup.callback(kv.close)  # exit callbacks run last-in first-out: the database goes last
    log_store = RocksRaftLogStore(kv, fsync=config.fsync)
    cleanup.callback(log_store.close)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wk-fsync")
    cleanup.callback(executor.shutdown, wait=True)
    committer = GroupCommitter(log_store, executor, fsync=config.fsync)

    async def drain() -> None:
        with contextlib.suppress(Exception):  # a failed sync was logged where it happened
            await committer.drain()
        log.info("storage closed after %d fsyncs", committer.sync_count)

    cleanup.push_async_callback(drain)
    return kv, log_store, committer


def _build_core(config: Config, clock: Clock, cleanup: contextlib.AsyncExitStack) -> _Core:
    kv, log_store, committer = _open_storage(config, cleanup)
    machine = ChatStateMachine(
        kv, ChatConfig(whitelist_off_of_person=config.whitelist_off_of_person, group_id=LOCAL_GROUP)
    )
    replicator = LocalReplicator(log_store, committer, machine, group=LOCAL_GROUP)
    replicator.recover()
    registry = SessionRegistry(
        auth_idle_timeout_s=config.auth_idle_timeout_s, idle_timeout_s=config.conn_idle_time_s
    )
    presence = Presence()
    delivery = Delivery(
        presence,
        registry,
        replicator,
        clock,
        group=LOCAL_GROUP,
        retry_interval_s=config.recv_retry_interval_s,
        retry_max=config.recv_retry_max,
    )
    send_path = SendPath(
        replicator,
        machine,
        delivery,
        clock,
        SnowflakeIds(config.node_id % 1024),
        group=LOCAL_GROUP,
    )
    gateway = Gateway(
        config,
        clock=clock,
        registry=registry,
        presence=presence,
        auth=machine,
        send_path=send_path,
        delivery=delivery,
    )
    return _Core(machine, replicator, registry, presence, delivery, send_path, gateway)


@dataclass(frozen=True, slots=True)
class _Listeners:
    tcp: asyncio.Server
    ws: web.AppRunner
    http: web.AppRunner
    api: ApiServices


async def _start_listeners(
    config: Config, clock: Clock, core: _Core, cleanup: contextlib.AsyncExitStack
) -> _Listeners:
    tcp_host, tcp_port = split_addr(config.tcp_addr)
    tcp = await start_tcp_gateway(tcp_host, tcp_port, core.gateway.new_session)
    cleanup.callback(tcp.close)
    ws = web.AppRunner(
        make_ws_app(core.gateway.new_session, jsonrpc=not config.disable_jsonrpc),
        access_log=None,
        shutdown_timeout=HTTP_DRAIN_S,
    )
    await ws.setup()
    cleanup.push_async_callback(ws.cleanup)
    await web.TCPSite(ws, *split_addr(config.ws_addr), reuse_address=True).start()
    api = ApiServices(
        config=config,
        clock=clock,
        machine=core.machine,
        replicator=core.replicator,
        send_path=core.send_path,
        presence=core.presence,
        gateway=core.gateway,
        group=LOCAL_GROUP,
    )
    http = web.AppRunner(make_api_app(api), access_log=None, shutdown_timeout=HTTP_DRAIN_S)
    await http.setup()
    cleanup.push_async_callback(http.cleanup)
    await web.TCPSite(http, *split_addr(config.http_addr), reuse_address=True).start()
    api.ports.update(
        tcp=int(tcp.sockets[0].getsockname()[1]), ws=_site_port(ws), http=_site_port(http)
    )
    return _Listeners(tcp, ws, http, api)


async def _supervise(
    core: _Core,
    listeners: _Listeners,
    sweeps: Coroutine[Any, Any, None],
    stop: asyncio.Event,
    cleanup: contextlib.AsyncExitStack,
) -> None:
    """Run the node's tasks until `stop`; then shut down in order (module docstring)."""
    async with cleanup, asyncio.TaskGroup() as tasks:
        tasks.create_task(core.replicator.run(), name="replicator")
        sweeper = tasks.create_task(sweeps, name="sweeps")
        await stop.wait()
        listeners.tcp.close()
        core.registry.abort_all()  # TCP and WebSocket sessions alike
        await listeners.ws.cleanup()
        await listeners.http.cleanup()  # requests in progress may still propose
        sweeper.cancel()
        core.replicator.stop()  # finishes the rounds in flight
    log.info("node stopped")


async def start(config: Config, *, clock: Clock | None = None) -> RunningApp:
    """Open the store, recover, start every listener; return once serving."""
    clock = clock or SystemClock()
    cleanup = contextlib.AsyncExitStack()
    try:
        core = _build_core(config, clock, cleanup)
        listeners = await _start_listeners(config, clock, core, cleanup)
    except BaseException:
        await cleanup.aclose()
        raise
    stop = asyncio.Event()
    sweeps = run_sweeps(config, clock, core.registry, core.delivery)
    supervisor = asyncio.create_task(
        _supervise(core, listeners, sweeps, stop, cleanup), name="wukongim"
    )
    ports = listeners.api.ports
    running = RunningApp(
        config=config,
        tcp_port=ports["tcp"],
        ws_port=ports["ws"],
        http_port=ports["http"],
        machine=core.machine,
        replicator=core.replicator,
        presence=core.presence,
        registry=core.registry,
        delivery=core.delivery,
        _stop=stop,
        _supervisor=supervisor,
    )
    log.info(
        "serving: tcp %d, ws %d, http %d, data %s",
        running.tcp_port,
        running.ws_port,
        running.http_port,
        config.data_dir,
    )
    return running


async def _serve(config: Config) -> int:
    running = await start(config)
    # Everything built at startup lives as long as the node: keep it out of every collection.
    gc.collect()
    gc.freeze()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, running.request_stop)
    await running.wait_stopped()
    return 0


def _raise_open_files_limit() -> None:
    """One descriptor per client connection: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open files limit from %d: %s", soft, exc)


def run(config: Config) -> int:
    """`wukongim serve`: serve until SIGINT/SIGTERM; return the exit code."""
    import uvloop  # noqa: PLC0415 - only the real server needs it

    _raise_open_files_limit()
    # With the default 5 ms switch interval a busy event loop would delay every group commit
    # by several intervals (see GIL_SWITCH_INTERVAL_S).
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])
    profile_path = os.environ.get(PROFILE_ENV)
    if not profile_path:
        return uvloop.run(_serve(config))
    return _run_profiled(config, profile_path, uvloop.run)


def _run_profiled(config: Config, path: str, runner: Any) -> int:
    """Serve under cProfile (event loop thread only) and dump the stats to `path` at exit."""
    import cProfile  # noqa: PLC0415 - diagnostics only

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return int(runner(_serve(config)))
    finally:
        profiler.disable()
        profiler.dump_stats(path)
        log.info("profile written to %s", path)
