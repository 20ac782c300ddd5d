"""Reason codes of http-api §2.7, one rule per test."""

from __future__ import annotations

from tests.unit.chat.harness import Harness
from wukongim.chat.commands import (
    AddSystemUids,
    AddToList,
    ListKind,
    SetChannelInfo,
    SetList,
    UpsertChannel,
)
from wukongim.chat.ids import SYSTEM_UID
from wukongim.chat.state_machine import ChatConfig


def test_send_ban_of_the_sender_is_checked_first() -> None:
    h = Harness()
    h.group("g", "a", ban=True)
    h.do(SetChannelInfo("a", 1, send_ban=True))
    assert h.send("a", "g", 2).reason_code == 25
    assert h.send("a", "b", 1).reason_code == 25
    # API sends skip sender checks; the channel ban still applies
    assert h.send("a", "g", 2, from_api=True).reason_code == 19
    assert h.send("a", "b", 1, from_api=True).ok


def test_channel_ban_and_disband() -> None:
    h = Harness()
    h.group("g", "a", ban=True)
    h.group("d", "a", disband=True)
    assert h.send("a", "g", 2).reason_code == 19
    assert h.send("a", "d", 2).reason_code == 24
    assert h.send(SYSTEM_UID, "g", 2, from_api=True).reason_code == 19
    h.do(AddSystemUids(("bot",)))
    assert h.send("bot", "d", 2).reason_code == 24


def test_person_level_ban_does_not_block_incoming_messages() -> None:
    h = Harness()
    h.do(SetChannelInfo("b", 1, ban=True))
    assert h.send("a", "b", 1).ok


def test_banned_group_blocks_its_command_channel_too() -> None:
    h = Harness()
    h.group("g", "a", ban=True)
    assert h.send("a", "g", 2, sync_once=True).reason_code == 19


def test_public_types_skip_membership_and_channel_checks() -> None:
    h = Harness()
    h.do(UpsertChannel("info", 6, ban=True))
    assert h.send("x", "info", 6).ok  # type 6: no channel check, no membership
    assert h.send("x", "cs|1", 3).ok
    assert h.send("x", "agent", 11).ok
    assert h.send("v1", "v1", 10).ok  # the visitor itself
    assert h.send("x", "v1", 10).reason_code == 3


def test_system_accounts_may_send_anywhere() -> None:
    h = Harness()
    h.group("g", "a")
    h.do(AddSystemUids(("bot",)))
    h.do(AddToList(ListKind.DENY, "g", 2, ("bot",)))
    assert h.send("bot", "g", 2).ok
    h.do(AddToList(ListKind.DENY, "b", 1, ("bot",)))
    assert h.send("bot", "b", 1).ok


def test_person_denylist_of_the_recipient() -> None:
    h = Harness()
    h.do(AddToList(ListKind.DENY, "b", 1, ("a",)))
    assert h.send("a", "b", 1).reason_code == 4
    assert h.send("b", "a", 1).ok  # only the recipient's list matters
    h.do(AddSystemUids(("sys2",)))
    h.do(AddToList(ListKind.DENY, "sys2", 1, ("a",)))
    assert h.send("a", "sys2", 1).ok  # anyone may write to a system account


def test_person_allowlist_only_with_whitelist_on() -> None:
    off = Harness()
    assert off.send("a", "b", 1).ok
    on = Harness(ChatConfig(whitelist_off_of_person=False))
    assert on.send("a", "b", 1).reason_code == 13
    on.do(AddToList(ListKind.ALLOW, "b", 1, ("a",)))
    assert on.send("a", "b", 1).ok


def test_group_denylist_then_membership_then_allowlist() -> None:
    h = Harness()
    h.group("g", "a", "b", "c")
    h.do(AddToList(ListKind.DENY, "g", 2, ("a", "x")))
    assert h.send("a", "g", 2).reason_code == 4
    assert h.send("x", "g", 2).reason_code == 4  # denylist before membership
    assert h.send("y", "g", 2).reason_code == 3
    h.do(AddToList(ListKind.ALLOW, "g", 2, ("b",)))
    assert h.send("b", "g", 2).ok
    assert h.send("c", "g", 2).reason_code == 13
    h.do(SetList(ListKind.ALLOW, "g", 2, ()))
    assert h.send("c", "g", 2).ok


def test_command_channel_uses_the_original_channels_lists() -> None:
    h = Harness()
    h.group("g", "a")
    assert h.send("a", "g", 2, sync_once=True).ok
    assert h.send("z", "g", 2, sync_once=True).reason_code == 3


def test_api_sends_skip_membership() -> None:
    h = Harness()
    h.group("g", "a")
    h.do(AddToList(ListKind.DENY, "g", 2, ("z",)))
    r = h.send("z", "g", 2, from_api=True)
    assert r.ok
    assert r.recipients == ("a",)
