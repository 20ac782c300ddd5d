"""encode_commands / decode_commands round trip, for every command type."""

from __future__ import annotations

import enum
import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wukongim.chat import commands as c

COMMAND_TYPES: list[type[Any]] = list(typing.get_args(c.Command))

I64 = st.integers(-(2**63), 2**63 - 1)


def _strategy(annotation: Any) -> st.SearchStrategy[Any]:
    if annotation is int:
        return I64
    if annotation is str:
        return st.text(max_size=20)
    if annotation is bytes:
        return st.binary(max_size=64)
    if annotation is bool:
        return st.booleans()
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.sampled_from(list(annotation))
    if typing.get_origin(annotation) is tuple:
        return st.lists(st.text(max_size=8), max_size=5).map(tuple)
    raise AssertionError(f"no strategy for {annotation!r}")


def command_strategy(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(hints[f.name]) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


any_command = st.one_of([command_strategy(t) for t in COMMAND_TYPES])


@given(st.lists(any_command, max_size=8))
def test_round_trip(commands: list[c.Command]) -> None:
    assert c.decode_commands(c.encode_commands(commands)) == commands


def test_tags_are_unique() -> None:
    tags = [msgspec.inspect.type_info(t).tag for t in COMMAND_TYPES]  # type: ignore[attr-defined]
    assert len(set(tags)) == len(tags)


def test_corrupt_data_raises_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        c.decode_commands(b"\x91\x92\x63\x01")


def test_send_message_encoding_is_compact() -> None:
    m = c.SendMessage("u1", "u2", 1, "0123456789abcdef0123456789abcdef0", b"x" * 100, 1, 2)
    assert len(c.encode_commands([m])) < 180
