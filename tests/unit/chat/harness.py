"""A chat state machine over the memory KV twin, with shortcuts for tests."""

from __future__ import annotations

from typing import Any

from wukongim.chat.commands import (
    Command,
    CommandResult,
    Result,
    SendMessage,
    SendResult,
    UpsertChannel,
)
from wukongim.chat.state_machine import ChatConfig, ChatStateMachine
from wukongim.store.memory import MemoryKVStore

T0 = 1_700_000_000


class Harness:
    def __init__(self, config: ChatConfig | None = None) -> None:
        self.kv = MemoryKVStore()
        self.config = config
        self.sm = ChatStateMachine(self.kv, config)
        self.next_message_id = 1000

    def apply(self, *commands: Command) -> list[Result]:
        return self.sm.apply(self.sm.applied_index() + 1, list(commands))

    def do(self, command: Command) -> CommandResult:
        result = self.apply(command)[0]
        assert isinstance(result, CommandResult)
        return result

    def send_cmd(
        self, from_uid: str, channel_id: str, channel_type: int = 1, **kw: Any
    ) -> SendMessage:
        self.next_message_id += 1
        fields: dict[str, Any] = {
            "client_msg_no": f"c{self.next_message_id}",
            "payload": b"hello",
            "message_id": self.next_message_id,
            "timestamp_s": T0 + self.next_message_id,
        }
        fields.update(kw)
        return SendMessage(from_uid, channel_id, channel_type, **fields)

    def send(self, from_uid: str, channel_id: str, channel_type: int = 1, **kw: Any) -> SendResult:
        result = self.apply(self.send_cmd(from_uid, channel_id, channel_type, **kw))[0]
        assert isinstance(result, SendResult)
        return result

    def group(self, channel_id: str, *members: str, **flags: Any) -> None:
        self.do(UpsertChannel(channel_id, 2, subscribers=members, **flags))

    def restart(self) -> ChatStateMachine:
        self.sm = ChatStateMachine(self.kv, self.config)
        return self.sm
