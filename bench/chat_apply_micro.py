"""Micro-benchmark: CPU µs per applied SendMessage in the chat state machine.

Run: python bench/chat_apply_micro.py [n]
Prints µs/send for person and group sends, one command per entry and 100 per entry, over the
memory KV twin (and RocksDB in a temp dir), plus the codec cost per command.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Iterator

from wukongim.chat.commands import SendMessage, UpsertChannel, decode_commands, encode_commands
from wukongim.chat.state_machine import ChatStateMachine
from wukongim.store.interfaces import KVStore
from wukongim.store.memory import MemoryKVStore
from wukongim.store.rocks import RocksKVStore


def make_sends(n: int, channel: str, ctype: int, senders: list[str]) -> list[SendMessage]:
    return [
        SendMessage(
            senders[i % len(senders)],
            channel,
            ctype,
            f"{i:032x}0",
            b"x" * 100,
            1_000_000 + i,
            1_700_000_000,
            red_dot=True,
        )
        for i in range(n)
    ]


def run(kv: KVStore, n: int, batch: int, group: bool) -> float:
    sm = ChatStateMachine(kv)
    if group:
        members = tuple(f"m{i}" for i in range(200))
        sm.apply(1, [UpsertChannel("g", 2, subscribers=members)])
        sends = make_sends(n, "g", 2, list(members))
    else:
        sends = make_sends(n, "peer", 1, ["me"])
        sm.apply(1, [sends[0]])
    index = sm.applied_index()
    chunks = [sends[i : i + batch] for i in range(0, n, batch)]
    t0 = time.process_time()
    for chunk in chunks:
        index += 1
        sm.apply(index, chunk)
    return (time.process_time() - t0) / n * 1e6


def codec(n: int) -> tuple[float, float]:
    sends = make_sends(100, "peer", 1, ["me"])
    data = encode_commands(sends)
    rounds = n // 100
    t0 = time.process_time()
    for _ in range(rounds):
        encode_commands(sends)
    t1 = time.process_time()
    for _ in range(rounds):
        decode_commands(data)
    t2 = time.process_time()
    return (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6


def make_rocks() -> KVStore:
    return RocksKVStore.open(tempfile.mkdtemp(prefix="chat-bench-"), ["chat"])


class _NullBatch:
    def put(self, cf: str, key: bytes, value: bytes) -> None:
        pass

    def delete(self, cf: str, key: bytes) -> None:
        pass

    def delete_range(self, cf: str, start: bytes, end: bytes) -> None:
        pass


class NullKV:
    """Discards writes: isolates the state machine's own CPU cost."""

    def batch(self) -> _NullBatch:
        return _NullBatch()

    def write(self, batch: object, *, sync: bool = False) -> None:
        pass

    def get(self, cf: str, key: bytes) -> bytes | None:
        return None

    def scan(
        self,
        cf: str,
        start: bytes,
        end: bytes,
        *,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        return iter(())

    def close(self) -> None:
        pass


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    stores: list[tuple[str, Callable[[], KVStore]]] = [
        ("null", NullKV),
        ("memory", MemoryKVStore),
        ("rocksdb", make_rocks),
    ]
    for name, make in stores:
        for group in (False, True):
            for batch in (1, 100):
                us = run(make(), n, batch, group)
                kind = "group(200)" if group else "person"
                print(f"{name:8} {kind:11} batch={batch:<4} {us:6.2f} µs/send")
    enc, dec = codec(n)
    print(f"codec: encode {enc:.2f} µs/cmd, decode {dec:.2f} µs/cmd (batches of 100)")


if __name__ == "__main__":
    main()
