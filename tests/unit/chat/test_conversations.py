"""Conversation rows and read pointers (http-api §2.8, §1.10)."""

from __future__ import annotations

from tests.unit.chat.harness import Harness
from wukongim.chat.commands import (
    AddSubscribers,
    AddToList,
    DeleteConversation,
    ListKind,
    ReadMode,
    RemoveFromList,
    SetConversationRead,
    SetList,
)
from wukongim.chat.ids import SYSTEM_UID
from wukongim.chat.state_machine import ChatConfig


def pointer(h: Harness, uid: str, sid: str, ctype: int = 1) -> int | None:
    row = h.sm.conversation_row(uid, sid, ctype)
    return None if row is None else row.readed_to_msg_seq


def test_first_person_message_creates_rows_for_both() -> None:
    h = Harness()
    h.send("u1", "u2")
    assert pointer(h, "u1", "u2@u1") == 1
    assert pointer(h, "u2", "u2@u1") == 0
    h.send("u2", "u1")
    assert pointer(h, "u2", "u2@u1") == 0  # message traffic does not move pointers
    rows = h.sm.conversation_rows("u2")
    assert [(r.channel_id, r.channel_type, r.kind) for r in rows] == [("u2@u1", 1, 0)]


def test_no_person_rows_when_the_whitelist_is_on() -> None:
    h = Harness(ChatConfig(whitelist_off_of_person=False))
    h.do(AddToList(ListKind.ALLOW, "u2", 1, ("u1",), now_ms=3))
    # whitelist_add on a person channel creates the row keyed by the fake id
    assert pointer(h, "u1", "u2@u1") == 0
    h.send("u1", "u2")
    assert pointer(h, "u2", "u2@u1") is None


def test_group_messages_create_no_rows() -> None:
    h = Harness()
    h.group("g", "a")
    h.send(SYSTEM_UID, "g", 2, from_api=True)
    h.do(RemoveFromList(ListKind.DENY, "g", 2, ()))
    assert h.sm.conversation_rows("x") == []
    assert pointer(h, "a", "g", 2) == 0


def test_clear_unread_moves_to_last_seq_and_creates_only_with_messages() -> None:
    h = Harness()
    h.do(SetConversationRead("u1", "u2@u1", 1, ReadMode.CLEAR))
    assert pointer(h, "u1", "u2@u1") is None
    for _ in range(3):
        h.send("u2", "u1")
    h.do(SetConversationRead("u1", "u2@u1", 1, ReadMode.CLEAR, now_ms=7))
    assert pointer(h, "u1", "u2@u1") == 3
    row = h.sm.conversation_row("u1", "u2@u1", 1)
    assert row is not None
    assert row.updated_at_ms == 7


def test_set_unread_targets_and_only_moves_forward() -> None:
    h = Harness()
    for _ in range(5):
        h.send("u2", "u1")

    def set_unread(n: int) -> int | None:
        h.do(SetConversationRead("u1", "u2@u1", 1, ReadMode.SET_UNREAD, unread=n))
        return pointer(h, "u1", "u2@u1")

    assert set_unread(2) == 3
    assert set_unread(4) == 3  # would move back: no-op
    assert set_unread(99) == 4  # > last -> last - 1
    assert set_unread(0) == 5
    assert set_unread(-1) == 5


def test_set_unread_on_an_empty_channel_clamps_at_zero() -> None:
    h = Harness()
    h.do(SetConversationRead("u1", "u2@u1", 1, ReadMode.SET_UNREAD, unread=3))
    assert pointer(h, "u1", "u2@u1") == 0


def test_recvack_of_sync_once_advances_the_command_row() -> None:
    h = Harness()
    h.group("g", "a", "b")
    for _ in range(3):
        h.send("a", "g", 2, sync_once=True)
    assert pointer(h, "b", "g____cmd", 2) == 0
    h.do(SetConversationRead("b", "g____cmd", 2, ReadMode.TO_SEQ, seq=2))
    assert pointer(h, "b", "g____cmd", 2) == 2
    h.do(SetConversationRead("b", "g____cmd", 2, ReadMode.TO_SEQ, seq=1))
    assert pointer(h, "b", "g____cmd", 2) == 2
    h.send("a", "g", 2, sync_once=True)
    assert pointer(h, "b", "g____cmd", 2) == 2  # existing rows untouched by new messages


def test_delete_conversation_records_the_last_seq() -> None:
    h = Harness()
    h.do(DeleteConversation("u1", "u2@u1", 1))  # no row: no-op
    assert h.sm.conversation_row("u1", "u2@u1", 1) is None
    h.send("u1", "u2")
    h.send("u2", "u1")
    h.do(DeleteConversation("u1", "u2@u1", 1))
    row = h.sm.conversation_row("u1", "u2@u1", 1)
    assert row is not None
    assert row.deleted_at_msg_seq == 2


def test_denylist_add_and_set_delete_rows_and_remove_recreates() -> None:
    h = Harness()
    h.group("g", "a", "b")
    h.do(AddToList(ListKind.DENY, "g", 2, ("a",)))
    assert pointer(h, "a", "g", 2) is None
    h.do(SetList(ListKind.DENY, "g", 2, ("b",)))
    assert pointer(h, "b", "g", 2) is None
    assert h.sm.denylist("g", 2) == ["b"]
    h.do(RemoveFromList(ListKind.DENY, "g", 2, ("b",)))
    assert pointer(h, "b", "g", 2) == 0


def test_rows_sorted_by_updated_at_and_survive_restart() -> None:
    h = Harness()
    h.do(AddSubscribers("g1", 2, ("a",), now_ms=10))
    h.do(AddSubscribers("g2", 2, ("a",), now_ms=30))
    h.do(AddSubscribers("g3", 2, ("a",), now_ms=20))
    order = [r.channel_id for r in h.sm.conversation_rows("a")]
    assert order == ["g2", "g3", "g1"]
    assert [r.channel_id for r in h.restart().conversation_rows("a")] == order
