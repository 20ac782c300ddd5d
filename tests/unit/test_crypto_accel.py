"""The C accelerator of the payload crypto (`_wkcrypto`) against the pure-Python path and the
standard library: same bytes out, same inputs accepted, same errors raised."""

from __future__ import annotations

import base64
import binascii
import hashlib
import platform
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from wukongim.protocol import crypto
from wukongim.protocol.crypto import SALT_ALPHABET, SessionCrypto
from wukongim.protocol.errors import PayloadDecryptError
from wukongim.protocol.wkproto import Send


def _cpu_has_aes() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(line.startswith("flags") and " aes" in line for line in text.splitlines())


def test_the_accelerator_is_built_where_it_can_be() -> None:
    # CI runs on x86-64 Linux with AES-NI: a broken C build must fail here, not pass silently
    # on the slower path.
    if platform.machine() != "x86_64" or not _cpu_has_aes():
        pytest.skip("no AES-NI here: the pure-Python path is the expected one")
    assert crypto.ACCELERATED


pytestmark = pytest.mark.skipif(not crypto.ACCELERATED, reason="the C accelerator is not built")

keys = st.binary(min_size=16, max_size=16)
ivs = st.text(alphabet=SALT_ALPHABET, min_size=16, max_size=16).map(str.encode)
texts = st.text(max_size=40)


def _pair(key: bytes, iv: bytes) -> tuple[SessionCrypto, SessionCrypto]:
    return SessionCrypto(key, iv), SessionCrypto(key, iv, accel=False)


@given(st.binary(max_size=3000))
def test_md5_and_base64_match_the_standard_library(data: bytes) -> None:
    from wukongim.protocol import _wkcrypto  # noqa: PLC0415 - only when built

    assert _wkcrypto.md5_hex(data) == hashlib.md5(data).hexdigest()
    encoded = _wkcrypto.b64encode(data)
    assert encoded == base64.b64encode(data)
    assert _wkcrypto.b64decode(encoded) == (data or None)  # empty input: "unusual", None


@given(st.binary(max_size=64).map(base64.b64encode) | st.binary(max_size=64))
def test_base64_decode_accepts_nothing_python_rejects(data: bytes) -> None:
    from wukongim.protocol import _wkcrypto  # noqa: PLC0415 - only when built

    decoded = _wkcrypto.b64decode(data)
    if decoded is not None:  # None hands the decision to the Python path
        assert decoded == binascii.a2b_base64(data, strict_mode=True)


@given(keys, ivs, st.binary(max_size=600), st.binary(max_size=120))
def test_payload_and_msg_key_steps_are_the_same_bytes(
    key: bytes, iv: bytes, plain: bytes, sign: bytes
) -> None:
    fast, pure = _pair(key, iv)
    wire = fast.encrypt_payload(plain)
    assert wire == pure.encrypt_payload(plain)
    assert fast.encrypt(plain) == pure.encrypt(plain)
    assert fast.decrypt_payload(wire) == pure.decrypt_payload(wire) == plain
    assert fast.msg_key(sign) == pure.msg_key(sign)


@given(
    keys,
    ivs,
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**32 - 1),
    texts,
    st.integers(0, 2**32 - 1),
    texts,
    texts,
    st.integers(0, 255),
    st.binary(max_size=300),
)
def test_seal_recv_is_the_same_bytes(
    key: bytes,
    iv: bytes,
    message_id: int,
    message_seq: int,
    client_msg_no: str,
    timestamp_s: int,
    from_uid: str,
    channel_id: str,
    channel_type: int,
    plain: bytes,
) -> None:
    fast, pure = _pair(key, iv)
    args = (message_id, message_seq, client_msg_no, timestamp_s, from_uid, channel_id)
    assert fast.seal_recv(*args, channel_type, plain) == pure.seal_recv(*args, channel_type, plain)


def _send(session: SessionCrypto, seq: int, no: str, channel: str, plain: bytes) -> Send:
    wire = session.encrypt_payload(plain)
    key = session.send_msg_key(seq, no, channel, 1, wire)
    return Send(
        setting=0,
        client_seq=seq,
        client_msg_no=no,
        channel_id=channel,
        channel_type=1,
        payload=wire,
        msg_key=key,
    )


def _outcome(session: SessionCrypto, send: Send) -> bytes | str:
    try:
        return session.open_send(send)
    except PayloadDecryptError as exc:
        return f"error: {exc}"


@given(
    keys,
    ivs,
    st.integers(0, 2**32 - 1),
    texts,
    texts,
    st.binary(max_size=300),
    st.sampled_from(["as is", "msg key", "payload", "both", "short key"]),
    st.binary(min_size=1, max_size=40),
)
def test_open_send_accepts_and_rejects_the_same_sends(
    key: bytes,
    iv: bytes,
    seq: int,
    no: str,
    channel: str,
    plain: bytes,
    damage: str,
    junk: bytes,
) -> None:
    fast, pure = _pair(key, iv)
    send = _send(pure, seq, no, channel, plain)
    if damage in ("payload", "both"):
        # junk, re-signed (or not) so that both the msgKey check and the decryption are reached
        payload = base64.b64encode(junk) if len(junk) % 2 else junk
        send = replace(send, payload=payload)
        if damage == "payload":
            send = replace(send, msg_key=pure.send_msg_key(seq, no, channel, 1, payload))
    if damage in ("msg key", "both"):
        send = replace(send, msg_key="0" * 32)
    if damage == "short key":
        send = replace(send, msg_key=send.msg_key[:31])
    expected = _outcome(pure, send)
    assert _outcome(fast, send) == expected
    if damage == "as is":
        assert expected == plain
    # a failure leaves both sessions usable
    good = _send(pure, seq, no, channel, plain)
    assert fast.open_send(good) == pure.open_send(good) == plain


@given(keys, ivs, st.binary(max_size=200))
def test_decrypt_payload_of_arbitrary_bytes_agrees(key: bytes, iv: bytes, wire: bytes) -> None:
    fast, pure = _pair(key, iv)

    def outcome(session: SessionCrypto) -> bytes | str:
        try:
            return session.decrypt_payload(wire)
        except PayloadDecryptError as exc:
            return f"error: {exc}"

    assert outcome(fast) == outcome(pure)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1535, 1536, 2047, 2048, 2049, 65_536, 700_000])
def test_large_and_edge_sizes_agree(size: int) -> None:
    # the C code switches from a stack buffer to the heap past 2 KiB
    fast, pure = _pair(bytes(range(16)), b"Salt0123456789AB")
    plain = bytes(i * 7 % 256 for i in range(size))
    wire = fast.encrypt_payload(plain)
    assert wire == pure.encrypt_payload(plain)
    assert fast.decrypt_payload(wire) == plain
    assert fast.msg_key(plain) == pure.msg_key(plain)
    args = (1, 2, "no", 3, "from", "to", 1)
    assert fast.seal_recv(*args, plain) == pure.seal_recv(*args, plain)
    send = _send(pure, 9, "no", "to", plain)
    assert fast.open_send(send) == pure.open_send(send) == plain


def test_the_pure_path_state_is_built_only_on_a_fallback() -> None:
    # ~2 KB of OpenSSL state per connection that the accelerated happy path never needs
    fast, pure = _pair(bytes(range(16)), b"Salt0123456789AB")
    send = _send(pure, 1, "no", "to", b"hello")
    assert fast.open_send(send) == b"hello"
    fast.seal_recv(1, 2, "no", 3, "from", "to", 1, b"hello")
    assert not _built(fast)
    with pytest.raises(PayloadDecryptError):
        fast.decrypt_payload(base64.b64encode(b"x" * 32))  # whole blocks, bad PKCS#7 padding
    assert _built(fast)
    assert fast.open_send(send) == b"hello"


def _built(session: SessionCrypto) -> bool:
    return session._pure_ready
