"""Replicas agree: the same commands give the same results and the same stored bytes, also
when one replica restarts from its store in the middle (lazy caches must not change outcomes)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from wukongim.chat import commands as c
from wukongim.chat.state_machine import ChatStateMachine
from wukongim.store.memory import MemoryKVStore

UIDS = st.sampled_from(["a", "b", "c", "____system", "bot"])
CHANNELS = st.sampled_from(["g1", "g2", "a", "b"])
TYPES = st.sampled_from([1, 2, 9])
UID_TUPLES = st.lists(UIDS, max_size=3).map(tuple)
KINDS = st.sampled_from(list(c.ListKind))
_ids = iter(range(10**9))

sends = st.builds(
    c.SendMessage,
    from_uid=UIDS,
    channel_id=CHANNELS,
    channel_type=TYPES,
    client_msg_no=st.just("n"),
    payload=st.binary(min_size=1, max_size=4),
    message_id=st.integers(1, 2**40),
    timestamp_s=st.integers(0, 2**31),
    no_persist=st.booleans(),
    sync_once=st.booleans(),
    from_api=st.booleans(),
)
others = st.one_of(
    st.builds(c.UpsertChannel, CHANNELS, TYPES, ban=st.booleans(), subscribers=UID_TUPLES),
    st.builds(c.SetChannelInfo, CHANNELS, TYPES, send_ban=st.booleans(), disband=st.booleans()),
    st.builds(c.AddSubscribers, CHANNELS, TYPES, UID_TUPLES, reset=st.booleans()),
    st.builds(c.RemoveSubscribers, CHANNELS, TYPES, UID_TUPLES),
    st.builds(c.RemoveAllSubscribers, CHANNELS, TYPES),
    st.builds(c.AddToList, KINDS, CHANNELS, TYPES, UID_TUPLES),
    st.builds(c.SetList, KINDS, CHANNELS, TYPES, UID_TUPLES),
    st.builds(c.RemoveFromList, KINDS, CHANNELS, TYPES, UID_TUPLES),
    st.builds(c.ClearList, KINDS, CHANNELS, TYPES),
    st.builds(c.DeleteChannel, CHANNELS, TYPES),
    st.builds(c.AddSystemUids, UID_TUPLES),
    st.builds(c.RemoveSystemUids, UID_TUPLES),
    st.builds(c.SetUserToken, UIDS, st.integers(0, 2), st.integers(0, 1), st.just("t")),
    st.builds(c.QuitDevice, UIDS, st.sampled_from([-1, 0, 1])),
    st.builds(
        c.SetConversationRead,
        UIDS,
        st.sampled_from(["g1", "b@a", "g1____cmd"]),
        TYPES,
        st.sampled_from(list(c.ReadMode)),
        seq=st.integers(0, 5),
        unread=st.integers(-1, 5),
    ),
    st.builds(c.DeleteConversation, UIDS, st.sampled_from(["g1", "b@a"]), TYPES),
)
entries = st.lists(st.lists(st.one_of(sends, sends, others), min_size=1, max_size=4), max_size=25)


def normalized(results: list[c.Result]) -> list[object]:
    """Recipient order follows subscriber insertion order in memory and key order after a
    reload: it is not replicated state, so compare it as a set."""
    return [
        (r.reason_code, r.message_seq, r.storage_channel_id, sorted(r.recipients))
        if isinstance(r, c.SendResult)
        else r
        for r in results
    ]


def dump(kv: MemoryKVStore) -> list[tuple[bytes, bytes]]:
    return list(kv.scan("chat", b"", b"\xff\xff\xff\xff"))


@settings(max_examples=150, deadline=None)
@given(entries, st.integers(0, 25))
def test_restart_midway_changes_nothing(batches: list[list[c.Command]], cut: int) -> None:
    kv_a, kv_b = MemoryKVStore(), MemoryKVStore()
    a, b = ChatStateMachine(kv_a), ChatStateMachine(kv_b)
    for index, batch in enumerate(batches, start=1):
        if index == cut:
            b = ChatStateMachine(kv_b)
        assert normalized(a.apply(index, batch)) == normalized(b.apply(index, batch))
    assert dump(kv_a) == dump(kv_b)
    fresh = ChatStateMachine(kv_a)
    for channel in ("g1", "g2", "a", "b"):
        for ctype in (1, 2, 9):
            assert sorted(fresh.subscribers(channel, ctype)) == sorted(
                a.subscribers(channel, ctype)
            )
            assert sorted(fresh.denylist(channel, ctype)) == sorted(a.denylist(channel, ctype))
            assert fresh.channel_info(channel, ctype) == a.channel_info(channel, ctype)
    for uid in ("a", "b", "c"):
        assert fresh.conversation_rows(uid) == a.conversation_rows(uid)
        assert fresh.user_token(uid, 0) == a.user_token(uid, 0)


@settings(max_examples=50, deadline=None)
@given(entries)
def test_seqs_are_gap_free_per_stored_channel(batches: list[list[c.Command]]) -> None:
    sm = ChatStateMachine(MemoryKVStore())
    seen: dict[tuple[str, int], list[int]] = {}
    for index, batch in enumerate(batches, start=1):
        for cmd, result in zip(batch, sm.apply(index, batch), strict=True):
            if isinstance(result, c.SendResult) and result.message_seq:
                assert isinstance(cmd, c.SendMessage)
                key = (result.storage_channel_id, cmd.channel_type)
                seen.setdefault(key, []).append(result.message_seq)
            if isinstance(result, c.SendResult) and not result.ok:
                assert result.message_seq == 0
                assert result.recipients == ()
    for (sid, ctype), seqs in seen.items():
        assert seqs == list(range(1, len(seqs) + 1))
        assert sm.last_seq(sid, ctype) == len(seqs)
