"""A tiny synchronous in-memory network of RawNodes for the Raft unit tests.

Each node has a fake durable store (hard state, snapshot, entries) written from its Ready in
etcd's order, and a state machine that is just the list of applied NORMAL entry data. Messages
are queued FIFO and delivered by `stabilize()`; links can be cut, and a seeded rng can drop
messages. Nothing here reads a clock.
"""

from __future__ import annotations

import dataclasses
import random
import struct
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from wukongim.raft import (
    ConfState,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    RaftConfig,
    RawNode,
    ReadState,
    Ready,
    RestoreState,
    Role,
    Snapshot,
    decode_message,
    encode_message,
)

GROUP = 7


def pack_list(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


def unpack_list(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return out


@dataclass
class FakeStore:
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    entries: list[Entry] = field(default_factory=list)
    # the state machine: applied NORMAL data (no-ops skipped), and the applied index
    applied_data: list[bytes] = field(default_factory=list)
    applied_index: int = 0
    applied_entries: list[Entry] = field(default_factory=list)  # everything applied, for checks
    read_states: list[ReadState] = field(default_factory=list)

    def persist(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self.hard_state = rd.hard_state
        if rd.snapshot is not None:
            self.snapshot = rd.snapshot
            self.entries = []  # a received snapshot replaces the whole log
            self.applied_data = unpack_list(rd.snapshot.data)
            self.applied_index = rd.snapshot.meta.index
        if rd.entries:
            first = rd.entries[0].index
            self.entries = [e for e in self.entries if e.index < first]
            assert not self.entries or self.entries[-1].index == first - 1, "gap in stored log"
            self.entries.extend(rd.entries)

    def apply(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            assert e.index == self.applied_index + 1, (
                f"applied {e.index} after {self.applied_index}"
            )
            self.applied_index = e.index
            self.applied_entries.append(e)
            if e.kind == EntryKind.NORMAL and e.data:
                self.applied_data.append(e.data)

    def compact(self, snap: Snapshot) -> None:
        self.snapshot = snap
        self.entries = [e for e in self.entries if e.index > snap.meta.index]

    def restore_state(self, initial_conf: ConfState) -> RestoreState:
        return RestoreState(
            hard_state=self.hard_state,
            snapshot=self.snapshot,
            entries=tuple(self.entries),
            conf_state=initial_conf,
            applied=self.applied_index,
        )


class Network:
    def __init__(
        self,
        voters: Iterable[int],
        *,
        learners: Iterable[int] = (),
        config: RaftConfig | None = None,
        seed: int = 1,
        extra: Iterable[int] = (),
        codec: bool = False,
        restore: dict[int, RestoreState] | None = None,
    ) -> None:
        """`voters`/`learners` bootstrap the group; `extra` nodes start empty (joiners).
        `codec=True` sends every message through encode/decode. `restore` starts the given
        nodes from that durable state instead (with the group's `conf_state`)."""
        self.config = config or RaftConfig()
        self.rng = random.Random(seed)
        self.codec = codec
        conf = ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
        self.conf = conf
        self.nodes: dict[int, RawNode] = {}
        self.stores: dict[int, FakeStore] = {}
        for nid in (*conf.voters, *conf.learners):
            self.stores[nid] = FakeStore()
            self.nodes[nid] = self._make(nid, RestoreState(conf_state=conf))
        for nid in extra:
            self.stores[nid] = FakeStore()
            self.nodes[nid] = self._make(nid, RestoreState())
        for nid, rs in (restore or {}).items():
            self.stores[nid] = FakeStore(rs.hard_state, rs.snapshot, list(rs.entries))
            self.stores[nid].applied_index = rs.applied
            self.nodes[nid] = self._make(nid, dataclasses.replace(rs, conf_state=conf))
        self.queue: deque[Message] = deque()
        self.cut: set[tuple[int, int]] = set()
        self.down: set[int] = set()
        self.drop_rate = 0.0
        self.delivered = 0
        # a hook on every delivery: return the message (possibly rewritten) or None to drop it
        self.msg_filter: Callable[[Message], Message | None] | None = None
        self.trace: list[str] = []
        self.leaders_by_term: dict[int, int] = {}

    def _make(self, nid: int, rs: RestoreState) -> RawNode:
        return RawNode(nid, GROUP, self.config, random.Random(self.rng.random()), rs)

    # -- driving ---------------------------------------------------------------------------------

    def process(self, nid: int) -> bool:
        """Handle one Ready of `nid` in etcd's order. Returns True if there was one."""
        node = self.nodes[nid]
        if nid in self.down or not node.has_ready():
            return False
        rd = node.ready()
        store = self.stores[nid]
        store.persist(rd)
        for m in rd.messages:
            self.send(m)
        store.apply(rd.committed_entries)
        store.read_states.extend(rd.read_states)
        node.advance(rd)
        if node.role == Role.LEADER:
            seen = self.leaders_by_term.setdefault(node.term, nid)
            assert seen == nid, f"two leaders in term {node.term}: {seen} and {nid}"
        return True

    def send(self, m: Message) -> None:
        if self.codec:
            m = decode_message(encode_message(m))
        self.queue.append(m)

    def deliver_one(self) -> None:
        m = self.queue.popleft()
        if (
            (m.frm, m.to) in self.cut
            or m.to in self.down
            or m.frm in self.down
            or (self.drop_rate and self.rng.random() < self.drop_rate)
        ):
            return
        if self.msg_filter is not None:
            filtered = self.msg_filter(m)
            if filtered is None:
                return
            m = filtered
        self.delivered += 1
        self.nodes[m.to].step(m)

    def stabilize(self, max_steps: int = 100_000) -> None:
        """Process Readys and deliver messages until nothing is left to do."""
        for _ in range(max_steps):
            progressed = False
            for nid in self.nodes:
                progressed |= self.process(nid)
            if self.queue:
                self.deliver_one()
                progressed = True
            if not progressed:
                return
        raise AssertionError("network did not stabilize")

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].tick()

    def tick_all(self, n: int = 1, *, stabilize: bool = True) -> None:
        for _ in range(n):
            for nid in self.nodes:
                if nid not in self.down:
                    self.nodes[nid].tick()
            if stabilize:
                self.stabilize()

    def elect(self, nid: int) -> None:
        self.nodes[nid].campaign()
        self.stabilize()
        assert self.nodes[nid].role == Role.LEADER, self.nodes[nid].status().describe()

    def propose(self, nid: int, data: bytes) -> int:
        index = self.nodes[nid].propose(data)
        self.stabilize()
        return index

    # -- faults ----------------------------------------------------------------------------------

    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut.add((nid, other))
                self.cut.add((other, nid))

    def partition(self, *sides: Iterable[int]) -> None:
        side_of = {n: i for i, side in enumerate(sides) for n in side}
        for a in self.nodes:
            for b in self.nodes:
                if a != b and side_of.get(a) != side_of.get(b):
                    self.cut.add((a, b))

    def heal(self) -> None:
        self.cut.clear()

    def crash(self, nid: int) -> None:
        """Stop `nid`; its in-memory state is gone, its store stays (everything was synced)."""
        self.down.add(nid)

    def restart(self, nid: int) -> None:
        self.down.discard(nid)
        initial = self.conf if nid in (*self.conf.voters, *self.conf.learners) else ConfState()
        self.nodes[nid] = self._make(nid, self.stores[nid].restore_state(initial))

    def add_node(self, nid: int) -> None:
        self.stores[nid] = FakeStore()
        self.nodes[nid] = self._make(nid, RestoreState())

    def compact(self, nid: int) -> Snapshot:
        store = self.stores[nid]
        snap = self.nodes[nid].compact(store.applied_index, pack_list(store.applied_data))
        store.compact(snap)
        return snap

    # -- inspection ------------------------------------------------------------------------------

    def leader(self) -> int:
        leaders = [n for n, node in self.nodes.items() if node.role == Role.LEADER]
        if not leaders:
            return 0
        return max(leaders, key=lambda n: self.nodes[n].term)

    def data(self, nid: int) -> list[bytes]:
        return self.stores[nid].applied_data

    def check_logs_agree(self) -> None:
        """State machine safety: applied entries agree on every node, index by index."""
        by_index: dict[int, Entry] = {}
        for store in self.stores.values():
            for e in store.applied_entries:
                seen = by_index.setdefault(e.index, e)
                assert seen == e, f"applied entries differ at {e.index}: {seen} vs {e}"


def msg_types(msgs: Iterable[Message]) -> list[MessageType]:
    return [m.type for m in msgs]
