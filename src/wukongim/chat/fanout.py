"""Fan-out plan of an applied send: who gets a RECV, with which channel id and red dot.

Rules of this file: pure. The plan is per uid; the gateway expands it to that uid's
authenticated connections, skipping only the exact connection that sent the message (API sends
skip none), encrypts per connection and tracks RECVACKs (wkproto §3.5, http-api §2.6 step 6).
"""

from __future__ import annotations

import msgspec

from wukongim.chat.commands import SendMessage, SendResult
from wukongim.chat.ids import CHANNEL_PERSON, SYSTEM_UID


def recv_channel_id(channel_type: int, channel_id: str, recipient_uid: str, from_uid: str) -> str:
    """RECV channel id for one recipient (wkproto §7.2): a person message addressed to the
    recipient shows up under the sender's uid; the sender's own devices keep the peer uid."""
    if channel_type == CHANNEL_PERSON and channel_id == recipient_uid:
        return from_uid
    return channel_id


def recv_from_uid(from_uid: str) -> str:
    """RECV / MessageResp `from_uid`: empty for the system uid."""
    return "" if from_uid == SYSTEM_UID else from_uid


class Delivery(msgspec.Struct, frozen=True, gc=False):
    uid: str
    channel_id: str  # already rewritten for this recipient
    red_dot: bool  # forced off on the sender's own copies
    is_sender: bool  # the gateway skips the exact sending connection of this uid


def plan_deliveries(cmd: SendMessage, result: SendResult) -> list[Delivery]:
    """One entry per recipient uid of an admitted send (empty when rejected).

    The RECV carries the channel id as the sender addressed it (no `____cmd` suffix for
    SyncOnce messages), the message id and seq of `result`, and the SEND's flags.
    """
    if not result.ok:
        return []
    sender = cmd.from_uid
    ctype = cmd.channel_type
    cid = cmd.channel_id
    return [
        Delivery(
            uid,
            recv_channel_id(ctype, cid, uid, sender),
            cmd.red_dot and uid != sender,
            uid == sender,
        )
        for uid in result.recipients
    ]
