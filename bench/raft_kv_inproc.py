"""CPU cost per op of the Raft stack without sockets or disk: 3 `node.Node`s in one process,
memory log stores, messages handed over directly (encoded and decoded as on the wire), batches of
proposals per turn. Splits the time into leader / follower turns and the wire codec.

    python -m bench.raft_kv_inproc [--ops 100000] [--batch 256] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import tempfile
import time
from pathlib import Path

from bench.raft_kv_client import put_body
from bench.raft_kv_server import KVMachine
from wukongim.node.node import Node, NodeConfig
from wukongim.protocol import nodewire as nw
from wukongim.raft import Role, decode_message, encode_message
from wukongim.store.interfaces import RaftLogStore
from wukongim.store.memory import MemoryRaftLogStore
from wukongim.store.raftlog import LOG_CF, RocksRaftLogStore
from wukongim.store.rocks import RocksKVStore

GROUP = 1


def build(rocks_dir: str | None) -> dict[int, Node]:
    nodes = {}
    for n in (1, 2, 3):
        store: RaftLogStore = MemoryRaftLogStore()
        if rocks_dir:
            kv = RocksKVStore.open(Path(rocks_dir) / f"n{n}", [LOG_CF])
            store = RocksRaftLogStore(kv, fsync=False)
        node = Node(
            n,
            store,
            lambda g: KVMachine(),
            random.Random(n),
            NodeConfig(snapshot_entries=0),
        )
        node.create_group(GROUP, [1, 2, 3])
        nodes[n] = node
    return nodes


def turn(node: Node, inbox: dict[int, list[bytes]]) -> int:
    """One loop turn of `node`: returns applied entries. Outbound messages go through the
    nodewire batch codec into the destination's inbox."""
    batch = node.collect_ready()
    if not batch:
        return 0
    node.persist(batch)
    node.store.sync()
    out = node.after_sync(batch)
    for dst, msgs in out.messages.items():
        wire = nw.encode_batch([nw.Message(0, 1, 0, encode_message(m)) for m in msgs])
        inbox[dst].append(wire)
    return out.applied_count


def deliver(node: Node, inbox: list[bytes]) -> None:
    decoder = nw.NodeWireDecoder()
    for wire in inbox:
        for frame in decoder.receive_data(wire):
            assert isinstance(frame, nw.BatchMessage)
            for m in frame.messages:
                node.step(decode_message(m.content))
    inbox.clear()


def run(ops: int, batch: int, rocks_dir: str | None) -> None:
    nodes = build(rocks_dir)
    inbox: dict[int, list[bytes]] = {1: [], 2: [], 3: []}
    nodes[1].raw(GROUP).campaign()
    for _ in range(50):
        for n, node in nodes.items():
            deliver(node, inbox[n])
            turn(node, inbox)
    assert nodes[1].status(GROUP).role == Role.LEADER
    leader = nodes[1]
    value = b"v" * 100
    bodies = [put_body(b"key%08d" % i, value) for i in range(batch)]
    spent = {1: 0.0, 2: 0.0, 3: 0.0}
    applied = 0
    proposed = 0
    while applied < ops:
        t0 = time.process_time()
        if proposed < ops:
            for body in bodies:
                leader.propose(GROUP, body)
            proposed += batch
        deliver(leader, inbox[1])
        applied += turn(leader, inbox)
        spent[1] += time.process_time() - t0
        for n in (2, 3):
            t0 = time.process_time()
            deliver(nodes[n], inbox[n])
            turn(nodes[n], inbox)
            spent[n] += time.process_time() - t0
    total = sum(spent.values())
    print(
        f"{applied} ops in batches of {batch}: leader {spent[1] / applied * 1e6:.1f} µs/op, "
        f"followers {spent[2] / applied * 1e6:.1f} + {spent[3] / applied * 1e6:.1f} µs/op, "
        f"total {total / applied * 1e6:.1f} µs/op"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--rocks", action="store_true", help="RocksDB log stores (no fsync)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="raft_kv_inproc_") as tmp:
        rocks_dir = tmp if args.rocks else None
        if args.profile:
            profiler = cProfile.Profile()
            profiler.runcall(run, args.ops, args.batch, rocks_dir)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        else:
            run(args.ops, args.batch, rocks_dir)


if __name__ == "__main__":
    main()
