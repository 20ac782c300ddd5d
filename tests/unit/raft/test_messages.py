"""The Raft wire codec: round trips, rejection of malformed input, describe()."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wukongim.raft import (
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
    Ready,
    Role,
    Snapshot,
    SnapshotMeta,
    SoftState,
    decode_conf_change,
    decode_conf_state,
    decode_message,
    encode_conf_change,
    encode_conf_state,
    encode_entries,
    encode_message,
)
from wukongim.raft.messages import make_entries, make_entry, make_hard_state, make_message
from wukongim.raft.ready import make_ready

u64 = st.integers(0, 2**64 - 1)
small = st.integers(0, 1000)
ids = st.lists(u64, max_size=4).map(tuple)
conf_states = st.builds(ConfState, ids, ids, ids, ids)
entries = st.builds(Entry, u64, u64, st.sampled_from(EntryKind), st.binary(max_size=64))
snapshots = st.builds(
    Snapshot, st.builds(SnapshotMeta, u64, u64, conf_states), st.binary(max_size=64)
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    group=u64,
    frm=u64,
    to=u64,
    term=u64,
    log_term=u64,
    index=u64,
    entries=st.lists(entries, max_size=5).map(tuple),
    commit=u64,
    reject=st.booleans(),
    reject_hint=u64,
    snapshot=st.none() | snapshots,
    context=st.binary(max_size=32),
)


@given(messages)
def test_entries_encoded_once_give_the_same_message_bytes(m):
    assert encode_message(m, encode_entries(m.entries)) == encode_message(m)


@given(messages)
@example(Message(MessageType.MSG_HEARTBEAT))
def test_message_round_trip(m):
    data = encode_message(m)
    assert decode_message(data) == m
    assert decode_message(memoryview(data)) == m
    assert isinstance(m.describe(), str)


@given(messages, st.data())
def test_truncated_or_extended_message_raises_decode_error(m, data):
    encoded = encode_message(m)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(DecodeError):
        decode_message(encoded[:cut])
    with pytest.raises(DecodeError):
        decode_message(encoded + b"\x00")


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_decode_error(data):
    with contextlib.suppress(DecodeError):
        decode_message(data)


@given(conf_states)
def test_conf_state_round_trip(cs):
    assert decode_conf_state(encode_conf_state(cs)) == cs


@given(st.sampled_from(ConfChangeType), u64, st.binary(max_size=16))
def test_conf_change_round_trip(kind, nid, ctx):
    cc = ConfChange(kind, nid, ctx)
    assert decode_conf_change(encode_conf_change(cc)) == cc


def test_unknown_message_type_is_rejected():
    data = bytearray(encode_message(Message(MessageType.MSG_APP)))
    data[0] = 200
    with pytest.raises(DecodeError):
        decode_message(bytes(data))


def test_heartbeat_is_small():
    m = Message(MessageType.MSG_HEARTBEAT, 3, 1, 2, 5, commit=100)
    assert len(encode_message(m)) <= 80


# -- fast constructors: the hot paths build frozen dataclasses without their __init__ ----------


@given(entries)
def test_make_entry_equals_the_dataclass_constructor(e):
    fast = make_entry(e.index, e.term, e.kind, e.data)
    assert type(fast) is Entry
    assert fast == e
    assert hash(fast) == hash(e)
    assert repr(fast) == repr(e)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.index = 0  # type: ignore[misc]


def test_make_entries_numbers_normal_entries_from_first():
    assert make_entries(5, 2, [b"a", b"b"]) == [
        Entry(5, 2, EntryKind.NORMAL, b"a"),
        Entry(6, 2, EntryKind.NORMAL, b"b"),
    ]


@given(messages)
def test_make_message_equals_the_dataclass_constructor(m):
    fields = [getattr(m, f.name) for f in dataclasses.fields(Message)]
    fast = make_message(*fields)
    assert type(fast) is Message
    assert fast == m
    assert hash(fast) == hash(m)
    assert dataclasses.replace(fast, term=1) == dataclasses.replace(m, term=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.term = 0  # type: ignore[misc]


@given(u64, u64, u64)
def test_make_hard_state_equals_the_dataclass_constructor(term, vote, commit):
    fast = make_hard_state(term, vote, commit)
    assert type(fast) is HardState
    assert fast == HardState(term, vote, commit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.term = 0  # type: ignore[misc]


def test_make_ready_equals_the_dataclass_constructor():
    hs = HardState(2, 1, 3)
    ss = SoftState(1, Role.LEADER)
    ents = (Entry(3, 2),)
    msgs = (Message(MessageType.MSG_APP, 7, 1, 2, 2),)
    reads = (ReadState(3, b"r"),)
    fast = make_ready(hs, ss, ents, None, ents, msgs, reads)
    assert type(fast) is Ready
    assert fast == Ready(hs, ss, ents, None, ents, msgs, reads)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.entries = ()  # type: ignore[misc]


def test_decoded_entries_are_frozen_entries():
    m = Message(MessageType.MSG_APP, 1, 1, 2, 3, 3, 9, (Entry(10, 3, data=b"x"),), 9)
    decoded = decode_message(encode_message(m))
    assert type(decoded) is Message
    assert type(decoded.entries[0]) is Entry
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.entries[0].data = b""  # type: ignore[misc]


def test_entry_data_is_bytes_even_from_a_memoryview():
    m = Message(MessageType.MSG_APP, 1, 1, 2, 3, 3, 9, (Entry(10, 3, data=b"x"),), 9, context=b"c")
    decoded = decode_message(memoryview(bytearray(encode_message(m))))
    assert type(decoded.entries[0].data) is bytes
    assert type(decoded.context) is bytes
    assert decoded == m
