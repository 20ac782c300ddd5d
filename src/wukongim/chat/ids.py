"""Identifier rules of the chat domain: storage channel ids, slots, uid checks, message ids.

Rules of this file: pure functions and one pure id generator; time is passed in.

* `person_channel_id(a, b)`: the person "fake" id (wkproto §7.1, http-api §2.1).
* `storage_channel_id(channel_id, channel_type, uid, sync_once=False)`: where a channel's
  messages, seqs and conversation rows live (person fake id, agent `uid@agent`, `____cmd`).
* `base_channel_id(storage_id)`: the storage id without the `____cmd` suffix; sends are routed by
  `slot_of(base_channel_id(...))` so a command channel lives in its channel's group.
* `slot_of(key) = crc32(key) % 256`.
* `SnowflakeIds(node_id).next(now_ms)`: bwmarrin/snowflake layout, never goes backwards.
"""

from __future__ import annotations

import functools
import zlib

SYSTEM_UID = "____system"
MANAGER_UID = "____manager"
SYSTEM_DEVICE_ID = "____device"
CMD_SUFFIX = "____cmd"
ONLINE_CMD_CHANNEL_ID = "systemcmdonline"
SLOT_COUNT = 256

CHANNEL_PERSON = 1
CHANNEL_GROUP = 2
CHANNEL_CUSTOMER_SERVICE = 3
CHANNEL_COMMUNITY = 4
CHANNEL_COMMUNITY_TOPIC = 5
CHANNEL_INFO = 6
CHANNEL_DATA = 7
CHANNEL_TEMP = 8
CHANNEL_LIVE = 9
CHANNEL_VISITORS = 10
CHANNEL_AGENT = 11
CHANNEL_AGENT_GROUP = 12

_FORBIDDEN = frozenset("@#&")
_crc32 = zlib.crc32


def crc32_ieee(text: str) -> int:
    return _crc32(text.encode())


def slot_of(key: str) -> int:
    """Hash slot of a key: uid for user data, base storage channel id for channel data."""
    return _crc32(key.encode()) % SLOT_COUNT


def has_forbidden_chars(text: str) -> bool:
    return any(ch in _FORBIDDEN for ch in text)


def is_valid_uid(uid: str) -> bool:
    """Non-blank and free of `@ # &` (http-api §2.1)."""
    return bool(uid.strip()) and not has_forbidden_chars(uid)


@functools.lru_cache(maxsize=65_536)  # every person send computes it; a pair chats many times
def person_channel_id(a: str, b: str) -> str:
    """Person "fake" channel id: `a@b` if crc32(a) > crc32(b) else `b@a`.

    Symmetric except on a CRC tie between different uids, where the first argument's order wins
    as `b@a`. TCP sends call it as (peer, sender) (upstream: `(channelIdFromSend, senderUid)`,
    tie -> `sender@peer`); HTTP sends as (from, to).
    """
    if _crc32(a.encode()) > _crc32(b.encode()):
        return f"{a}@{b}"
    return f"{b}@{a}"


def storage_channel_id(
    channel_id: str, channel_type: int, uid: str, *, sync_once: bool = False
) -> str:
    """Storage id of a channel as addressed by `uid` (the sender, or the reader).

    Person: fake id of (channel_id, uid); agent: `uid@channel_id`; with `sync_once` the command
    channel (suffix `____cmd`), except for `systemcmdonline` and temp (type 8) channels.
    """
    if channel_type == CHANNEL_PERSON:
        sid = person_channel_id(channel_id, uid)
    elif channel_type == CHANNEL_AGENT:
        sid = f"{uid}@{channel_id}"
    else:
        sid = channel_id
    if sync_once and channel_type != CHANNEL_TEMP and channel_id != ONLINE_CMD_CHANNEL_ID:
        sid += CMD_SUFFIX
    return sid


def is_cmd_channel(storage_id: str) -> bool:
    return storage_id.endswith(CMD_SUFFIX)


def base_channel_id(storage_id: str) -> str:
    """The storage id without a `____cmd` suffix (the routing key of a channel's group)."""
    if storage_id.endswith(CMD_SUFFIX):
        return storage_id[: -len(CMD_SUFFIX)]
    return storage_id


def person_parties(storage_id: str) -> tuple[str, str] | None:
    """The two uids of a person (or agent) storage id `a@b`, else None."""
    parts = base_channel_id(storage_id).split("@")
    if len(parts) != 2:
        return None
    return parts[0], parts[1]


def peer_of(storage_id: str, uid: str) -> str:
    """The "real" channel id a user sees for a person storage id: the other party."""
    parties = person_parties(storage_id)
    if parties is None:
        return storage_id
    a, b = parties
    return b if a == uid else a


def temp_cmd_channel_id(subscribers: list[str] | tuple[str, ...]) -> str:
    """Temp command channel of a `subscribers` send: decimal FNV-1a-64 of the uids joined with
    "," (given order) + `____cmd` (http-api §2.1)."""
    h = 0xCBF29CE484222325
    for byte in ",".join(subscribers).encode():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h}{CMD_SUFFIX}"


# Snowflake (bwmarrin/snowflake v0.3.0): 41 bits ms since the Twitter epoch, 10 node, 12 step.
SNOWFLAKE_EPOCH_MS = 1288834974657
_NODE_BITS = 10
_STEP_BITS = 12
_STEP_MASK = (1 << _STEP_BITS) - 1


class SnowflakeIds:
    """Message id generator. Pure: the caller passes the current time in ms.

    If `now_ms` goes backwards the generator keeps using its last millisecond; if 4096 ids are
    taken within one millisecond it borrows the next millisecond instead of waiting.
    """

    __slots__ = ("_last_ms", "_node_shifted", "_step")

    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id < (1 << _NODE_BITS):
            raise ValueError(f"snowflake node id must be 0..1023, got {node_id}")
        self._node_shifted = node_id << _STEP_BITS
        self._last_ms = -1
        self._step = 0

    def next(self, now_ms: int) -> int:
        ms = now_ms - SNOWFLAKE_EPOCH_MS
        if ms <= self._last_ms:
            self._step = (self._step + 1) & _STEP_MASK
            if self._step == 0:
                self._last_ms += 1
            ms = self._last_ms
        else:
            self._step = 0
            self._last_ms = ms
        return (ms << (_NODE_BITS + _STEP_BITS)) | self._node_shifted | self._step


def snowflake_time_ms(message_id: int) -> int:
    """Unix ms encoded in a snowflake id."""
    return (message_id >> (_NODE_BITS + _STEP_BITS)) + SNOWFLAKE_EPOCH_MS
