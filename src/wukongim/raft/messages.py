"""Raft types: entries, hard state, configuration, snapshots, messages, and their binary codec.

Rules of this file:
- Types and pure functions only: no I/O, no clock, no imports from other wukongim layers.
- Every type is a frozen slotted dataclass with a one-line `describe()` for traces.
- `Entry` has the same field names as `wukongim.store.interfaces.LogEntry` (index, term, kind,
  data) so the node layer converts with `LogEntry(e.index, e.term, e.kind, e.data)`.
- The codec (`encode_message` / `decode_message`) is little-endian `struct` with fixed headers;
  `decode_message` raises `DecodeError` (a `ValueError`) on any malformed input, nothing else.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field


class MessageType(enum.IntEnum):
    """Wire message types. Numbering is part of the node-to-node wire format: append only."""

    MSG_APP = 1
    MSG_APP_RESP = 2
    MSG_VOTE = 3
    MSG_VOTE_RESP = 4
    MSG_PRE_VOTE = 5
    MSG_PRE_VOTE_RESP = 6
    MSG_HEARTBEAT = 7
    MSG_HEARTBEAT_RESP = 8
    MSG_SNAP = 9
    MSG_TIMEOUT_NOW = 10
    MSG_READ_INDEX = 11
    MSG_READ_INDEX_RESP = 12
    # A follower forwards a leadership-transfer request to its leader: `index` = target node id.
    MSG_TRANSFER_LEADER = 13


class EntryKind(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0  # also promotes an existing learner
    ADD_LEARNER = 1  # a new non-voting member (demoting a voter is refused)
    REMOVE_NODE = 2


# Context marker on MSG_VOTE of a leadership-transfer election: it overrides the leader lease.
CAMPAIGN_TRANSFER = b"transfer"

_MSG_TYPES = {int(t): t for t in MessageType}
_ENTRY_KINDS = {int(k): k for k in EntryKind}
_CC_TYPES = {int(t): t for t in ConfChangeType}


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. A NORMAL entry with empty data is the leader's no-op: skip it on apply."""

    index: int
    term: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""

    def describe(self) -> str:
        kind = "cc" if self.kind == EntryKind.CONF_CHANGE else "n"
        return f"{self.term}/{self.index}{kind}[{len(self.data)}B]"


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be durable before any message produced alongside it is sent."""

    term: int = 0
    vote: int = 0
    commit: int = 0

    def describe(self) -> str:
        return f"hs(term={self.term} vote={self.vote} commit={self.commit})"


@dataclass(frozen=True, slots=True)
class ConfState:
    """A group's membership. Single-server changes only: `voters_outgoing` and `learners_next`
    stay empty (reserved for joint consensus, kept for a stable wire format)."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    voters_outgoing: tuple[int, ...] = ()
    learners_next: tuple[int, ...] = ()

    def describe(self) -> str:
        return f"conf(voters={list(self.voters)} learners={list(self.learners)})"


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A membership change, proposed with `RawNode.propose_conf_change` and applied by the core
    when its entry is applied (at `advance`). `context` is opaque (e.g. the node's address)."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    def describe(self) -> str:
        return f"cc({self.type.name} {self.node_id})"


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf: ConfState = field(default_factory=ConfState)

    def describe(self) -> str:
        return f"snapmeta({self.term}/{self.index} {self.conf.describe()})"


@dataclass(frozen=True, slots=True)
class Snapshot:
    meta: SnapshotMeta
    data: bytes = b""

    def describe(self) -> str:
        return f"snap({self.meta.term}/{self.meta.index} {len(self.data)}B)"


@dataclass(frozen=True, slots=True)
class Message:
    """One Raft message. Field use per type (as etcd):

    - MSG_APP: (log_term, index) = the entry just before `entries`; `commit` = leader commit.
    - MSG_APP_RESP: `index` = last matching index; on reject `index` = the rejected MsgApp index,
      (reject_hint, log_term) = a hint (index, term) of where the follower's log may match.
    - MSG_VOTE / MSG_PRE_VOTE: (log_term, index) = candidate's last entry; `term` = the term
      campaigned for; context CAMPAIGN_TRANSFER on a leadership-transfer election.
    - MSG_HEARTBEAT: `commit`, `context` (read-index round); MSG_HEARTBEAT_RESP echoes `context`.
    - MSG_READ_INDEX: `context` = request id; MSG_READ_INDEX_RESP adds `index` = read index.
    - MSG_TRANSFER_LEADER: `index` = target node id.
    """

    type: MessageType
    group: int = 0
    frm: int = 0
    to: int = 0
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    reject: bool = False
    reject_hint: int = 0
    snapshot: Snapshot | None = None
    context: bytes = b""

    def describe(self) -> str:
        parts = [
            f"g{self.group} {self.frm}->{self.to} {self.type.name} t{self.term}",
            f"lt{self.log_term} i{self.index} c{self.commit}",
        ]
        if self.reject:
            parts.append(f"REJECT(hint={self.reject_hint})")
        if self.entries:
            first, last = self.entries[0], self.entries[-1]
            parts.append(f"ents[{len(self.entries)}: {first.index}..{last.index}]")
        if self.snapshot is not None:
            parts.append(self.snapshot.describe())
        if self.context:
            parts.append(f"ctx={self.context[:16].hex()}")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the local applied index reaches `index`."""

    index: int
    context: bytes

    def describe(self) -> str:
        return f"read(i{self.index} ctx={self.context[:16].hex()})"


# ---------------------------------------------------------------------------------------------
# Binary codec
# ---------------------------------------------------------------------------------------------


class DecodeError(ValueError):
    """Malformed bytes from a peer."""


# type, flags, group, frm, to, term, log_term, index, commit, reject_hint, n_entries, ctx_len
_HEADER = struct.Struct("<BBQQQQQQQQII")
_ENTRY = struct.Struct("<QQBI")  # index, term, kind, data_len
_SNAP = struct.Struct("<QQIQ")  # index, term, conf_len, data_len
_CONF_COUNTS = struct.Struct("<IIII")
_FLAG_REJECT = 1
_FLAG_SNAPSHOT = 2


def encode_conf_state(cs: ConfState) -> bytes:
    groups = (cs.voters, cs.learners, cs.voters_outgoing, cs.learners_next)
    ids = [i for g in groups for i in g]
    counts = _CONF_COUNTS.pack(*(len(g) for g in groups))
    return counts + struct.pack(f"<{len(ids)}Q", *ids)


def decode_conf_state(data: bytes | memoryview) -> ConfState:
    try:
        counts = _CONF_COUNTS.unpack_from(data, 0)
        total = sum(counts)
        if len(data) != _CONF_COUNTS.size + 8 * total:
            raise DecodeError("conf state: bad length")
        ids = struct.unpack_from(f"<{total}Q", data, _CONF_COUNTS.size)
    except struct.error as exc:
        raise DecodeError(f"conf state: {exc}") from exc
    out: list[tuple[int, ...]] = []
    pos = 0
    for n in counts:
        out.append(tuple(ids[pos : pos + n]))
        pos += n
    return ConfState(out[0], out[1], out[2], out[3])


_CC = struct.Struct("<BQ")


def encode_conf_change(cc: ConfChange) -> bytes:
    return _CC.pack(cc.type, cc.node_id) + cc.context


def decode_conf_change(data: bytes | memoryview) -> ConfChange:
    try:
        kind, node_id = _CC.unpack_from(data, 0)
    except struct.error as exc:
        raise DecodeError(f"conf change: {exc}") from exc
    cc_type = _CC_TYPES.get(kind)
    if cc_type is None:
        raise DecodeError(f"conf change: unknown type {kind}")
    return ConfChange(cc_type, node_id, bytes(data[_CC.size :]))


def encode_message(m: Message) -> bytes:
    flags = (_FLAG_REJECT if m.reject else 0) | (_FLAG_SNAPSHOT if m.snapshot is not None else 0)
    parts = [
        _HEADER.pack(
            m.type,
            flags,
            m.group,
            m.frm,
            m.to,
            m.term,
            m.log_term,
            m.index,
            m.commit,
            m.reject_hint,
            len(m.entries),
            len(m.context),
        ),
        m.context,
    ]
    pack_entry = _ENTRY.pack
    for e in m.entries:
        parts.append(pack_entry(e.index, e.term, e.kind, len(e.data)))
        parts.append(e.data)
    if m.snapshot is not None:
        meta = m.snapshot.meta
        conf = encode_conf_state(meta.conf)
        parts.append(_SNAP.pack(meta.index, meta.term, len(conf), len(m.snapshot.data)))
        parts.append(conf)
        parts.append(m.snapshot.data)
    return b"".join(parts)


def decode_message(data: bytes | memoryview) -> Message:
    """Decode one whole message (the transport frames messages). Raises DecodeError."""
    buf = memoryview(data)
    try:
        (mtype, flags, group, frm, to, term, log_term, index, commit, hint, n_ents, ctx_len) = (
            _HEADER.unpack_from(buf, 0)
        )
        pos = _HEADER.size
        context = _take(buf, pos, ctx_len)
        pos += ctx_len
        entries: list[Entry] = []
        unpack_entry = _ENTRY.unpack_from
        entry_size = _ENTRY.size
        for _ in range(n_ents):
            e_index, e_term, e_kind, e_len = unpack_entry(buf, pos)
            pos += entry_size
            kind = _ENTRY_KINDS.get(e_kind)
            if kind is None:
                raise DecodeError(f"unknown entry kind {e_kind}")
            entries.append(Entry(e_index, e_term, kind, _take(buf, pos, e_len)))
            pos += e_len
        snapshot = None
        if flags & _FLAG_SNAPSHOT:
            s_index, s_term, conf_len, data_len = _SNAP.unpack_from(buf, pos)
            pos += _SNAP.size
            conf = decode_conf_state(_take(buf, pos, conf_len))
            pos += conf_len
            snap_data = _take(buf, pos, data_len)
            pos += data_len
            snapshot = Snapshot(SnapshotMeta(s_index, s_term, conf), snap_data)
    except struct.error as exc:
        raise DecodeError(f"truncated message: {exc}") from exc
    if pos != len(buf):
        raise DecodeError(f"{len(buf) - pos} trailing bytes")
    msg_type = _MSG_TYPES.get(mtype)
    if msg_type is None or flags & ~(_FLAG_REJECT | _FLAG_SNAPSHOT):
        raise DecodeError(f"unknown message type {mtype} or flags {flags}")
    return Message(
        msg_type,
        group,
        frm,
        to,
        term,
        log_term,
        index,
        tuple(entries),
        commit,
        bool(flags & _FLAG_REJECT),
        hint,
        snapshot,
        context,
    )


def _take(buf: memoryview, pos: int, n: int) -> bytes:
    if pos + n > len(buf):
        raise DecodeError("truncated message")
    return bytes(buf[pos : pos + n])
