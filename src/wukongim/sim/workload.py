"""The simulator's workload: a replicated key-value state machine and the clients that drive it.

Rules of this file: deterministic (one `random.Random` per workload, handed in); time is the
simulator's event counter; no I/O.

* `KVStateMachine` applies put / append commands. Each command carries (client, seq); the machine
  remembers each client's last seq and result, so a retried command applies at most once (the
  usual client-session table of a replicated state machine).
* `Client`s issue one operation at a time: put, append (through the log) and get (through
  read-index). A client that gets no answer before its timeout retries the SAME request at
  another node, forever: every operation eventually completes once the network heals, and
  the ones still open at the end enter the history as pending.
* Every invocation and completion is recorded as a numbered event; `history()` turns them into
  `linearizability.Operation`s for the checker.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

from wukongim.sim.linearizability import PENDING, Operation, OpKind

# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    client: int
    seq: int
    kind: OpKind  # PUT or APPEND
    key: str
    value: str

    def encode(self) -> bytes:
        return f"{self.client}|{self.seq}|{self.kind.value}|{self.key}|{self.value}".encode()

    @staticmethod
    def decode(data: bytes) -> Command:
        client, seq, kind, key, value = data.decode().split("|", 4)
        return Command(int(client), int(seq), OpKind(kind), key, value)


class KVStateMachine:
    """A replicated map of str -> str with a per-client deduplication table."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.sessions: dict[int, int] = {}  # client -> last applied seq
        self.applied_count = 0

    def apply(self, index: int, data: bytes) -> str:
        """Apply one committed command; returns "ok", or "dup" for a retry already applied."""
        command = Command.decode(data)
        if self.sessions.get(command.client, 0) >= command.seq:
            return "dup"
        self.sessions[command.client] = command.seq
        self.applied_count += 1
        if command.kind is OpKind.PUT:
            self.data[command.key] = command.value
        else:
            self.data[command.key] = self.data.get(command.key, "") + command.value
        return "ok"

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def snapshot(self) -> bytes:
        state = {
            "data": sorted(self.data.items()),
            "sessions": sorted(self.sessions.items()),
            "applied": self.applied_count,
        }
        return json.dumps(state, separators=(",", ":")).encode()

    def restore(self, data: bytes) -> None:
        if not data:
            self.data, self.sessions, self.applied_count = {}, {}, 0
            return
        state: dict[str, Any] = json.loads(data)
        self.data = {str(k): str(v) for k, v in state["data"]}
        self.sessions = {int(k): int(v) for k, v in state["sessions"]}
        self.applied_count = int(state["applied"])

    def fingerprint(self) -> int:
        return zlib.crc32(self.snapshot())


def group_of_key(key: str, groups: int) -> int:
    """Keys spread over the data groups 1..groups by crc32 (deterministic across runs)."""
    return 1 + zlib.crc32(key.encode()) % groups


# -- clients -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Request:
    """The operation a client has in flight."""

    client: int
    seq: int
    kind: OpKind
    key: str
    value: str
    call: int  # event number of the invocation
    node: int = 0  # node the current attempt went to
    deadline: int = 0  # tick after which the client retries elsewhere
    attempts: int = 0
    read_ctx: bytes = b""  # GET: the read-index context of the current attempt

    def command(self) -> Command:
        return Command(self.client, self.seq, self.kind, self.key, self.value)

    def describe(self) -> str:
        what = (
            f"get({self.key})"
            if self.kind is OpKind.GET
            else (f"{self.kind.value}({self.key},{self.value!r})")
        )
        return f"c{self.client}#{self.seq} {what}"


@dataclass(frozen=True, slots=True)
class WorkloadOptions:
    clients: int = 3
    keys: int = 3
    timeout_ticks: int = 30
    think_ticks_max: int = 4
    read_ratio: float = 0.4
    append_ratio: float = 0.4

    def describe(self) -> str:
        return (
            f"clients={self.clients} keys={self.keys} timeout={self.timeout_ticks} "
            f"reads={self.read_ratio:.2f} appends={self.append_ratio:.2f}"
        )


@dataclass(slots=True)
class Client:
    id: int
    seq: int = 0
    request: Request | None = None
    next_at: int = 0  # tick at which it starts its next operation
    leader_hint: int = 0


@dataclass(slots=True)
class Workload:
    """Clients, their requests and the history of events."""

    rng: random.Random
    options: WorkloadOptions
    clients: list[Client] = field(default_factory=list)
    events: int = 0
    operations: list[Operation] = field(default_factory=list)
    acked_writes: list[Command] = field(default_factory=list)
    enabled: bool = True

    def __post_init__(self) -> None:
        self.clients = [Client(id=index + 1) for index in range(self.options.clients)]

    def _event(self) -> int:
        self.events += 1
        return self.events

    def next_request(self, client: Client) -> Request:
        """Invoke a new operation for `client` (records the invocation)."""
        client.seq += 1
        key = f"k{self.rng.randrange(self.options.keys)}"
        roll = self.rng.random()
        if roll < self.options.read_ratio:
            kind, value = OpKind.GET, ""
        elif roll < self.options.read_ratio + self.options.append_ratio:
            kind, value = OpKind.APPEND, f"{client.id}.{client.seq};"
        else:
            kind, value = OpKind.PUT, f"{client.id}.{client.seq}"
        request = Request(client.id, client.seq, kind, key, value, call=self._event())
        client.request = request
        return request

    def complete(self, client: Client, output: str | None, now: int) -> Operation:
        """Record the completion of the client's request."""
        request = client.request
        assert request is not None
        op = Operation(
            client.id,
            request.kind,
            request.key,
            request.value,
            request.call,
            self._event(),
            output if request.kind is OpKind.GET else None,
        )
        self.operations.append(op)
        if request.kind is not OpKind.GET:
            self.acked_writes.append(request.command())
        client.request = None
        client.next_at = now + self.rng.randint(0, self.options.think_ticks_max)
        return op

    def history(self) -> list[Operation]:
        """Completed operations plus the open ones as pending."""
        ops = list(self.operations)
        for client in self.clients:
            request = client.request
            if request is not None:
                ops.append(
                    Operation(
                        client.id, request.kind, request.key, request.value, request.call, PENDING
                    )
                )
        return ops

    @property
    def open_requests(self) -> int:
        return sum(1 for client in self.clients if client.request is not None)
