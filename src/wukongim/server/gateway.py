"""What client frames mean: CONNECT (auth, key exchange, kicks), then SEND / RECVACK / SUB.

Both transports build their sessions through `Gateway.new_session`; the session decodes and hands
frames here. CONNECT handling follows wkproto §3.1 and http-api §2.13:

  1. uid: non-blank and free of `@ # &`, and not the system uid (nobody may speak with its
     rights), else close WITHOUT a CONNACK;
  2. token: the manager uid needs the manager token (when one is set); with token auth on, the
     token must equal the one stored by /user/token for (uid, deviceFlag), whose device level the
     connection takes; otherwise the connection is a slave;
  3. a banned user (person channel-info `ban`) -> 19;
  4. key exchange (unless encryption is disabled); a bad clientKey -> 2;
  5. CONNACK. On failure it carries the reason, an empty key and salt, then the socket closes;
  6. master/slave kicks of the uid's other sessions with the same device flag, then presence.
"""

from __future__ import annotations

import logging
from typing import Protocol

from wukongim.chat.ids import SYSTEM_UID, is_valid_uid
from wukongim.clock import Clock
from wukongim.config import Config
from wukongim.protocol.crypto import server_handshake
from wukongim.protocol.errors import BadClientKeyError
from wukongim.protocol.wkproto import (
    Connack,
    Connect,
    Disconnect,
    Frame,
    ReasonCode,
    RecvAck,
    Send,
    Sub,
    SubAck,
    connack_server_version,
    negotiate_version,
)
from wukongim.server.delivery import DEVICE_LEVEL_MASTER, Delivery
from wukongim.server.presence import Presence
from wukongim.server.send_path import SendPath
from wukongim.server.sessions import Link, Session, SessionRegistry

log = logging.getLogger(__name__)

VISITOR_SUFFIX = "___vstr"
KICK_REASON_OTHER_DEVICE = "login in other device"
TOKEN_KICK_REASON = "账号在其他设备上登录"  # a master token update through the API
TOKEN_KICK_CLOSE_DELAY_S = 10.0  # default of Config.token_kick_close_delay_s (use the config)
DEVICE_LEVEL_SLAVE = 0


_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _clamp_i64(value: int) -> int:
    """timeDiff is an i64 on the wire; a wild client timestamp must not break the CONNACK."""
    return max(_I64_MIN, min(_I64_MAX, value))


class AuthView(Protocol):
    """What CONNECT reads from the replicated state."""

    def user_token(self, uid: str, device_flag: int) -> tuple[str, int] | None:
        """(token, device level) stored by /user/token, or None."""
        ...

    def is_user_banned(self, uid: str) -> bool: ...


class Gateway:
    """The `FrameHandler` of every client session."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        registry: SessionRegistry,
        presence: Presence,
        auth: AuthView,
        send_path: SendPath,
        delivery: Delivery,
    ) -> None:
        self._config = config
        self._clock = clock
        self._registry = registry
        self._presence = presence
        self._auth = auth
        self._send_path = send_path
        self._delivery = delivery

    def new_session(self, link: Link) -> Session:
        config = self._config
        return Session(
            self._registry.next_conn_id(),
            link,
            self,
            self._registry,
            frame_bytes_max=config.frame_bytes_max,
            output_bytes_max=config.conn_output_bytes_max,
            now_s=self._clock.monotonic_s(),
        )

    # ---- CONNECT ---------------------------------------------------------------------------

    def on_connect(self, session: Session, frame: Connect) -> None:
        if not is_valid_uid(frame.uid) or frame.uid == SYSTEM_UID:
            log.info("closing %r: invalid uid %r", session, frame.uid)
            session.abort()
            return
        session.set_version(negotiate_version(frame.version))
        reason, level = self._check_token(frame)
        if reason == ReasonCode.SUCCESS and self._auth.is_user_banned(frame.uid):
            reason = ReasonCode.BAN
        server_key = salt = ""
        encrypted = not (self._config.disable_encryption or session.jsonrpc)
        if reason == ReasonCode.SUCCESS and encrypted:
            try:
                handshake = server_handshake(frame.client_key)
            except BadClientKeyError as exc:
                log.info("%r: bad clientKey: %s", session, exc)
                reason = ReasonCode.AUTH_FAIL
            else:
                session.crypto = handshake.session
                server_key, salt = handshake.server_key, handshake.salt
        session.write_frame(
            Connack(
                time_diff_ms=_clamp_i64(self._clock.now_ms() - frame.client_timestamp_ms),
                reason_code=reason,
                server_key=server_key,
                salt=salt,
                server_version=connack_server_version(frame.version),
                node_id=self._config.node_id,
            )
        )
        if reason != ReasonCode.SUCCESS:
            log.info("connect of %r refused: reason %d", frame.uid, reason)
            session.kick(None, 0)
            return
        self._kick_others(frame, level)
        session.open(
            uid=frame.uid,
            device_flag=frame.device_flag,
            device_id=frame.device_id,
            device_level=level,
        )
        self._presence.add(session)

    def _check_token(self, frame: Connect) -> tuple[int, int]:
        """(reason code, device level) of the CONNECT's credentials."""
        config = self._config
        if frame.uid == config.manager_uid and config.manager_token:
            ok = frame.token == config.manager_token
            return (ReasonCode.SUCCESS if ok else ReasonCode.AUTH_FAIL), DEVICE_LEVEL_SLAVE
        if not config.token_auth_on or frame.uid.endswith(VISITOR_SUFFIX):
            return ReasonCode.SUCCESS, DEVICE_LEVEL_SLAVE
        if not frame.token:
            return ReasonCode.AUTH_FAIL, DEVICE_LEVEL_SLAVE
        stored = self._auth.user_token(frame.uid, frame.device_flag)
        if stored is None or stored[0] != frame.token:
            return ReasonCode.AUTH_FAIL, DEVICE_LEVEL_SLAVE
        return ReasonCode.SUCCESS, stored[1]

    def _kick_others(self, frame: Connect, level: int) -> None:
        """Master: other device ids of the same flag get DISCONNECT(12), the same device id is
        closed silently. Slave: only the same device id is closed."""
        delay = self._config.kick_close_delay_s
        for other in self._presence.same_device_flag(frame.uid, frame.device_flag):
            if other.device_id == frame.device_id:
                other.kick(None, delay)
            elif level == DEVICE_LEVEL_MASTER:
                other.kick(Disconnect(ReasonCode.CONNECT_KICK, KICK_REASON_OTHER_DEVICE), delay)

    # ---- after authentication ------------------------------------------------------------

    def on_frame(self, session: Session, frame: Frame) -> None:
        kind = type(frame)
        if kind is Send:
            self._send_path.submit(session, frame)  # type: ignore[arg-type]
        elif kind is RecvAck:
            self._delivery.on_recvack(session, frame)  # type: ignore[arg-type]
        elif kind is Disconnect:
            session.kick(None, 0)
        elif kind is Sub:
            assert isinstance(frame, Sub)
            session.write_frame(
                SubAck(frame.sub_no, frame.channel_id, frame.channel_type, frame.action, 1)
            )
        else:
            log.debug("%r: ignoring %s", session, kind.__name__)

    def on_closed(self, session: Session) -> None:
        self._presence.remove(session)

    # ---- kicks from the API ----------------------------------------------------------------

    def kick_uid(self, uid: str, device_flag: int | None, reason: str, delay_s: float) -> int:
        """DISCONNECT(12, reason) to the uid's sessions (of one flag, or all); returns count."""
        sessions = [
            s
            for s in self._presence.sessions_of(uid)
            if device_flag is None or s.device_flag == device_flag
        ]
        for s in sessions:
            s.kick(Disconnect(ReasonCode.CONNECT_KICK, reason), delay_s)
        return len(sessions)

    def kick_for_new_token(self, uid: str, device_flag: int) -> int:
        """A master token was set through the API: the uid's sessions of that flag get
        DISCONNECT and close after `token_kick_close_delay_s`. Returns the count."""
        return self.kick_uid(
            uid, device_flag, TOKEN_KICK_REASON, self._config.token_kick_close_delay_s
        )
