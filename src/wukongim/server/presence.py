"""Who is online on this node: uid -> its authenticated sessions, in connect order.

Single node for now: the cluster version registers these with the leader of the uid's group
(ARCHITECTURE §3) and keeps this table as the local half.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from wukongim.server.sessions import Session

_NONE: tuple[Session, ...] = ()


class Presence:
    def __init__(self) -> None:
        self._by_uid: dict[str, list[Session]] = {}
        # Read-only view for the fan-out hot path (one dict lookup per recipient, no call).
        self.by_uid: Mapping[str, list[Session]] = self._by_uid

    def add(self, session: Session) -> None:
        self._by_uid.setdefault(session.uid, []).append(session)

    def remove(self, session: Session) -> None:
        sessions = self._by_uid.get(session.uid)
        if sessions is None:
            return
        try:
            sessions.remove(session)
        except ValueError:
            return
        if not sessions:
            del self._by_uid[session.uid]

    def sessions_of(self, uid: str) -> list[Session] | tuple[Session, ...]:
        """The uid's authenticated sessions (do not mutate the result)."""
        return self._by_uid.get(uid, _NONE)

    def same_device_flag(self, uid: str, device_flag: int) -> list[Session]:
        return [s for s in self._by_uid.get(uid, _NONE) if s.device_flag == device_flag]

    def online(self, uids: Iterable[str]) -> list[Session]:
        """Every session of the given uids, one entry per connection (uids in given order)."""
        out: list[Session] = []
        for uid in uids:
            out.extend(self._by_uid.get(uid, _NONE))
        return out

    def connection_count(self) -> int:
        return sum(len(s) for s in self._by_uid.values())
