"""/channel/messagesync semantics (http-api §1.7)."""

from __future__ import annotations

import pytest

from tests.unit.chat.harness import Harness
from wukongim.chat.ids import SYSTEM_UID, person_channel_id


@pytest.fixture
def h() -> Harness:
    harness = Harness()
    harness.group("g", "a", "b")
    for _ in range(10):
        harness.send("a", "g", 2)
    return harness


def seqs(h: Harness, start: int, end: int, limit: int, pull: int) -> tuple[list[int], bool]:
    r = h.sm.sync_messages("a", "g", 2, start, end, limit, pull)
    assert (r.start_message_seq, r.end_message_seq) == (start, end)
    return [m.message_seq for m in r.messages], r.more


def test_start_and_end_zero_gives_the_newest_ascending(h: Harness) -> None:
    assert seqs(h, 0, 0, 3, 0) == ([8, 9, 10], True)
    assert seqs(h, 0, 0, 3, 1) == ([8, 9, 10], True)
    assert seqs(h, 0, 0, 20, 0) == (list(range(1, 11)), False)


def test_pull_up_is_start_inclusive_end_exclusive(h: Harness) -> None:
    assert seqs(h, 3, 6, 100, 1) == ([3, 4, 5], False)
    assert seqs(h, 3, 0, 2, 1) == ([3, 4], True)
    assert seqs(h, 8, 0, 100, 1) == ([8, 9, 10], False)
    assert seqs(h, 0, 4, 100, 1) == ([1, 2, 3], False)
    assert seqs(h, 11, 0, 100, 1) == ([], False)


def test_pull_down_looks_back_from_start_inclusive(h: Harness) -> None:
    assert seqs(h, 5, 0, 3, 0) == ([3, 4, 5], True)
    assert seqs(h, 5, 3, 100, 0) == ([4, 5], False)
    assert seqs(h, 5, 5, 100, 0) == ([], False)
    assert seqs(h, 2, 0, 100, 0) == ([1, 2], False)


def test_pull_down_with_end_above_start_is_empty(h: Harness) -> None:
    assert seqs(h, 3, 7, 100, 0) == ([], False)
    assert seqs(h, 0, 7, 100, 0) == ([], False)


def test_pull_down_window_is_computed_before_capping_at_last_seq(h: Harness) -> None:
    assert seqs(h, 12, 0, 5, 0) == ([8, 9, 10], False)
    assert seqs(h, 15, 0, 5, 0) == ([], False)


def test_limit_zero_returns_nothing_but_more(h: Harness) -> None:
    assert seqs(h, 0, 0, 0, 0) == ([], True)
    assert seqs(h, 1, 0, 0, 1) == ([], True)


def test_limit_is_capped_at_10000(h: Harness) -> None:
    got, more = seqs(h, 0, 0, 50_000, 0)
    assert got == list(range(1, 11))
    assert not more


def test_unknown_channel_returns_zeros() -> None:
    h = Harness()
    r = h.sm.sync_messages("a", "nope", 2, 5, 9, 10, 1)
    assert (r.start_message_seq, r.end_message_seq, r.more, r.messages) == (0, 0, False, [])


def test_existing_channel_without_messages_echoes_the_request() -> None:
    h = Harness()
    h.group("g", "a")
    r = h.sm.sync_messages("a", "g", 2, 5, 9, 10, 1)
    assert (r.start_message_seq, r.end_message_seq, r.more, r.messages) == (5, 9, False, [])


def test_person_channel_ids_are_rewritten_to_the_other_party() -> None:
    h = Harness()
    h.send("u1", "u2")
    h.send("u2", "u1")
    h.send(SYSTEM_UID, "u1", 1, from_api=True)
    for reader, peer in (("u1", "u2"), ("u2", "u1")):
        msgs = h.sm.sync_messages(reader, peer, 1, 0, 0, 10, 0).messages
        assert [(m.from_uid, m.channel_id) for m in msgs] == [("u1", "u2"), ("u2", "u1")]
    sys_msgs = h.sm.sync_messages("u1", SYSTEM_UID, 1, 0, 0, 10, 0).messages
    # masked from "" -> the second part of the stored id (http-api §2.5)
    assert [m.from_uid for m in sys_msgs] == [""]
    assert sys_msgs[0].channel_id == person_channel_id("u1", SYSTEM_UID).split("@")[1]


def test_person_command_channel_keeps_the_suffix_in_the_view() -> None:
    h = Harness()
    r = h.send("u1", "u2", sync_once=True)
    m = h.sm.message(r.storage_channel_id, 1, 1)
    assert m is not None
    assert r.storage_channel_id == "u2@u1____cmd"
    assert m.channel_id == "u1____cmd"  # the last part that differs from "u1"


def test_find_message_by_client_msg_no_and_id() -> None:
    h = Harness()
    first = h.send("u1", "u2", client_msg_no="same")
    h.send("u1", "u2", client_msg_no="other")
    last = h.send("u2", "u1", client_msg_no="same")
    sid = first.storage_channel_id
    lowest = h.sm.find_message(sid, 1, client_msg_no="same")
    newest = h.sm.find_message(sid, 1, client_msg_no="same", newest=True)
    assert lowest is not None
    assert newest is not None
    assert (lowest.message_seq, newest.message_seq) == (1, 3)
    by_id = h.sm.find_message(sid, 1, message_id=last.message_id)
    assert by_id is not None
    assert by_id.message_seq == 3
    assert h.sm.find_message(sid, 1, client_msg_no="missing") is None
