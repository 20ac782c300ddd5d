"""The leader's queue of read-index requests waiting for a heartbeat round to confirm it.

Rules of this file: requests are answered in arrival order; a quorum of acknowledgements for one
request proves the leader was still leader after every earlier request arrived, so it releases
them all. Nothing here sends anything: the core does.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from wukongim.raft.quorum import has_quorum


@dataclass(slots=True)
class ReadRequest:
    context: bytes
    index: int  # the leader's commit index when the request arrived
    frm: int  # who asked (the leader itself, or a follower that forwarded it)
    acks: set[int] = field(default_factory=set)


class ReadOnlyQueue:
    __slots__ = ("_requests",)

    def __init__(self) -> None:
        self._requests: dict[bytes, ReadRequest] = {}  # insertion-ordered

    def add(self, context: bytes, index: int, frm: int, leader: int) -> bool:
        """Queue a request; False if one with this context is already pending."""
        if context in self._requests:
            return False
        self._requests[context] = ReadRequest(context, index, frm, {leader})
        return True

    def ack(self, context: bytes, frm: int, voters: Collection[int]) -> list[ReadRequest]:
        """Record a heartbeat acknowledgement; returns the requests it releases, in order."""
        req = self._requests.get(context)
        if req is None:
            return []
        req.acks.add(frm)
        if not has_quorum(voters, req.acks):
            return []
        released = []
        while self._requests:
            first = self._requests.pop(next(iter(self._requests)))
            released.append(first)
            if first.context == context:
                break
        return released

    def clear(self) -> None:
        self._requests.clear()

    def last_context(self) -> bytes:
        """Context of the newest pending request, b"" if none. Periodic heartbeats carry it, so a
        lost read round is retried by the next heartbeat (acking it releases every older one)."""
        if not self._requests:
            return b""
        return next(reversed(self._requests))

    def __len__(self) -> int:
        return len(self._requests)
