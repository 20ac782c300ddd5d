"""The send path, as a row of stages (STYLE §2):

  decode      SEND frame -> verify msgKey, decrypt (failure: SENDACK 9, nothing stored)
  sequence    stamp message id (snowflake) and timestamp: the leader's job, never apply's
  replicate   every SEND of one loop turn goes into ONE proposal (one log entry, one fsync)
  apply       in the state machine: admission (reason codes), per-channel seq, recipients
  acknowledge SENDACK with the SEND's four flags, only once durable (fsync) and applied
  fan_out     RECV to the recipients' online sessions (delivery.py)

`no_persist` messages skip the log: they are admitted and planned against the committed state
(`plan_send` of the state machine: the rules of apply, no writes) and acknowledged with seq 0,
but they wait in line: batches are acknowledged and fanned out strictly in the order they were
taken, so a NoPersist message never overtakes a persisted one sent before it (http-api §2.16).
HTTP sends (`send_api`) take the same path without a session:
no SENDACK, nobody excluded from the fan-out.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, cast

from wukongim.chat.commands import (
    REASON_SUCCESS,
    REASON_SYSTEM_ERROR,
    Command,
    Result,
    SendMessage,
    SendResult,
)
from wukongim.chat.ids import SnowflakeIds
from wukongim.clock import Clock
from wukongim.protocol.errors import LocalProtocolError, PayloadDecryptError
from wukongim.protocol.wkproto import ReasonCode, Send, encode_sendack
from wukongim.server.delivery import Delivery
from wukongim.server.sessions import Session

log = logging.getLogger(__name__)

# A batch (one fsync round) can hold hundreds of sends. Its SENDACKs and RECVs are flushed every
# FLUSH_EVERY sends instead of once at the end, so clients get their first replies (and start
# their next sends, on their own cores) while the rest of the batch is still being delivered.
FLUSH_EVERY = 64


class Proposer(Protocol):
    def submit(
        self,
        group: int,
        commands: Sequence[Command],
        *,
        on_done: Callable[[asyncio.Future[list[Result]]], None] | None = None,
        now: bool = False,
    ) -> asyncio.Future[list[Result]]:
        """The future resolves with the results once durable and applied; `on_done(future)` is
        called right after, in the same loop iteration. `now=True`: this proposal holds the
        whole turn's work, start replicating it at once (not one loop turn later)."""
        ...


class SendPlanner(Protocol):
    """Admission and recipients against the committed state, for messages that skip the log."""

    def plan_send(self, cmd: SendMessage) -> SendResult: ...


# One queued send: (session or None for the API, SEND flags, clientSeq, command, API future).
_Item = tuple[Session | None, int, int, SendMessage, "asyncio.Future[SendResult] | None"]


@dataclass(slots=True)
class _Batch:
    """The sends of one loop turn; `proposal` covers the persisted ones (None if none)."""

    items: list[_Item]
    proposal: asyncio.Future[list[Result]] | None


class SendPath:
    def __init__(
        self,
        proposer: Proposer,
        planner: SendPlanner,
        delivery: Delivery,
        clock: Clock,
        ids: SnowflakeIds,
        *,
        group: int,
    ) -> None:
        self._proposer = proposer
        self._planner = planner
        self._delivery = delivery
        self._clock = clock
        self._ids = ids
        self._group = group
        self._batch: list[_Item] = []
        self._in_order: deque[_Batch] = deque()  # taken, not yet acknowledged
        self._loop = asyncio.get_running_loop()
        self.accepted_count = 0

    # ---- entry points ----------------------------------------------------------------------

    def submit(self, session: Session, send: Send) -> None:
        """A SEND from an authenticated session. Its SENDACK follows asynchronously."""
        now_ms = self._clock.now_ms()
        message_id = self._ids.next(now_ms)
        plaintext = self._decode(session, send, message_id)
        if plaintext is None:
            return
        cmd = self._sequence(session.uid, send, plaintext, message_id, now_ms)
        self._enqueue((session, send.flags, send.client_seq, cmd, None))

    def send_api(self, cmd: SendMessage) -> asyncio.Future[SendResult]:
        """A message from the HTTP API (already stamped). Resolves once durable and applied
        (no_persist: once the sends before it are); delivery to online recipients follows."""
        future: asyncio.Future[SendResult] = self._loop.create_future()
        self._enqueue((None, 0, 0, cmd, future))
        return future

    def new_message_id(self, now_ms: int) -> int:
        return self._ids.next(now_ms)

    # ---- decode ----------------------------------------------------------------------------

    def _decode(self, session: Session, send: Send, message_id: int) -> bytes | None:
        """The plaintext payload, or None after answering SENDACK 9."""
        crypto = session.crypto
        if crypto is None:
            return send.payload
        try:
            return crypto.open_send(send)
        except PayloadDecryptError:
            session.write(
                encode_sendack(
                    send.flags, message_id, send.client_seq, 0, ReasonCode.PAYLOAD_DECODE_ERROR
                )
            )
            return None

    # ---- sequence --------------------------------------------------------------------------

    @staticmethod
    def _sequence(
        uid: str, send: Send, plaintext: bytes, message_id: int, now_ms: int
    ) -> SendMessage:
        return SendMessage(
            from_uid=uid,
            channel_id=send.channel_id,
            channel_type=send.channel_type,
            client_msg_no=send.client_msg_no,
            payload=plaintext,
            message_id=message_id,
            timestamp_s=now_ms // 1000,
            setting=send.setting,
            no_persist=send.no_persist,
            red_dot=send.red_dot,
            sync_once=send.sync_once,
            expire=send.expire,
            topic=send.topic,
            stream_no=send.stream_no,
        )

    # ---- replicate -------------------------------------------------------------------------

    def _enqueue(self, item: _Item) -> None:
        if not self._batch:
            self._loop.call_soon(self._replicate)
        self._batch.append(item)
        self.accepted_count += 1

    def _replicate(self) -> None:
        items, self._batch = self._batch, []
        if not items:
            return
        persisted = [item[3] for item in items if not item[3].no_persist]
        proposal: asyncio.Future[list[Result]] | None = None
        if persisted:
            try:
                proposal = self._proposer.submit(
                    self._group, persisted, on_done=self._drain, now=True
                )
            except RuntimeError as exc:
                log.error("cannot propose %d messages: %s", len(persisted), exc)
                proposal = self._loop.create_future()
                proposal.set_exception(exc)
        self._in_order.append(_Batch(items, proposal))
        if proposal is None or proposal.done():
            self._drain()

    # ---- acknowledge + fan out -------------------------------------------------------------

    def _drain(self, _: object = None) -> None:
        """Acknowledge and fan out every finished batch at the head of the line, in order."""
        in_order = self._in_order
        while in_order:
            head = in_order[0]
            if head.proposal is not None and not head.proposal.done():
                return
            in_order.popleft()
            self._on_applied(head)
        # the SENDACKs and RECVs leave now, not one loop iteration later: that iteration would
        # first read (and decode, decrypt, propose) every socket that became readable meanwhile
        self._delivery.flush_now()

    def _on_applied(self, batch: _Batch) -> None:
        proposal = batch.proposal
        # the state machine answers every SendMessage with a SendResult
        results: Iterator[SendResult] | None = None
        if proposal is not None:
            if proposal.cancelled() or proposal.exception() is not None:
                log.error("proposal of a batch failed: %r", proposal)
            else:
                results = iter(cast("list[SendResult]", proposal.result()))
        deliver = self._delivery.deliver
        flush_now = self._delivery.flush_now
        countdown = FLUSH_EVERY
        for session, flags, client_seq, cmd, api_future in batch.items:
            countdown -= 1
            if not countdown:
                countdown = FLUSH_EVERY
                flush_now()
            if cmd.no_persist:
                result = self._planner.plan_send(cmd)
            elif results is None:
                self._fail(session, flags, client_seq, cmd, api_future)
                continue
            else:
                result = next(results)
            if session is not None:
                session.write(
                    encode_sendack(
                        flags, result.message_id, client_seq, result.message_seq, result.reason_code
                    )
                )
            elif api_future is not None and not api_future.done():
                api_future.set_result(result)
            if result.reason_code != REASON_SUCCESS:
                continue
            try:  # fan out
                deliver(
                    cmd, result.message_seq, result.storage_channel_id, result.recipients, session
                )
            except LocalProtocolError:  # a field the RECV cannot carry: skip it, not the batch
                log.warning("cannot deliver message %d", cmd.message_id, exc_info=True)

    @staticmethod
    def _fail(
        session: Session | None,
        flags: int,
        client_seq: int,
        cmd: SendMessage,
        api_future: asyncio.Future[SendResult] | None,
    ) -> None:
        """Nothing was made durable: tell the sender (reason 15), keep the node serving."""
        if session is not None:
            session.write(encode_sendack(flags, cmd.message_id, client_seq, 0, REASON_SYSTEM_ERROR))
        elif api_future is not None and not api_future.done():
            api_future.set_exception(RuntimeError("message could not be stored"))
