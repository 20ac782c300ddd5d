"""/conversation/sync, syncByChannels and /message/sync over the state machine (§2.8)."""

from __future__ import annotations

from tests.unit.chat.harness import Harness
from wukongim.chat.commands import (
    AddSubscribers,
    DeleteConversation,
    ReadMode,
    SetConversationRead,
)
from wukongim.chat.conversation_sync import (
    parse_last_msg_seqs,
    pending_commands,
    sync_by_channels,
    sync_conversations,
)
from wukongim.chat.ids import SYSTEM_UID, person_channel_id


def test_parse_last_msg_seqs() -> None:
    assert parse_last_msg_seqs("u2:1:5|g:2:0|bad|x:y:z") == {("u2", 1): 5, ("g", 2): 0}
    assert parse_last_msg_seqs("") == {}


def test_msg_count_zero_gives_nothing() -> None:
    h = Harness()
    h.send("u1", "u2")
    assert sync_conversations(h.sm, "u2", msg_count=0) == []


def test_person_conversation_unread_and_recents_newest_first() -> None:
    h = Harness()
    h.send("u1", "u2")
    h.send("u1", "u2")
    h.send("u1", "u2")
    [c] = sync_conversations(h.sm, "u2", msg_count=2)
    assert (c.channel_id, c.channel_type, c.unread, c.last_msg_seq) == ("u1", 1, 3, 3)
    assert c.recents is not None
    assert [m.message_seq for m in c.recents] == [3, 2]
    assert c.version == c.timestamp * 1_000_000_000
    [mine] = sync_conversations(h.sm, "u1", msg_count=2)
    assert (mine.channel_id, mine.unread, mine.readed_to_msg_seq) == ("u2", 0, 3)


def test_own_send_implies_read_up_to_it() -> None:
    h = Harness()
    h.send("u1", "u2")
    h.send("u2", "u1")
    h.send("u1", "u2")
    [c] = sync_conversations(h.sm, "u2", msg_count=5)
    assert (c.unread, c.readed_to_msg_seq) == (1, 2)


def test_group_rows_only_via_subscribe_and_pointer_at_join() -> None:
    h = Harness()
    h.group("g", "a")
    h.send("a", "g", 2)
    h.do(AddSubscribers("g", 2, ("b",), now_ms=1))
    assert sync_conversations(h.sm, "b", msg_count=5)[0].unread == 0
    h.send("a", "g", 2)
    [c] = sync_conversations(h.sm, "b", msg_count=5)
    assert (c.unread, c.readed_to_msg_seq, c.last_msg_seq) == (1, 1, 2)
    assert sync_conversations(h.sm, "stranger", msg_count=5) == []


def test_incremental_sync_only_returns_unread_conversations() -> None:
    h = Harness()
    h.send("u1", "u2")
    h.do(SetConversationRead("u2", "u2@u1", 1, ReadMode.CLEAR))
    assert len(sync_conversations(h.sm, "u2", msg_count=5)) == 1
    assert sync_conversations(h.sm, "u2", msg_count=5, version=1) == []
    assert sync_conversations(h.sm, "u2", msg_count=5, only_unread=True) == []


def test_client_seqs_and_excluded_types() -> None:
    h = Harness()
    h.group("g", "a", "b")
    for _ in range(3):
        h.send("a", "g", 2)
    [c] = sync_conversations(h.sm, "b", msg_count=5, last_msg_seqs={("g", 2): 2})
    assert c.recents is not None
    assert [m.message_seq for m in c.recents] == [3]
    assert sync_conversations(h.sm, "b", msg_count=5, last_msg_seqs={("g", 2): 3}) == []
    assert sync_conversations(h.sm, "b", msg_count=5, exclude_channel_types=[2]) == []
    kept = sync_conversations(
        h.sm, "b", msg_count=5, exclude_channel_types=[2], last_msg_seqs={("g", 2): 1}
    )
    assert len(kept) == 1


def test_deleted_conversation_reappears_with_only_newer_messages() -> None:
    h = Harness()
    h.send("u1", "u2")
    h.send("u1", "u2")
    h.do(DeleteConversation("u2", "u2@u1", 1))
    assert sync_conversations(h.sm, "u2", msg_count=5) == []
    h.send("u1", "u2")
    [c] = sync_conversations(h.sm, "u2", msg_count=5)
    assert c.recents is not None
    assert [m.message_seq for m in c.recents] == [3]
    assert c.unread == 1


def test_system_peer_is_hidden_and_paging() -> None:
    h = Harness()
    h.send(SYSTEM_UID, "u1", 1, from_api=True)
    assert sync_conversations(h.sm, "u1", msg_count=5) == []
    for i in range(3):
        h.group(f"g{i}", "u1", now_ms=i)
        h.send("u1", f"g{i}", 2)
    page1 = sync_conversations(h.sm, "u1", msg_count=1, page=1, page_size=2)
    page2 = sync_conversations(h.sm, "u1", msg_count=1, page=2, page_size=2)
    assert [c.channel_id for c in page1 + page2] == ["g2", "g1", "g0"]
    assert sync_conversations(h.sm, "u1", msg_count=1, page=3, page_size=2) == []


def test_sync_by_channels_answers_every_channel_in_order() -> None:
    h = Harness()
    h.send("u1", "u2")
    out = sync_by_channels(h.sm, "u2", [("nobody", 1), ("u1", 1)], msg_count=15)
    assert [c.channel_id for c in out] == ["nobody", "u1"]
    assert out[0].recents is None
    assert (out[1].unread, out[1].last_msg_seq) == (1, 1)


def test_pending_command_messages() -> None:
    h = Harness()
    h.group("g", "a", "b")
    for _ in range(3):
        h.send("a", "g", 2, sync_once=True)
    h.send("a", "b", 1, sync_once=True)
    pending = pending_commands(h.sm, "b", 10)
    person_cmd = person_channel_id("b", "a") + "____cmd"
    assert sorted((p.channel_id, p.message.message_seq) for p in pending) == sorted(
        [(person_cmd, 1), ("g____cmd", 1), ("g____cmd", 2), ("g____cmd", 3)]
    )
    assert len(pending_commands(h.sm, "b", 2)) == 2
    h.do(SetConversationRead("b", "g____cmd", 2, ReadMode.TO_SEQ, seq=3))
    assert [p.channel_id for p in pending_commands(h.sm, "b", 10)] == [person_cmd]
    # the sender's row starts at its first message; existing rows are never moved by sends
    assert [p.message.message_seq for p in pending_commands(h.sm, "a", 10)] == [2, 3]
    assert sync_conversations(h.sm, "b", msg_count=5) == []  # command rows are not listed
