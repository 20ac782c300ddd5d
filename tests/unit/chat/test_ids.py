from __future__ import annotations

import zlib

import pytest

from wukongim.chat.ids import (
    SNOWFLAKE_EPOCH_MS,
    SnowflakeIds,
    base_channel_id,
    is_valid_uid,
    peer_of,
    person_channel_id,
    slot_of,
    snowflake_time_ms,
    storage_channel_id,
    temp_cmd_channel_id,
)


def test_person_channel_id_orders_by_crc32_as_in_the_spec_example() -> None:
    assert zlib.crc32(b"u1") == 1112514422
    assert person_channel_id("u1", "u2") == "u2@u1"
    assert person_channel_id("u2", "u1") == "u2@u1"
    assert person_channel_id("u", "u") == "u@u"


def test_person_channel_id_tie_keeps_sender_first_in_tcp_order() -> None:
    # "plumless" and "buckeroo" are a known CRC-32 collision.
    assert zlib.crc32(b"plumless") == zlib.crc32(b"buckeroo")
    # TCP order: (peer, sender) -> sender@peer
    assert person_channel_id("plumless", "buckeroo") == "buckeroo@plumless"


def test_storage_channel_id_variants() -> None:
    assert storage_channel_id("u1", 1, "u2") == "u2@u1"
    assert storage_channel_id("u1", 1, "u2", sync_once=True) == "u2@u1____cmd"
    assert storage_channel_id("g1", 2, "u2", sync_once=True) == "g1____cmd"
    assert storage_channel_id("g1", 2, "u2") == "g1"
    assert storage_channel_id("bot", 11, "u2") == "u2@bot"
    assert storage_channel_id("t", 8, "u2", sync_once=True) == "t"
    assert storage_channel_id("systemcmdonline", 2, "u", sync_once=True) == "systemcmdonline"
    assert base_channel_id("u2@u1____cmd") == "u2@u1"
    assert peer_of("u2@u1", "u1") == "u2"
    assert peer_of("u2@u1____cmd", "u2") == "u1"


def test_slot_of_is_crc32_mod_256() -> None:
    assert slot_of("g1") == zlib.crc32(b"g1") % 256
    assert all(0 <= slot_of(f"k{i}") < 256 for i in range(100))


def test_uid_validation() -> None:
    assert is_valid_uid("alice")
    for bad in ("", "  ", "a@b", "a#b", "a&b"):
        assert not is_valid_uid(bad)


def test_temp_cmd_channel_id_is_fnv1a64_of_joined_uids() -> None:
    assert temp_cmd_channel_id([]) == "14695981039346656037____cmd"
    assert temp_cmd_channel_id(["a"]) == f"{0xAF63DC4C8601EC8C}____cmd"
    assert temp_cmd_channel_id(["a", "b"]) != temp_cmd_channel_id(["b", "a"])


def test_snowflake_layout() -> None:
    ids = SnowflakeIds(1001)
    now = SNOWFLAKE_EPOCH_MS + 5000
    first = ids.next(now)
    assert first == (5000 << 22) | (1001 << 12)
    assert ids.next(now) == first + 1
    assert snowflake_time_ms(first) == now
    assert (ids.next(now + 1) >> 12) & 0x3FF == 1001


def test_snowflake_never_goes_backwards() -> None:
    ids = SnowflakeIds(1)
    now = SNOWFLAKE_EPOCH_MS + 10_000
    seen = [ids.next(now), ids.next(now - 500), ids.next(now - 1000), ids.next(now + 1)]
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)


def test_snowflake_borrows_the_next_ms_when_the_sequence_wraps() -> None:
    ids = SnowflakeIds(3)
    now = SNOWFLAKE_EPOCH_MS + 77
    got = [ids.next(now) for _ in range(5000)]
    assert got == sorted(got)
    assert len(set(got)) == 5000
    assert snowflake_time_ms(got[-1]) == now + 1
    after = ids.next(now + 1)
    assert after > got[-1]


def test_snowflake_rejects_big_node_ids() -> None:
    with pytest.raises(ValueError, match="node id"):
        SnowflakeIds(1024)
