"""Export and import of a group's chat state (Raft snapshots, slot moves).

Rules of this file: reads and writes only through the KVStore Protocol. The format is a msgpack
array `[1, applied_index, [system uids], [[key, value], ...]]` holding every key of the given
hash slots (keys are slot-prefixed, see `chat.keys`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import msgspec

from wukongim.chat.keys import applied_key, list_member_key, list_member_uid, prefix_end
from wukongim.chat.keys import system_uids_prefix as _sys_prefix
from wukongim.store.interfaces import KVStore

_FORMAT = 1
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_decoder = msgspec.msgpack.Decoder(tuple[int, int, list[str], list[tuple[bytes, bytes]]])


def slot_range(slot: int) -> tuple[bytes, bytes]:
    return _U16.pack(slot), _U16.pack(slot + 1) if slot < 0xFFFF else b"\xff\xff\x00"


def export_pairs(kv: KVStore, cf: str, slots: Iterable[int]) -> list[tuple[bytes, bytes]]:
    pairs: list[tuple[bytes, bytes]] = []
    for slot in slots:
        start, end = slot_range(slot)
        pairs.extend(kv.scan(cf, start, end))
    return pairs


def export_state(kv: KVStore, cf: str, group_id: int, slots: Iterable[int]) -> bytes:
    raw = kv.get(cf, applied_key(group_id))
    applied = 0 if raw is None else int(_U64.unpack(raw)[0])
    prefix = _sys_prefix(group_id)
    system = [list_member_uid(prefix, k) for k, _ in kv.scan(cf, prefix, prefix_end(prefix))]
    return msgspec.msgpack.encode([_FORMAT, applied, system, export_pairs(kv, cf, slots)])


def import_state(kv: KVStore, cf: str, group_id: int, slots: Iterable[int], data: bytes) -> None:
    """Replace the group's slots, applied index and system uids with an `export_state` blob."""
    fmt, applied, system, pairs = _decoder.decode(data)
    if fmt != _FORMAT:
        raise ValueError(f"unknown chat snapshot format {fmt}")
    batch = kv.batch()
    for slot in slots:
        start, end = slot_range(slot)
        batch.delete_range(cf, start, end)
    prefix = _sys_prefix(group_id)
    batch.delete_range(cf, prefix, prefix_end(prefix))
    for uid in system:
        batch.put(cf, list_member_key(prefix, uid), b"")
    for key, value in pairs:
        batch.put(cf, key, value)
    batch.put(cf, applied_key(group_id), _U64.pack(applied))
    kv.write(batch, sync=False)
