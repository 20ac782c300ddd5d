"""Channel state: info flags and the subscriber / denylist / allowlist sets, cached per channel.

Rules of this file: KV access only through the KVStore Protocol; writes go into the apply batch
set in `ChannelCache.batch`. A channel is loaded on first use (one get and three prefix scans)
and every mutation goes through the cached `ChannelState`, so reads see earlier writes of the
same batch.
"""

from __future__ import annotations

from collections.abc import Iterable

from wukongim.chat.keys import (
    channel_info_key,
    list_member_key,
    list_member_uid,
    list_prefix,
    prefix_end,
)
from wukongim.chat.model import ChannelInfo, ChannelState
from wukongim.store.interfaces import KVStore, WriteBatch

SUBSCRIBERS = b"S"
DENYLIST = b"D"
ALLOWLIST = b"A"


def _members(tag: bytes, state: ChannelState) -> dict[str, None]:
    if tag == SUBSCRIBERS:
        return state.subscribers
    return state.deny if tag == DENYLIST else state.allow


class ChannelCache:
    def __init__(self, kv: KVStore, cf: str) -> None:
        self._kv = kv
        self._cf = cf
        self.states: dict[tuple[str, int], ChannelState] = {}  # read-only outside this class
        self.batch: WriteBatch | None = None  # set by the state machine during apply

    def state(self, cid: str, ctype: int) -> ChannelState:
        state = self.states.get((cid, ctype))
        if state is None:
            state = self._load(cid, ctype)
        return state

    def _load(self, cid: str, ctype: int) -> ChannelState:
        raw = self._kv.get(self._cf, channel_info_key(cid, ctype))
        info = None if raw is None else ChannelInfo.from_flags_byte(cid, ctype, raw[0])
        lists = []
        for tag in (SUBSCRIBERS, DENYLIST, ALLOWLIST):
            prefix = list_prefix(tag, cid, ctype)
            scan = self._kv.scan(self._cf, prefix, prefix_end(prefix))
            lists.append({list_member_uid(prefix, k): None for k, _ in scan})
        state = ChannelState(info, lists[0], lists[1], lists[2])
        self.states[(cid, ctype)] = state
        return state

    def write_info(self, state: ChannelState, info: ChannelInfo) -> None:
        assert self.batch is not None
        state.info = info
        key = channel_info_key(info.channel_id, info.channel_type)
        self.batch.put(self._cf, key, bytes((info.flags_byte(),)))

    def add(self, tag: bytes, cid: str, ctype: int, uids: Iterable[str]) -> None:
        """Add non-blank uids to a list (subscribers, denylist or allowlist)."""
        assert self.batch is not None
        state = self.state(cid, ctype)
        members = _members(tag, state)
        prefix = list_prefix(tag, cid, ctype)
        for uid in uids:
            if uid.strip() and uid not in members:
                members[uid] = None
                self.batch.put(self._cf, list_member_key(prefix, uid), b"")
        state.recipients = None

    def remove(self, tag: bytes, cid: str, ctype: int, uids: Iterable[str]) -> None:
        assert self.batch is not None
        state = self.state(cid, ctype)
        members = _members(tag, state)
        prefix = list_prefix(tag, cid, ctype)
        for uid in uids:
            if members.pop(uid, 0) is None:
                self.batch.delete(self._cf, list_member_key(prefix, uid))
        state.recipients = None

    def clear(self, tag: bytes, cid: str, ctype: int) -> None:
        assert self.batch is not None
        state = self.state(cid, ctype)
        members = _members(tag, state)
        if members:
            prefix = list_prefix(tag, cid, ctype)
            self.batch.delete_range(self._cf, prefix, prefix_end(prefix))
            members.clear()
        state.recipients = None
