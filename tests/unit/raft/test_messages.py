"""The Raft wire codec: round trips, rejection of malformed input, describe()."""

from __future__ import annotations

import contextlib

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
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
    decode_conf_change,
    decode_conf_state,
    decode_message,
    encode_conf_change,
    encode_conf_state,
    encode_message,
)

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
