from __future__ import annotations

from tests.unit.chat.harness import Harness
from wukongim.chat.commands import (
    AddSubscribers,
    AddSystemUids,
    DeleteChannel,
    QuitDevice,
    RemoveAllSubscribers,
    RemoveSubscribers,
    RemoveSystemUids,
    SetChannelInfo,
    SetUserToken,
    UpsertChannel,
)
from wukongim.chat.ids import SYSTEM_UID
from wukongim.chat.state_machine import ChatConfig, ChatStateMachine
from wukongim.store.memory import MemoryKVStore


def test_person_chat_shares_one_seq_for_both_directions() -> None:
    h = Harness()
    r1 = h.send("u1", "u2")
    r2 = h.send("u2", "u1")
    r3 = h.send("u1", "u2")
    assert [r.message_seq for r in (r1, r2, r3)] == [1, 2, 3]
    assert {r.storage_channel_id for r in (r1, r2, r3)} == {"u2@u1"}
    assert set(r1.recipients) == {"u1", "u2"}
    assert r1.ok
    assert r1.message_id == h.next_message_id - 2
    assert h.sm.last_seq("u2@u1", 1) == 3


def test_group_send_seqs_are_gap_free_per_channel() -> None:
    h = Harness()
    h.group("g1", "a", "b", "c")
    h.group("g2", "a")
    seqs = [h.send("a", "g1", 2).message_seq for _ in range(5)]
    other = h.send("a", "g2", 2)
    assert seqs == [1, 2, 3, 4, 5]
    assert other.message_seq == 1
    r = h.send("b", "g1", 2)
    assert r.message_seq == 6
    assert r.recipients == ("a", "b", "c")


def test_batch_of_sends_in_one_entry_and_one_write() -> None:
    h = Harness()
    h.group("g", "a", "b")
    cmds = [h.send_cmd("a", "g", 2) for _ in range(3)]
    results = h.apply(*cmds)
    assert [r.message_seq for r in results] == [1, 2, 3]  # type: ignore[union-attr]
    assert h.sm.applied_index() == 2


def test_rejected_send_gets_no_seq_and_does_not_consume_one() -> None:
    h = Harness()
    h.group("g", "a")
    bad = h.send("x", "g", 2)
    assert bad.reason_code == 3
    assert bad.message_seq == 0
    assert bad.recipients == ()
    assert bad.message_id > 0
    assert h.send("a", "g", 2).message_seq == 1


def test_no_persist_is_delivered_but_not_stored() -> None:
    h = Harness()
    r = h.send("u1", "u2", no_persist=True)
    assert r.ok
    assert r.message_seq == 0
    assert set(r.recipients) == {"u1", "u2"}
    assert h.sm.last_seq("u2@u1", 1) == 0
    assert h.send("u1", "u2").message_seq == 1


def test_plan_send_decides_like_apply_and_writes_nothing() -> None:
    h = Harness()
    h.group("g", "a", "b")
    h.do(SetChannelInfo("g2", 2, ban=True))
    cases = [("u1", "u2", 1), ("a", "g", 2), ("c", "g", 2), ("a", "g2", 2)]
    for from_uid, channel_id, ctype in cases:
        cmd = h.send_cmd(from_uid, channel_id, ctype, no_persist=True)
        applied_before, store_before = h.sm.applied_index(), repr(h.kv.__dict__)
        planned = h.sm.plan_send(cmd)
        assert h.sm.applied_index() == applied_before
        assert repr(h.kv.__dict__) == store_before
        (applied,) = h.apply(cmd)
        assert planned == applied
    reasons = [h.sm.plan_send(h.send_cmd(f, c, t)).reason_code for f, c, t in cases]
    assert reasons[:2] == [1, 1]
    assert 1 not in reasons[2:]
    assert reasons[2:] == [h.send("c", "g", 2).reason_code, h.send("a", "g2", 2).reason_code]
    assert h.sm.last_seq("g", 2) == 0  # only no_persist and rejected sends so far


def test_sync_once_goes_to_the_command_channel() -> None:
    h = Harness()
    h.group("g", "a", "b")
    h.send("a", "g", 2)
    cmd = h.send("a", "g", 2, sync_once=True)
    assert cmd.storage_channel_id == "g____cmd"
    assert cmd.message_seq == 1
    assert cmd.recipients == ("a", "b")
    sync = h.sm.sync_messages("a", "g", 2, 0, 0, 100, 0)
    assert [m.message_seq for m in sync.messages] == [1]
    assert not any(m.sync_once for m in sync.messages)
    assert h.sm.last_seq("g____cmd", 2) == 1
    # command rows for recipients: sender read up to its message, others 0
    row_a = h.sm.conversation_row("a", "g____cmd", 2)
    row_b = h.sm.conversation_row("b", "g____cmd", 2)
    assert row_a is not None
    assert row_b is not None
    assert (row_a.kind, row_a.readed_to_msg_seq) == (1, 1)
    assert (row_b.kind, row_b.readed_to_msg_seq) == (1, 0)


def test_person_sync_once_uses_the_person_cmd_channel() -> None:
    h = Harness()
    r = h.send("u1", "u2", sync_once=True)
    assert r.storage_channel_id == "u2@u1____cmd"
    assert set(r.recipients) == {"u1", "u2"}
    sync = h.sm.sync_messages("u1", "u2", 1, 0, 0, 10, 0)
    assert sync.messages == []


def test_system_uid_never_receives() -> None:
    h = Harness()
    h.group("g", "a", SYSTEM_UID)
    r = h.send(SYSTEM_UID, "g", 2, from_api=True)
    assert r.recipients == ("a",)
    p = h.send(SYSTEM_UID, "u9", 1, from_api=True)
    assert p.recipients == ("u9",)
    m = h.sm.sync_messages("u9", SYSTEM_UID, 1, 0, 0, 10, 0).messages[0]
    assert m.from_uid == ""


def test_subscribers_send_to_temp_channel_delivers_to_the_list() -> None:
    h = Harness()
    r = h.send(
        SYSTEM_UID,
        "123____cmd",
        8,
        sync_once=True,
        from_api=True,
        subscribers=("a", "b", SYSTEM_UID),
    )
    assert r.recipients == ("a", "b")
    assert r.storage_channel_id == "123____cmd"
    assert r.message_seq == 1
    assert h.sm.conversation_rows("a") == []  # type 8: no conversation effects


def test_tokens_and_user_bans() -> None:
    h = Harness()
    assert h.do(SetUserToken("u1", 1, 1, "tok")).ok
    assert h.sm.user_token("u1", 1) == ("tok", 1)
    assert h.sm.user_token("u1", 0) is None
    h.do(SetChannelInfo("u1", 1, ban=True))
    assert h.sm.is_user_banned("u1")
    banned = h.do(SetUserToken("u1", 1, 0, "new"))
    assert banned.reason_code == 19
    assert h.sm.user_token("u1", 1) == ("tok", 1)
    h.do(SetChannelInfo("u1", 1))  # full overwrite: unbanned
    assert not h.sm.is_user_banned("u1")
    h.do(SetChannelInfo("u1", 1, disband=True))
    assert h.do(SetUserToken("u1", 1, 0, "x")).reason_code == 24


def test_quit_device_blanks_the_token_only_when_a_record_exists() -> None:
    h = Harness()
    assert not h.do(QuitDevice("u1", 1)).ok
    h.do(SetUserToken("u1", 2, 1, "tok"))
    assert h.do(QuitDevice("u1", -1)).ok
    assert h.sm.user_token("u1", 2) == ("", 1)
    assert h.sm.user_token("u1", 0) is None


def test_upsert_channel_overwrites_flags_and_reset_replaces_members() -> None:
    h = Harness()
    h.group("g", "a", "b", ban=True)
    info = h.sm.channel_info("g", 2)
    assert info is not None
    assert info.ban
    h.do(UpsertChannel("g", 2, large=True, reset=True, subscribers=("c",)))
    info = h.sm.channel_info("g", 2)
    assert info is not None
    assert (info.ban, info.large) == (False, True)
    assert h.sm.subscribers("g", 2) == ["c"]
    # reset keeps the old members' conversation rows
    assert h.sm.conversation_row("a", "g", 2) is not None


def test_subscriber_add_creates_channel_and_rows_with_pointer_at_last_seq() -> None:
    h = Harness()
    h.do(AddSubscribers("g", 2, ("a",), now_ms=5))
    assert h.sm.channel_info("g", 2) is not None
    h.send("a", "g", 2)
    h.send("a", "g", 2)
    h.do(AddSubscribers("g", 2, ("b",), now_ms=9))
    row = h.sm.conversation_row("b", "g", 2)
    assert row is not None
    assert row.readed_to_msg_seq == 2
    assert row.updated_at_ms == 9
    h.do(AddSubscribers("g", 9, ("x",)))  # live channel: no rows
    assert h.sm.conversation_row("x", "g", 9) is None


def test_subscriber_remove_deletes_rows_and_remove_all_keeps_them() -> None:
    h = Harness()
    h.group("g", "a", "b", "c")
    h.do(RemoveSubscribers("g", 2, ("a",)))
    assert h.sm.subscribers("g", 2) == ["b", "c"]
    assert h.sm.conversation_row("a", "g", 2) is None
    h.do(RemoveAllSubscribers("g", 2))
    assert h.sm.subscribers("g", 2) == []
    assert h.sm.conversation_row("b", "g", 2) is not None
    assert h.send("b", "g", 2).reason_code == 3


def test_delete_channel_sets_disband_and_keeps_everything() -> None:
    h = Harness()
    h.group("g", "a")
    h.send("a", "g", 2)
    h.do(DeleteChannel("g", 2))
    h.do(DeleteChannel("nope", 2))
    assert h.sm.channel_info("nope", 2) is None
    assert h.send("a", "g", 2).reason_code == 24
    assert h.send(SYSTEM_UID, "g", 2, from_api=True).reason_code == 24
    assert h.sm.subscribers("g", 2) == ["a"]
    assert len(h.sm.sync_messages("a", "g", 2, 0, 0, 10, 0).messages) == 1


def test_system_uids_are_persisted() -> None:
    h = Harness()
    h.do(AddSystemUids(("bot", "bot2")))
    h.do(RemoveSystemUids(("bot2",)))
    assert h.sm.system_uids() == ["bot"]
    assert h.restart().system_uids() == ["bot"]


def test_restart_from_the_same_store_sees_the_same_state() -> None:
    h = Harness()
    h.do(SetUserToken("u1", 0, 1, "t"))
    h.group("g", "a", "b")
    h.do(SetChannelInfo("u1", 1, send_ban=True))
    h.send("a", "g", 2)
    h.send("u2", "u3")
    h.send("u3", "u2")
    applied = h.sm.applied_index()
    sm = h.restart()
    assert sm.applied_index() == applied
    assert sm.user_token("u1", 0) == ("t", 1)
    assert sm.subscribers("g", 2) == ["a", "b"]
    info = sm.channel_info("u1", 1)
    assert info is not None
    assert info.send_ban
    assert sm.last_seq("g", 2) == 1
    assert h.send("b", "g", 2).message_seq == 2
    assert h.send("u2", "u3").message_seq == 3
    assert h.send("u1", "u2").reason_code == 25
    assert [m.message_seq for m in sm.sync_messages("u2", "u3", 1, 0, 0, 10, 0).messages] == [
        1,
        2,
        3,
    ]


def test_two_groups_share_one_store_without_mixing_applied_indexes() -> None:
    kv = MemoryKVStore()
    g1 = ChatStateMachine(kv, ChatConfig(group_id=1))
    g2 = ChatStateMachine(kv, ChatConfig(group_id=2))
    g1.apply(5, [SetUserToken("a", 0, 0, "t")])
    g2.apply(1, [SetUserToken("b", 0, 0, "t")])
    assert ChatStateMachine(kv, ChatConfig(group_id=1)).applied_index() == 5
    assert ChatStateMachine(kv, ChatConfig(group_id=2)).applied_index() == 1


def test_message_fields_round_trip_into_the_view() -> None:
    h = Harness()
    h.send(
        "u1",
        "u2",
        setting=0x08,
        red_dot=True,
        expire=30,
        topic="t",
        client_msg_no="cm",
        payload=b"\x00\x01",
    )
    m = h.sm.message("u2@u1", 1, 1)
    assert m is not None
    assert (m.setting, m.red_dot, m.expire, m.topic, m.client_msg_no, m.payload) == (
        0x08,
        True,
        30,
        "t",
        "cm",
        b"\x00\x01",
    )
    assert m.channel_id == "u2"
    assert m.from_uid == "u1"
    assert m.message_idstr == str(m.message_id)
