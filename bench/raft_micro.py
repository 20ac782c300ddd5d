"""CPU cost of the Raft core alone: 3 `RawNode`s in one process, no disk, no sockets.

Messages are encoded and decoded as on the wire (`encode_message` / `decode_message`) and
delivered directly; the "store" keeps nothing. Each round the leader proposes a batch, then
every node takes its Ready, "sends" its messages and advances, until the batch is committed
on the leader. Prints µs per committed entry (all three nodes together, codec included) for
batch sizes 1, 10 and 100, and the codec's µs per message with 1 and 100 entries.

    python -m bench.raft_micro [--entries 20000] [--repeat 3] [--profile BATCH]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import time
from collections.abc import Callable

from wukongim.raft import (
    ConfState,
    Entry,
    EntryKind,
    Message,
    MessageType,
    RaftConfig,
    RawNode,
    RestoreState,
    Role,
    decode_message,
    encode_message,
)

GROUP = 1
IDS = (1, 2, 3)
PAYLOAD = b"v" * 100


class Cluster:
    def __init__(self) -> None:
        config = RaftConfig()
        conf = ConfState(voters=IDS)
        self.nodes = {
            n: RawNode(n, GROUP, config, random.Random(n), RestoreState(conf_state=conf))
            for n in IDS
        }
        self.inbox: dict[int, list[bytes]] = {n: [] for n in IDS}
        self.applied = dict.fromkeys(IDS, 0)

    def turn(self, n: int) -> None:
        node = self.nodes[n]
        inbox = self.inbox[n]
        if inbox:
            msgs, self.inbox[n] = inbox, []
            for data in msgs:
                node.step(decode_message(data))
        if not node.has_ready():
            return
        rd = node.ready()
        for m in rd.messages:
            self.inbox[m.to].append(encode_message(m))
        if rd.committed_entries:
            self.applied[n] = rd.committed_entries[-1].index
        node.advance(rd)

    def elect(self) -> RawNode:
        leader = self.nodes[1]
        leader.campaign()
        for _ in range(20):
            for n in IDS:
                self.turn(n)
        assert leader.role == Role.LEADER
        return leader


def per_entry_us(total: int, batch: int) -> float:
    """µs of CPU per entry committed on the leader and applied on all three nodes."""
    cluster = Cluster()
    leader = cluster.elect()
    datas = [PAYLOAD] * batch
    done = 0
    t0 = time.process_time()
    while done < total:
        # batch 1 takes the single-entry path, as the node layer does per proposal
        last = leader.propose(PAYLOAD) if batch == 1 else leader.propose_batch(datas) + batch - 1
        while min(cluster.applied.values()) < last:
            for n in IDS:
                cluster.turn(n)
        done += batch
    return (time.process_time() - t0) / done * 1e6


def codec_us(n_entries: int, loops: int) -> tuple[float, float]:
    """µs per message for encode and decode of a MsgApp carrying `n_entries` entries."""
    entries = tuple(Entry(1000 + i, 5, EntryKind.NORMAL, PAYLOAD) for i in range(n_entries))
    msg = Message(MessageType.MSG_APP, GROUP, 1, 2, 5, 5, 999, entries, 998)
    data = encode_message(msg)
    assert decode_message(data) == msg
    enc = _time(lambda: encode_message(msg), loops)
    dec = _time(lambda: decode_message(data), loops)
    return enc, dec


def _time(fn: Callable[[], object], loops: int) -> float:
    t0 = time.process_time()
    for _ in range(loops):
        fn()
    return (time.process_time() - t0) / loops * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=20_000, help="entries per batch-size run")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure (median printed)")
    ap.add_argument("--profile", type=int, default=0, help="profile this batch size instead")
    args = ap.parse_args()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(per_entry_us, args.entries, args.profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    for batch in (1, 10, 100):
        runs = [per_entry_us(args.entries, batch) for _ in range(args.repeat)]
        print(f"batch {batch:>3}: {statistics.median(runs):7.2f} µs/committed entry (3 nodes)")
    for n in (1, 100):
        loops = 20_000 // n
        runs2 = [codec_us(n, loops) for _ in range(args.repeat)]
        enc = statistics.median(r[0] for r in runs2)
        dec = statistics.median(r[1] for r in runs2)
        print(
            f"MsgApp {n:>3} entries: encode {enc:7.2f} µs, decode {dec:7.2f} µs"
            f" ({enc / n:.2f} + {dec / n:.2f} µs/entry)"
        )


if __name__ == "__main__":
    main()
