"""Typed identifiers shared by every layer.

`NewType` keeps a `Uid` from being passed where a `ChannelId` is expected; at run time they are
plain `str` / `int` and cost nothing.
"""

from typing import NewType

NodeId = NewType("NodeId", int)
GroupId = NewType("GroupId", int)
Uid = NewType("Uid", str)
ChannelId = NewType("ChannelId", str)
MessageId = NewType("MessageId", int)
Seq = NewType("Seq", int)
