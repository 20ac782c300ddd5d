"""Key layout of the chat state in the KV store (one column family, default "chat").

Rules of this file: pure byte arithmetic. Every data key starts with its hash slot as 2 bytes
big-endian, so exporting slot s is a scan of [s<<16 .. (s+1)<<16). Strings are length-prefixed
(u16) so no id can run into the next field. Group metadata lives under slot 0xFFFF (outside
0..255) and carries the group id, so several groups can share one store.

  slot | 'I' | type | str(cid)                      -> flags byte           channel info
  slot | 'S' | type | str(cid) | str(uid)           -> b""                  subscriber
  slot | 'D' | type | str(cid) | str(uid)           -> b""                  denylist
  slot | 'A' | type | str(cid) | str(uid)           -> b""                  allowlist
  slot | 'M' | type | str(sid) | seq u32            -> MessageRecord        message
  slot | 'V' | str(uid) | type | str(sid)           -> ConversationRecord   conversation row
  slot | 'U' | str(uid) | flag u8                   -> [token, level]       device token
  FFFF | 'a' | group u32                            -> index u64            applied index
  FFFF | 'y' | group u32 | str(uid)                 -> b""                  system uid

`slot` is `slot_of(uid)` for user keys and `slot_of(base_channel_id(cid))` for channel keys and
conversation rows (a conversation row lives with its channel, written by the channel's group).
"""

from __future__ import annotations

import struct

from wukongim.chat.ids import base_channel_id, slot_of

META_SLOT = b"\xff\xff"
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
SEQ_END = b"\xff\xff\xff\xff\xff"  # greater than any 4-byte seq suffix


def _str(text: str) -> bytes:
    raw = text.encode()
    return _U16.pack(len(raw)) + raw


def _slot(key: str) -> bytes:
    return _U16.pack(slot_of(base_channel_id(key)))


def channel_info_key(cid: str, ctype: int) -> bytes:
    return _slot(cid) + b"I" + bytes((ctype & 0xFF,)) + _str(cid)


def list_prefix(tag: bytes, cid: str, ctype: int) -> bytes:
    """Prefix of a channel's subscriber (b'S'), denylist (b'D') or allowlist (b'A') keys."""
    return _slot(cid) + tag + bytes((ctype & 0xFF,)) + _str(cid)


def list_member_key(prefix: bytes, uid: str) -> bytes:
    return prefix + _str(uid)


def list_member_uid(prefix: bytes, key: bytes) -> str:
    return key[len(prefix) + 2 :].decode()


def message_prefix(sid: str, ctype: int) -> bytes:
    return _slot(sid) + b"M" + bytes((ctype & 0xFF,)) + _str(sid)


def seq_bytes(seq: int) -> bytes:
    return _U32.pack(seq)


def seq_of_key(key: bytes) -> int:
    return int(_U32.unpack_from(key, len(key) - 4)[0])


def conversation_prefix_in_slot(slot: int, uid: str) -> bytes:
    return _U16.pack(slot) + b"V" + _str(uid)


def conversation_key(uid: str, sid: str, ctype: int) -> bytes:
    return _slot(sid) + b"V" + _str(uid) + bytes((ctype & 0xFF,)) + _str(sid)


def conversation_key_channel(prefix: bytes, key: bytes) -> tuple[str, int]:
    """(storage channel id, type) of a conversation key found under `prefix`."""
    ctype = key[len(prefix)]
    return key[len(prefix) + 3 :].decode(), ctype


def device_key(uid: str, device_flag: int) -> bytes:
    return _U16.pack(slot_of(uid)) + b"U" + _str(uid) + bytes((device_flag & 0xFF,))


def applied_key(group_id: int) -> bytes:
    return META_SLOT + b"a" + _U32.pack(group_id)


def system_uids_prefix(group_id: int) -> bytes:
    return META_SLOT + b"y" + _U32.pack(group_id)


def prefix_end(prefix: bytes) -> bytes:
    """Smallest key greater than every key starting with `prefix` (prefix has no trailing 0xFF
    run in practice: it always ends with string bytes or a length)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return prefix + b"\xff"
    return stripped[:-1] + bytes((stripped[-1] + 1,))
