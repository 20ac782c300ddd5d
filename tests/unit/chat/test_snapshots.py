from __future__ import annotations

from tests.unit.chat.harness import Harness
from wukongim.chat.commands import AddSystemUids, SetUserToken, encode_commands
from wukongim.chat.ids import slot_of
from wukongim.chat.state_machine import ChatConfig, ChatGroupMachine, ChatStateMachine
from wukongim.store.memory import MemoryKVStore


def test_snapshot_restores_into_an_empty_store() -> None:
    h = Harness()
    h.group("g", "a", "b")
    h.send("a", "g", 2)
    h.send("u1", "u2")
    h.do(SetUserToken("u1", 1, 1, "tok"))
    h.do(AddSystemUids(("bot",)))
    data = h.sm.snapshot()
    other = ChatStateMachine(MemoryKVStore())
    other.restore(data)
    assert other.applied_index() == h.sm.applied_index()
    assert other.subscribers("g", 2) == ["a", "b"]
    assert other.user_token("u1", 1) == ("tok", 1)
    assert other.system_uids() == ["bot"]
    assert other.last_seq("u2@u1", 1) == 1
    assert [m.message_seq for m in other.sync_messages("a", "g", 2, 0, 0, 10, 0).messages] == [1]


def test_restore_replaces_stale_state_and_caches() -> None:
    src = Harness()
    src.group("g", "a")
    dst = Harness()
    dst.group("g", "z")
    dst.send("z", "g", 2)
    assert dst.sm.subscribers("g", 2) == ["z"]
    dst.sm.restore(src.sm.snapshot())
    assert dst.sm.subscribers("g", 2) == ["a"]
    assert dst.sm.last_seq("g", 2) == 0


def test_snapshot_of_some_slots_only() -> None:
    kv = MemoryKVStore()
    sm = ChatStateMachine(kv, ChatConfig(slots=(slot_of("g1"),)))
    sm.apply(1, [SetUserToken("someone-else", 0, 0, "t")])
    h_data = sm.snapshot()
    fresh = ChatStateMachine(MemoryKVStore(), ChatConfig(slots=(slot_of("g1"),)))
    fresh.restore(h_data)
    if slot_of("someone-else") != slot_of("g1"):
        assert fresh.user_token("someone-else", 0) is None
    assert fresh.applied_index() == 1


def test_group_machine_adapter_and_replay_is_skipped() -> None:
    kv = MemoryKVStore()
    machine = ChatGroupMachine(ChatStateMachine(kv))
    data = encode_commands([SetUserToken("a", 0, 0, "t1")])
    assert len(machine.apply(1, data)) == 1
    again = ChatGroupMachine(ChatStateMachine(kv))
    assert again.apply(1, encode_commands([SetUserToken("a", 0, 0, "t2")])) == []
    assert again.machine.user_token("a", 0) == ("t1", 0)
