"""Raft types: entries, hard state, configuration, snapshots, messages, and their binary codec.

Rules of this file:
- Types and pure functions only: no I/O, no clock, no imports from other wukongim layers.
- Every type is a frozen slotted dataclass with a one-line `describe()` for traces.
- `Entry` has the same field names as `wukongim.store.interfaces.LogEntry` (index, term, kind,
  data) so the node layer converts with `LogEntry(e.index, e.term, e.kind, e.data)`.
- The codec (`encode_message` / `decode_message`) is little-endian `struct` with fixed headers:
  message header, context, the entries' fixed-size headers as one array, all entry data, then
  the snapshot. `decode_message` raises `DecodeError` (a `ValueError`) on any malformed input,
  nothing else.
- Hot paths build these frozen dataclasses with `make_entry` / `make_message` /
  `make_hard_state` (same result as the constructors, a fraction of the cost; see below).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
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
# Fast constructors for the hot paths
# ---------------------------------------------------------------------------------------------
# A frozen dataclass's __init__ sets every field through object.__setattr__, which costs several
# times a plain slot store (Message: 13 fields, ~5 µs on a busy core). The builders below are
# plain slotted classes with exactly the same slots: we fill one with fast slot stores, then
# retype it as the frozen class (CPython allows __class__ assignment between classes of
# identical layout). The result is indistinguishable from `Entry(...)` / `Message(...)`.


class _EntryBuilder:
    __slots__ = ("data", "index", "kind", "term")
    index: int
    term: int
    kind: EntryKind
    data: bytes


class _MessageBuilder:
    __slots__ = (
        "commit",
        "context",
        "entries",
        "frm",
        "group",
        "index",
        "log_term",
        "reject",
        "reject_hint",
        "snapshot",
        "term",
        "to",
        "type",
    )
    type: MessageType
    group: int
    frm: int
    to: int
    term: int
    log_term: int
    index: int
    entries: tuple[Entry, ...]
    commit: int
    reject: bool
    reject_hint: int
    snapshot: Snapshot | None
    context: bytes


class _HardStateBuilder:
    __slots__ = ("commit", "term", "vote")
    term: int
    vote: int
    commit: int


assert sorted(_EntryBuilder.__slots__) == sorted(Entry.__slots__)
assert sorted(_MessageBuilder.__slots__) == sorted(Message.__slots__)
assert sorted(_HardStateBuilder.__slots__) == sorted(HardState.__slots__)
_new = object.__new__


def make_entry(index: int, term: int, kind: EntryKind, data: bytes) -> Entry:
    """Same as `Entry(index, term, kind, data)`, faster."""
    e = _new(_EntryBuilder)
    e.index = index
    e.term = term
    e.kind = kind
    e.data = data
    e.__class__ = Entry  # type: ignore[assignment]
    return e  # type: ignore[return-value]


def make_entries(first: int, term: int, datas: Iterable[bytes]) -> list[Entry]:
    """NORMAL entries `first`, `first + 1`, ... of `term` carrying `datas`."""
    normal = EntryKind.NORMAL
    new = _new
    out: list[Entry] = []
    for i, d in enumerate(datas, first):
        e = new(_EntryBuilder)  # make_entry, inlined
        e.index = i
        e.term = term
        e.kind = normal
        e.data = d
        e.__class__ = Entry  # type: ignore[assignment]
        out.append(e)  # type: ignore[arg-type]
    return out


def make_message(  # noqa: PLR0917 - mirrors Message's fields, all positional
    type: MessageType,
    group: int,
    frm: int,
    to: int,
    term: int,
    log_term: int,
    index: int,
    entries: tuple[Entry, ...],
    commit: int,
    reject: bool,
    reject_hint: int,
    snapshot: Snapshot | None,
    context: bytes,
) -> Message:
    """Same as `Message(...)` with every field given positionally, faster."""
    m = _new(_MessageBuilder)
    m.type = type
    m.group = group
    m.frm = frm
    m.to = to
    m.term = term
    m.log_term = log_term
    m.index = index
    m.entries = entries
    m.commit = commit
    m.reject = reject
    m.reject_hint = reject_hint
    m.snapshot = snapshot
    m.context = context
    m.__class__ = Message  # type: ignore[assignment]
    return m  # type: ignore[return-value]


def make_hard_state(term: int, vote: int, commit: int) -> HardState:
    """Same as `HardState(term, vote, commit)`, faster."""
    h = _new(_HardStateBuilder)
    h.term = term
    h.vote = vote
    h.commit = commit
    h.__class__ = HardState  # type: ignore[assignment]
    return h  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Binary codec
# ---------------------------------------------------------------------------------------------


class DecodeError(ValueError):
    """Malformed bytes from a peer."""


# type, flags, group, frm, to, term, log_term, index, commit, reject_hint, n_entries, ctx_len
_HEADER = struct.Struct("<BBQQQQQQQQII")
_HEADER_SIZE = _HEADER.size
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_ENTRY = struct.Struct("<QQBI")  # index, term, kind, data_len
_ENTRY_SIZE = _ENTRY.size
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


def encode_entries(entries: Sequence[Entry]) -> bytes:
    """The entries' part of an encoded message: their fixed-size headers, then all their data.
    The same bytes for every message carrying these entries, so a leader can encode them once
    for all followers and pass them to `encode_message`."""
    pack_entry = _ENTRY.pack
    parts = [pack_entry(e.index, e.term, e.kind, len(e.data)) for e in entries]
    parts += [e.data for e in entries]
    return b"".join(parts)


def encode_message(m: Message, entries_blob: bytes | None = None) -> bytes:
    """Header, context, then the entries as one array of fixed-size headers followed by all
    their data (so the decoder reads the headers with one `iter_unpack`), then the snapshot.
    `entries_blob`, if given, must be `encode_entries(m.entries)`."""
    flags = (_FLAG_REJECT if m.reject else 0) | (_FLAG_SNAPSHOT if m.snapshot is not None else 0)
    entries = m.entries
    header = _pack_header(
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
        len(entries),
        len(m.context),
    )
    if not entries and m.snapshot is None:
        return header + m.context if m.context else header
    parts = [header, m.context]
    if entries:
        parts.append(entries_blob if entries_blob is not None else encode_entries(entries))
    if m.snapshot is not None:
        meta = m.snapshot.meta
        conf = encode_conf_state(meta.conf)
        parts.append(_SNAP.pack(meta.index, meta.term, len(conf), len(m.snapshot.data)))
        parts.append(conf)
        parts.append(m.snapshot.data)
    return b"".join(parts)


def decode_message(data: bytes | memoryview) -> Message:
    """Decode one whole message (the transport frames messages). Raises DecodeError."""
    # Slicing bytes is one allocation; a memoryview slice would need a second copy per field.
    raw = data if type(data) is bytes else bytes(data)
    size = len(raw)
    if size < _HEADER_SIZE:
        raise DecodeError("truncated message header")
    (mtype, flags, group, frm, to, term, log_term, index, commit, hint, n_ents, ctx_len) = (
        _unpack_header(raw, 0)
    )
    msg_type = _MSG_TYPES.get(mtype)
    if msg_type is None or flags & ~(_FLAG_REJECT | _FLAG_SNAPSHOT):
        raise DecodeError(f"unknown message type {mtype} or flags {flags}")
    pos = _HEADER_SIZE + ctx_len
    if pos > size:
        raise DecodeError("truncated context")
    context = raw[_HEADER_SIZE:pos]
    entries: tuple[Entry, ...] = ()
    if n_ents:
        entries, pos = _decode_entries(raw, pos, n_ents)
    snapshot = None
    if flags & _FLAG_SNAPSHOT:
        snapshot, pos = _decode_snapshot(raw, pos)
    if pos != size:
        raise DecodeError(f"{size - pos} trailing bytes")
    return make_message(
        msg_type,
        group,
        frm,
        to,
        term,
        log_term,
        index,
        entries,
        commit,
        bool(flags & _FLAG_REJECT),
        hint,
        snapshot,
        context,
    )


def _decode_entries(raw: bytes, pos: int, n: int) -> tuple[tuple[Entry, ...], int]:
    size = len(raw)
    heads_end = pos + n * _ENTRY_SIZE
    if heads_end > size:
        raise DecodeError("truncated entry headers")
    kinds = _ENTRY_KINDS
    new = object.__new__
    entry_cls = Entry
    out: list[Entry] = []
    heads = _ENTRY.iter_unpack(memoryview(raw)[pos:heads_end])
    pos = heads_end
    for e_index, e_term, e_kind, e_len in heads:
        end = pos + e_len
        kind = kinds.get(e_kind)
        if kind is None or end > size:
            raise DecodeError(f"bad entry kind {e_kind} or truncated entry data")
        # make_entry, inlined: this loop runs once per replicated entry on every follower
        e = new(_EntryBuilder)
        e.index = e_index
        e.term = e_term
        e.kind = kind
        e.data = raw[pos:end]
        e.__class__ = entry_cls  # type: ignore[assignment]
        out.append(e)  # type: ignore[arg-type]
        pos = end
    return tuple(out), pos


def _decode_snapshot(raw: bytes, pos: int) -> tuple[Snapshot, int]:
    try:
        s_index, s_term, conf_len, data_len = _SNAP.unpack_from(raw, pos)
    except struct.error as exc:
        raise DecodeError(f"truncated snapshot: {exc}") from exc
    pos += _SNAP.size
    conf_end = pos + conf_len
    data_end = conf_end + data_len
    if data_end > len(raw):
        raise DecodeError("truncated snapshot")
    conf = decode_conf_state(raw[pos:conf_end])
    return Snapshot(SnapshotMeta(s_index, s_term, conf), raw[conf_end:data_end]), data_end
