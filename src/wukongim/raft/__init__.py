"""wukongim.raft: the Raft consensus core (pure: no I/O, no clock, no asyncio).

Public API: `RawNode` (core.py), its inputs/outputs (ready.py) and the wire types and codec
(messages.py). See core.py's header for the persistence and Ready contract.
"""

from wukongim.raft.core import RawNode
from wukongim.raft.messages import (
    CAMPAIGN_TRANSFER,
    ConfChange,
    ConfChangeType,
    ConfState,
    DecodeError,
    Entry,
    EntryKind,
    HardState,
    Message,
    MessageType,
    ReadState,
    Snapshot,
    SnapshotMeta,
    decode_conf_change,
    decode_conf_state,
    decode_message,
    encode_conf_change,
    encode_conf_state,
    encode_message,
)
from wukongim.raft.ready import (
    NotLeader,
    ProgressStatus,
    ProposalDropped,
    RaftConfig,
    RaftError,
    Ready,
    RestoreState,
    Role,
    SoftState,
    Status,
)

__all__ = [
    "CAMPAIGN_TRANSFER",
    "ConfChange",
    "ConfChangeType",
    "ConfState",
    "DecodeError",
    "Entry",
    "EntryKind",
    "HardState",
    "Message",
    "MessageType",
    "NotLeader",
    "ProgressStatus",
    "ProposalDropped",
    "RaftConfig",
    "RaftError",
    "RawNode",
    "ReadState",
    "Ready",
    "RestoreState",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SoftState",
    "Status",
    "decode_conf_change",
    "decode_conf_state",
    "decode_message",
    "encode_conf_change",
    "encode_conf_state",
    "encode_message",
]
