"""Admission of a send: may this sender post in this channel? (http-api §2.6 step 2, §2.7)

Rules of this file: pure; runs inside apply so every replica decides the same. Reads the state
only through `AdmissionView`. Returns a wkproto reason code (1 = admitted).

Order for client (TCP/WS) sends:
  1. sender's person channel `(uid,1).send_ban` -> 25
  2. channel ban -> 19, disband -> 24 (skipped for types 3, 6, 10, 11)
  3. types 6 and 3 admitted; type 11 (sender is a party by construction); type 10 if the sender is
     the visitor (channel id)
  4. system accounts admitted
  5. person: recipient is a system account -> admitted; sender in `(recipient,1)` denylist -> 4;
     with `whitelist_off_of_person=False`, sender not in its allowlist -> 13
  6. others (command channels use the original channel's lists): denylist -> 4; not a
     subscriber -> 3; non-empty allowlist without the sender -> 13
API sends (`from_api`) only get step 2.
"""

from __future__ import annotations

from typing import Protocol

from wukongim.chat.commands import (
    REASON_BAN,
    REASON_DISBAND,
    REASON_IN_BLACKLIST,
    REASON_NOT_IN_WHITELIST,
    REASON_SEND_BAN,
    REASON_SUBSCRIBER_NOT_EXIST,
    REASON_SUCCESS,
    SendMessage,
)
from wukongim.chat.ids import (
    CHANNEL_AGENT,
    CHANNEL_CUSTOMER_SERVICE,
    CHANNEL_INFO,
    CHANNEL_PERSON,
    CHANNEL_VISITORS,
    SYSTEM_UID,
)
from wukongim.chat.model import ChannelState

_NO_CHANNEL_CHECK = frozenset(
    {CHANNEL_CUSTOMER_SERVICE, CHANNEL_INFO, CHANNEL_VISITORS, CHANNEL_AGENT}
)
_OPEN_TYPES = frozenset({CHANNEL_CUSTOMER_SERVICE, CHANNEL_INFO, CHANNEL_AGENT})


class AdmissionView(Protocol):
    def channel_state(self, channel_id: str, channel_type: int) -> ChannelState:
        """The cached state of a channel (an empty state, info None, if it does not exist)."""
        ...

    def is_system_uid(self, uid: str) -> bool: ...


def admit(
    cmd: SendMessage,
    base_channel_id: str,
    view: AdmissionView,
    *,
    whitelist_off_of_person: bool = True,
) -> int:
    """Reason code for `cmd`, whose storage id without `____cmd` is `base_channel_id`."""
    uid = cmd.from_uid
    ctype = cmd.channel_type
    if not cmd.from_api:
        own = view.channel_state(uid, CHANNEL_PERSON).info
        if own is not None and own.send_ban:
            return REASON_SEND_BAN
    if ctype not in _NO_CHANNEL_CHECK:
        info = view.channel_state(base_channel_id, ctype).info
        if info is not None:
            if info.ban:
                return REASON_BAN
            if info.disband:
                return REASON_DISBAND
    if cmd.from_api or ctype in _OPEN_TYPES:
        return REASON_SUCCESS
    if ctype == CHANNEL_VISITORS and uid == cmd.channel_id:
        return REASON_SUCCESS
    if uid == SYSTEM_UID or view.is_system_uid(uid):
        return REASON_SUCCESS
    if ctype == CHANNEL_PERSON:
        return _admit_person(uid, cmd.channel_id, view, whitelist_off_of_person)
    return _admit_member(uid, view.channel_state(base_channel_id, ctype))


def _admit_person(
    uid: str, recipient: str, view: AdmissionView, whitelist_off_of_person: bool
) -> int:
    if recipient == SYSTEM_UID or view.is_system_uid(recipient):
        return REASON_SUCCESS
    state = view.channel_state(recipient, CHANNEL_PERSON)
    if uid in state.deny:
        return REASON_IN_BLACKLIST
    if not whitelist_off_of_person and uid not in state.allow:
        return REASON_NOT_IN_WHITELIST
    return REASON_SUCCESS


def _admit_member(uid: str, state: ChannelState) -> int:
    if uid in state.deny:
        return REASON_IN_BLACKLIST
    if uid not in state.subscribers:
        return REASON_SUBSCRIBER_NOT_EXIST
    if state.allow and uid not in state.allow:
        return REASON_NOT_IN_WHITELIST
    return REASON_SUCCESS
