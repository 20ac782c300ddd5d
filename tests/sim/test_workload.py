"""The simulator's key-value state machine and its history recording."""

import random

from wukongim.sim.linearizability import PENDING, OpKind
from wukongim.sim.workload import Command, KVStateMachine, Workload, WorkloadOptions


def test_commands_round_trip() -> None:
    command = Command(3, 7, OpKind.APPEND, "k1", "3.7;")
    assert Command.decode(command.encode()) == command


def test_retried_command_applies_once() -> None:
    machine = KVStateMachine()
    append = Command(1, 1, OpKind.APPEND, "k", "a;").encode()
    assert machine.apply(1, append) == "ok"
    assert machine.apply(2, append) == "dup"
    assert machine.get("k") == "a;"
    # An older retry arriving after a newer command is not applied either.
    assert machine.apply(3, Command(1, 2, OpKind.PUT, "k", "b").encode()) == "ok"
    assert machine.apply(4, append) == "dup"
    assert machine.get("k") == "b"


def test_snapshot_round_trip() -> None:
    machine = KVStateMachine()
    machine.apply(1, Command(1, 1, OpKind.PUT, "x", "1").encode())
    machine.apply(2, Command(2, 5, OpKind.APPEND, "y", "z;").encode())
    copy = KVStateMachine()
    copy.restore(machine.snapshot())
    assert copy.data == machine.data
    assert copy.sessions == machine.sessions
    assert copy.snapshot() == machine.snapshot()
    copy.restore(b"")
    assert copy.data == {}


def test_history_has_open_requests_as_pending() -> None:
    workload = Workload(random.Random(1), WorkloadOptions(clients=2))
    first, second = workload.clients
    workload.next_request(first)
    workload.next_request(second)
    workload.complete(first, "v", now=5)
    history = workload.history()
    assert len(history) == 2
    assert history[0].ret != PENDING
    assert history[1].ret == PENDING
    assert history[0].call < history[1].call < history[0].ret
