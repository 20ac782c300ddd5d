"""Key agreement, AES payloads and msgKey: the §10.1 values and properties against a reference."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from wukongim.protocol import crypto
from wukongim.protocol.crypto import (
    SALT_ALPHABET,
    ClientKeyPair,
    SessionCrypto,
    derive_aes_key,
    new_salt,
    server_handshake,
)
from wukongim.protocol.errors import BadClientKeyError, CryptoError, PayloadDecryptError
from wukongim.protocol.wkproto import Decoder, Send, Side

CLIENT_PRIVATE = bytes.fromhex("3031323334353637383961626364656630313233343536373839616263646566")
CLIENT_KEY = "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4="
SERVER_PRIVATE = b"WuKongIM-spec-test-server-key-32"
SERVER_KEY = "gyi6Dzmb3lRWxOKYuc4vNZ3WL22Wi9J00XhqMc2PX2E="
SHARED = bytes.fromhex("da2c7c68a1a7fefcb1d32d4b290a96f61adf28f0c64f60ce71ef94b70a93f06d")
SALT = "Salt0123456789AB"
PLAIN = b'{"content":"hello","type":1}'
WIRE = b"EmhRRe9O+j/I95nIOcxqOO6jATBGfjjN9lgNeGn3wuQ="
SEND_V2 = bytes.fromhex(
    "325e00000000010004636d6e31000275320100203665636365366130616339373430393065303237343432"
    "633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a41544247666a6a4e396c"
    "674e65476e337775513d"
)
SEND_V5 = bytes.fromhex(
    "326200000000010004636d6e3100027532010000000000203665636365366130616339373430393065303237"
    "343432633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a41544247666a6a4e"
    "396c674e65476e337775513d"
)


@pytest.fixture(scope="module", autouse=True, params=["accel", "pure"])
def crypto_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test of this module runs on the C accelerator and on the pure-Python path."""
    if request.param == "accel" and not crypto.ACCELERATED:
        pytest.skip("the C accelerator is not built here")
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "pure":
            patch.setattr(crypto, "_accel", None)
        yield request.param


def _server_session() -> SessionCrypto:
    return server_handshake(CLIENT_KEY, private_key=SERVER_PRIVATE, salt=SALT).session


def _reference_encrypt(key: bytes, iv: bytes, plain: bytes) -> bytes:
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(padded) + enc.finalize()


# ---------------------------------------------------------------------------------------------
# §10.1


def test_key_agreement_values() -> None:
    hs = server_handshake(CLIENT_KEY, private_key=SERVER_PRIVATE, salt=SALT)
    assert hs.server_key == SERVER_KEY
    assert hs.salt == SALT
    assert base64.b64encode(SHARED) == b"2ix8aKGn/vyx0y1LKQqW9hrfKPDGT2DOce+UtwqT8G0="
    assert hashlib.md5(base64.b64encode(SHARED)).hexdigest() == "77991ccbd1316c22a8a7bc4c9086b3a0"
    assert derive_aes_key(SHARED) == b"77991ccbd1316c22"
    assert hs.session.aes_key == b"77991ccbd1316c22"
    assert hs.session.aes_iv == SALT.encode()


def test_client_key_pair_values() -> None:
    pair = ClientKeyPair(CLIENT_PRIVATE)
    assert pair.client_key == CLIENT_KEY
    session = pair.session(SERVER_KEY, SALT)
    assert session.aes_key == b"77991ccbd1316c22"
    assert session.aes_iv == SALT.encode()


def test_client_takes_first_16_chars_of_a_longer_salt() -> None:
    assert ClientKeyPair(CLIENT_PRIVATE).session(SERVER_KEY, SALT + "xyz").aes_iv == SALT.encode()


def test_payload_vector() -> None:
    session = _server_session()
    assert session.encrypt_payload(PLAIN) == WIRE
    assert session.decrypt_payload(WIRE) == PLAIN


def test_send_msg_key_vector() -> None:
    session = _server_session()
    assert session.send_msg_key(1, "cmn1", "u2", 1, WIRE) == "6ecce6a0ac974090e027442c7e9da1e9"
    assert session.msg_key(b"1cmn1u21" + WIRE) == "6ecce6a0ac974090e027442c7e9da1e9"


@pytest.mark.parametrize(("version", "data"), [(2, SEND_V2), (5, SEND_V5)])
def test_send_vectors_verify_and_decrypt(version: int, data: bytes) -> None:
    (send,) = Decoder(Side.SERVER, version).feed(data)
    session = _server_session()
    assert session.send_msg_key_ok(send)  # type: ignore[arg-type]
    assert session.open_send(send) == PLAIN  # type: ignore[arg-type]


def test_recv_msg_key_vector() -> None:
    session = _server_session()
    key = session.recv_msg_key(
        message_id=1234567890123456789,
        message_seq=1,
        client_msg_no="cmn1",
        timestamp_s=1_700_000_001,
        from_uid="u1",
        channel_id="u1",
        channel_type=1,
        payload_wire=WIRE,
    )
    assert key == "c25135802d855534a08ad231eb7e4c93"


def test_seal_recv_vector_and_chaining() -> None:
    # the fused call equals encrypt_payload + recv_msg_key, also after other operations
    session, twin = _server_session(), _server_session()
    for n in range(3):
        sealed = session.seal_recv(
            1234567890123456789, 1, "cmn1", 1_700_000_001, "u1", "u1", 1, PLAIN
        )
        wire = twin.encrypt_payload(PLAIN)
        key = twin.recv_msg_key(1234567890123456789, 1, "cmn1", 1_700_000_001, "u1", "u1", 1, wire)
        assert sealed == (WIRE, "c25135802d855534a08ad231eb7e4c93") == (wire, key)
        assert session.decrypt_payload(session.encrypt_payload(PLAIN * n)) == PLAIN * n
        assert twin.decrypt_payload(twin.encrypt_payload(PLAIN * n)) == PLAIN * n


def test_open_send_keeps_the_session_usable_after_a_mismatch() -> None:
    (send,) = Decoder(Side.SERVER, 5).feed(SEND_V5)
    session = _server_session()
    bad = Decoder(Side.SERVER, 5).feed(SEND_V5.replace(b"6ecce6a0", b"00000000"))[0]
    with pytest.raises(PayloadDecryptError):
        session.open_send(bad)  # type: ignore[arg-type]
    assert session.open_send(send) == PLAIN  # type: ignore[arg-type]
    assert session.encrypt_payload(PLAIN) == WIRE


# ---------------------------------------------------------------------------------------------
# Failures


@pytest.mark.parametrize(
    "client_key",
    [
        "",
        "not base64!",
        "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4",  # missing padding
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(bytes(32)).decode(),  # low-order point: all-zero shared secret
        "悟空",
    ],
)
def test_bad_client_keys_raise_bad_client_key(client_key: str) -> None:
    with pytest.raises(BadClientKeyError):
        server_handshake(client_key, salt=SALT)


def test_longer_client_key_uses_first_32_bytes() -> None:
    longer = base64.b64encode(base64.b64decode(CLIENT_KEY) + b"extra").decode()
    hs = server_handshake(longer, private_key=SERVER_PRIVATE, salt=SALT)
    assert hs.session.aes_key == b"77991ccbd1316c22"


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"!!!!",
        b"EmhRRe9O+j/I95nIOcxqOO6jATBGfjjN9lgNeGn3wuQ",  # bad padding of the base64
        base64.b64encode(b"x" * 15),  # not a whole block
        base64.b64encode(b"x" * 32),  # whole blocks, garbage PKCS#7 padding (almost surely)
    ],
)
def test_bad_payloads_raise_and_leave_the_session_usable(wire: bytes) -> None:
    session = _server_session()
    with pytest.raises(PayloadDecryptError):
        session.decrypt_payload(wire)
    assert session.decrypt_payload(WIRE) == PLAIN
    assert session.encrypt_payload(PLAIN) == WIRE


def test_wrong_msg_key_fails_open_send() -> None:
    (send,) = Decoder(Side.SERVER, 5).feed(SEND_V5.replace(b"6ecce6a0", b"6ecce6a1"))
    session = _server_session()
    assert not session.send_msg_key_ok(send)  # type: ignore[arg-type]
    with pytest.raises(PayloadDecryptError):
        session.open_send(send)  # type: ignore[arg-type]


@pytest.mark.parametrize("msg_key", ["é" * 32, "é" * 16, "鍵" * 11, ""])
def test_a_non_ascii_msg_key_is_a_mismatch_not_a_crash(msg_key: str) -> None:
    (send,) = Decoder(Side.SERVER, 5).feed(SEND_V5)
    assert isinstance(send, Send)
    bad = replace(send, msg_key=msg_key)
    session = _server_session()
    assert not session.send_msg_key_ok(bad)
    with pytest.raises(PayloadDecryptError):
        session.open_send(bad)
    assert session.open_send(send) == PLAIN


def test_unusable_server_key_raises_crypto_error() -> None:
    with pytest.raises(CryptoError):
        ClientKeyPair(CLIENT_PRIVATE).session("@@@", SALT)
    with pytest.raises(CryptoError):
        ClientKeyPair(CLIENT_PRIVATE).session(SERVER_KEY, "short")


def test_random_handshake_agrees_with_client() -> None:
    pair = ClientKeyPair.generate()
    hs = server_handshake(pair.client_key)
    assert len(hs.salt) == 16
    assert set(hs.salt) <= set(SALT_ALPHABET)
    client = pair.session(hs.server_key, hs.salt)
    assert client.aes_key == hs.session.aes_key
    assert hs.session.decrypt_payload(client.encrypt_payload(PLAIN)) == PLAIN


def test_new_salt_is_alphanumeric() -> None:
    salts = {new_salt() for _ in range(20)}
    assert len(salts) == 20
    assert all(len(s) == 16 and set(s) <= set(SALT_ALPHABET) for s in salts)


# ---------------------------------------------------------------------------------------------
# Properties: the reused CBC contexts behave like a fresh Cipher per call


@given(
    st.binary(min_size=16, max_size=16),
    st.text(alphabet=SALT_ALPHABET, min_size=16, max_size=16),
    st.lists(st.tuples(st.sampled_from(["enc", "dec", "bad", "key"]), st.binary(max_size=80))),
)
def test_session_matches_reference_in_any_call_order(
    key: bytes, salt: str, ops: list[tuple[str, bytes]]
) -> None:
    iv = salt.encode()
    session = SessionCrypto(key, iv)
    for op, data in ops:
        expected = _reference_encrypt(key, iv, data)
        if op == "enc":
            assert session.encrypt_payload(data) == base64.b64encode(expected)
        elif op == "dec":
            assert session.decrypt_payload(base64.b64encode(expected)) == data
        elif op == "key":
            assert session.msg_key(data) == hashlib.md5(base64.b64encode(expected)).hexdigest()
        else:
            garbage = base64.b64encode(data[: len(data) // 16 * 16] or b"x")
            with contextlib.suppress(PayloadDecryptError):
                session.decrypt_payload(garbage)
    assert session.encrypt_payload(b"check") == base64.b64encode(
        _reference_encrypt(key, iv, b"check")
    )
