"""WKProto key agreement and payload encryption (spec §5), sans-I/O.

Public API
----------
    server_handshake(client_key, *, private_key=None, salt=None) -> ServerHandshake
        Server side of CONNECT: X25519 with the client's base64 key. Returns the session plus
        `server_key` (base64 public key) and `salt` for the CONNACK. Raises BadClientKeyError
        (-> CONNACK reason 2 AuthFail). Omitted private_key / salt are drawn from os.urandom /
        secrets (the shell path); pass them to reproduce the §10 vectors.
    ClientKeyPair.generate() / ClientKeyPair(private_key)
        .client_key                         base64 public key for CONNECT
        .session(server_key, salt)          -> SessionCrypto (raises CryptoError)
    SessionCrypto(aes_key, aes_iv)          one per connection
        .encrypt_payload(plain) -> bytes    base64 ASCII of AES-128-CBC/PKCS#7
        .decrypt_payload(wire) -> bytes     raises PayloadDecryptError
        .msg_key(sign: bytes) -> str        md5hex(base64(AES(sign)))
        .send_msg_key(...) / .send_msg_key_ok(send) / .open_send(send) -> plaintext
        .recv_msg_key(...) -> str
        .seal_recv(...) -> (wire payload, msgKey)   encrypt_payload + recv_msg_key in one call
    derive_aes_key(shared) -> bytes, new_salt() -> str

Rules of this file
------------------
* No I/O and no clock. Randomness only in the defaults of `server_handshake` and
  `ClientKeyPair.generate` (the shell-facing constructors); everything else is deterministic.
* Speed: a connection's key and IV never change (§5.2), so each session keeps ONE CBC encryptor
  and ONE CBC decryptor for its whole life instead of building a Cipher per payload (building one
  costs ~6 us, more than the AES work). CBC contexts carry the last ciphertext block as their
  chaining state; we rewind that state to the IV before each message:
  - decrypt: feed the IV as a dummy first ciphertext block and drop its 16 output bytes. The
    chaining state is then the IV.
  - encrypt: prefix the plaintext with R = AES_decrypt(IV) xor C_last, where C_last is the last
    ciphertext block written; E(R xor C_last) = IV, so the state is the IV again; drop the first
    16 output bytes. (R is computed once per message, after encrypting.)
  Only whole blocks are ever fed, so no partial block is ever left inside a context.
* Faster still: where the C accelerator `_wkcrypto` is built (x86-64 with AES-NI; setup.py
  builds it when a compiler is present), the hot calls (`open_send`, `seal_recv`, the payload and
  msgKey steps) run in one C call each: ~1.5 us instead of ~8. It only takes the happy path;
  when it returns None (bad base64, length or padding, a msgKey mismatch) the pure-Python code
  below runs and decides, so both paths accept and reject exactly the same inputs.
  `SessionCrypto(..., accel=False)` forces the pure-Python path (the tests run both).
"""

from __future__ import annotations

import binascii
import hashlib
import os
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wukongim.protocol.errors import BadClientKeyError, CryptoError, PayloadDecryptError

try:
    from wukongim.protocol import _wkcrypto as _accel
except ImportError:  # not built (no compiler) or no AES-NI: the pure-Python path serves
    _accel = None  # type: ignore[assignment]

ACCELERATED: Final = _accel is not None

if TYPE_CHECKING:
    from wukongim.protocol.wkproto import Send

SALT_ALPHABET: Final = string.digits + string.ascii_letters
SALT_LENGTH: Final = 16
_BLOCK: Final = 16
_PADS: Final = tuple(bytes((n,)) * n for n in range(_BLOCK + 1))
_b64encode = binascii.b2a_base64
_md5 = hashlib.md5
_b64decode = binascii.a2b_base64


def _b64(data: bytes) -> bytes:
    return _b64encode(data, newline=False)


def new_salt() -> str:
    """16 random characters from [0-9a-zA-Z] (the CONNACK salt and AES IV, §5.2)."""
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(SALT_LENGTH))


def derive_aes_key(shared: bytes) -> bytes:
    """aesKey = first 16 chars of md5hex(base64(shared)), as 16 ASCII bytes (§5.2)."""
    return hashlib.md5(_b64(shared)).hexdigest()[:16].encode("ascii")


def _x25519(private_key: bytes, peer_public: bytes) -> bytes:
    """Raw X25519; ValueError on an all-zero result (a low-order peer key)."""
    priv = X25519PrivateKey.from_private_bytes(private_key)
    return priv.exchange(X25519PublicKey.from_public_bytes(peer_public))


def _public_b64(private_key: bytes) -> str:
    public = X25519PrivateKey.from_private_bytes(private_key).public_key().public_bytes_raw()
    return _b64(public).decode("ascii")


class SessionCrypto:
    """AES-128-CBC with the connection's fixed key and IV, plus msgKey signing.

    Not thread-safe (one connection, one event loop). Every method leaves the internal CBC
    contexts rewound, also when it raises.
    """

    __slots__ = (
        "_decryptor",
        "_encryptor",
        "_ks",
        "_pure_ready",
        "_rewind",
        "_rewind_block",
        "aes_iv",
        "aes_key",
    )

    def __init__(self, aes_key: bytes, aes_iv: bytes, *, accel: bool = True) -> None:
        if len(aes_key) != _BLOCK or len(aes_iv) != _BLOCK:
            raise CryptoError("AES key and IV must be 16 bytes")
        self.aes_key = aes_key = bytes(aes_key)
        self.aes_iv = aes_iv = bytes(aes_iv)
        # the C accelerator's key schedule; None: the pure-Python path
        self._ks = _accel.expand_key(aes_key) if accel and _accel is not None else None
        # The pure-Python path's CBC contexts (~2 KB of OpenSSL state per connection): built
        # at once without the accelerator, else on its first fallback (a rare, bad input).
        self._pure_ready = False
        if self._ks is None:
            self._init_pure()

    def _init_pure(self) -> None:
        key, iv = self.aes_key, self.aes_iv
        self._encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        self._decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        ecb = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
        self._rewind = int.from_bytes(ecb.update(iv))  # AES_decrypt(IV)
        self._rewind_block = b""  # the encryptor starts at the IV
        self._pure_ready = True

    # ---- raw AES

    def encrypt(self, plain: bytes) -> bytes:
        """AES-128-CBC/PKCS#7 ciphertext of `plain` (raw bytes, not base64)."""
        ks = self._ks
        if ks is not None:
            return _accel.encrypt(ks, self.aes_iv, plain)
        prefix = self._rewind_block
        out = self._encryptor.update(b"".join((prefix, plain, _PADS[_BLOCK - len(plain) % _BLOCK])))
        self._rewind_block = (self._rewind ^ int.from_bytes(out[-_BLOCK:])).to_bytes(_BLOCK)
        return out[_BLOCK:] if prefix else out

    def decrypt(self, cipher_text: bytes) -> bytes:
        """Plaintext of a raw ciphertext; PayloadDecryptError on bad length or padding."""
        n = len(cipher_text)
        if n == 0 or n % _BLOCK:
            raise PayloadDecryptError(f"ciphertext length {n} is not a positive multiple of 16")
        if not self._pure_ready:
            self._init_pure()
        plain = self._decryptor.update(self.aes_iv + cipher_text)[_BLOCK:]
        pad = plain[-1]
        if not 1 <= pad <= _BLOCK or plain[-pad:] != _PADS[pad]:
            raise PayloadDecryptError("bad PKCS#7 padding")
        return plain[:-pad]

    # ---- wire payloads (§5.3)

    def encrypt_payload(self, plain: bytes) -> bytes:
        """The wire payload: base64 ASCII of the ciphertext."""
        ks = self._ks
        if ks is not None:
            return _accel.encrypt_b64(ks, self.aes_iv, plain)
        return _b64(self.encrypt(plain))

    def decrypt_payload(self, wire: bytes) -> bytes:
        """Plaintext of a wire payload; PayloadDecryptError on bad base64, length or padding."""
        ks = self._ks
        if ks is not None:
            plain: bytes | None = _accel.decrypt_b64(ks, self.aes_iv, wire)
            if plain is not None:
                return plain
        try:
            cipher_text = _b64decode(wire, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise PayloadDecryptError(f"payload is not base64: {exc}") from exc
        return self.decrypt(cipher_text)

    # ---- msgKey (§5.4)

    def msg_key(self, sign: bytes) -> str:
        """md5hex(base64(AES(sign))): 32 lowercase hex chars."""
        ks = self._ks
        if ks is not None:
            return _accel.msg_key(ks, self.aes_iv, sign)
        return hashlib.md5(_b64(self.encrypt(sign))).hexdigest()

    def send_msg_key(
        self,
        client_seq: int,
        client_msg_no: str,
        channel_id: str,
        channel_type: int,
        payload_wire: bytes,
    ) -> str:
        """msgKey of a SEND: sign = clientSeq + clientMsgNo + channelId + channelType + payload."""
        head = f"{client_seq}{client_msg_no}{channel_id}{channel_type}".encode()
        return self.msg_key(head + payload_wire)

    def send_msg_key_ok(self, send: Send) -> bool:
        """Whether a decoded SEND carries the msgKey this session expects."""
        expected = self.send_msg_key(
            send.client_seq, send.client_msg_no, send.channel_id, send.channel_type, send.payload
        )
        given = send.msg_key  # compare_digest raises TypeError on non-ASCII str
        return given.isascii() and secrets.compare_digest(expected, given)

    def open_send(self, send: Send) -> bytes:
        """Verify a SEND's msgKey and decrypt its payload (§5.5).

        Raises PayloadDecryptError on either failure: answer SENDACK reason 9 and drop it.
        (`send_msg_key_ok` + `decrypt_payload` in one call: this is the hot path.)
        """
        wire = send.payload
        head = f"{send.client_seq}{send.client_msg_no}{send.channel_id}{send.channel_type}".encode()
        ks = self._ks
        if ks is not None:
            plain: bytes | None = _accel.open(ks, self.aes_iv, head, wire, send.msg_key)
            if plain is not None:
                return plain
            # a mismatch or an unusual payload: the code below raises the precise error
            if not self._pure_ready:
                self._init_pure()
        sign = head + wire
        prefix = self._rewind_block
        out = self._encryptor.update(b"".join((prefix, sign, _PADS[_BLOCK - len(sign) % _BLOCK])))
        self._rewind_block = (self._rewind ^ int.from_bytes(out[-_BLOCK:])).to_bytes(_BLOCK)
        expected = _md5(_b64(out[_BLOCK:] if prefix else out)).hexdigest()
        given = send.msg_key  # compare_digest raises TypeError on non-ASCII str
        if not (given.isascii() and secrets.compare_digest(expected, given)):
            raise PayloadDecryptError("msgKey mismatch")
        return self.decrypt_payload(wire)

    def seal_recv(  # noqa: PLR0917 - mirrors the sign-string field order of §5.4
        self,
        message_id: int,
        message_seq: int,
        client_msg_no: str,
        timestamp_s: int,
        from_uid: str,
        channel_id: str,
        channel_type: int,
        plain: bytes,
    ) -> tuple[bytes, str]:
        """(wire payload, msgKey) of a RECV: `encrypt_payload(plain)` and `recv_msg_key` over
        it in one call (the fan-out hot path)."""
        ks = self._ks
        if ks is not None:
            head = (
                f"{message_id}{message_seq}{client_msg_no}{timestamp_s}"
                f"{from_uid}{channel_id}{channel_type}"
            ).encode()
            return _accel.seal(ks, self.aes_iv, head, plain)
        update = self._encryptor.update
        rewind = self._rewind
        prefix = self._rewind_block
        out = update(b"".join((prefix, plain, _PADS[_BLOCK - len(plain) % _BLOCK])))
        chain = (rewind ^ int.from_bytes(out[-_BLOCK:])).to_bytes(_BLOCK)
        wire = _b64(out[_BLOCK:] if prefix else out)
        sign = (
            f"{message_id}{message_seq}{client_msg_no}{timestamp_s}"
            f"{from_uid}{channel_id}{channel_type}"
        ).encode() + wire
        out = update(b"".join((chain, sign, _PADS[_BLOCK - len(sign) % _BLOCK])))
        self._rewind_block = (rewind ^ int.from_bytes(out[-_BLOCK:])).to_bytes(_BLOCK)
        return wire, _md5(_b64(out[_BLOCK:])).hexdigest()

    def recv_msg_key(  # noqa: PLR0917 - mirrors the sign-string field order of §5.4
        self,
        message_id: int,
        message_seq: int,
        client_msg_no: str,
        timestamp_s: int,
        from_uid: str,
        channel_id: str,
        channel_type: int,
        payload_wire: bytes,
    ) -> str:
        """msgKey of a RECV over the final (per-recipient) fields (§5.4)."""
        head = (
            f"{message_id}{message_seq}{client_msg_no}{timestamp_s}"
            f"{from_uid}{channel_id}{channel_type}"
        ).encode()
        return self.msg_key(head + payload_wire)


def session_from_shared(shared: bytes, salt: str) -> SessionCrypto:
    """The session for an X25519 shared secret and a CONNACK salt (IV = first 16 chars)."""
    iv = salt[:SALT_LENGTH].encode()
    if len(iv) != SALT_LENGTH:
        raise CryptoError(f"salt must be at least {SALT_LENGTH} ASCII characters")
    return SessionCrypto(derive_aes_key(shared), iv)


@dataclass(frozen=True, slots=True)
class ServerHandshake:
    """Result of the server half of the key exchange: what the CONNACK needs, plus the session."""

    session: SessionCrypto
    server_key: str
    salt: str


def server_handshake(
    client_key: str, *, private_key: bytes | None = None, salt: str | None = None
) -> ServerHandshake:
    """Server side of §5.1: derive the session from CONNECT.clientKey.

    Raises BadClientKeyError for undecodable base64, fewer than 32 bytes, or an all-zero shared
    secret; the gateway answers CONNACK reason 2 (AuthFail) and closes.
    """
    try:
        raw = _b64decode(client_key.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise BadClientKeyError(f"clientKey is not base64: {exc}") from exc
    if len(raw) < 32:
        raise BadClientKeyError(f"clientKey has {len(raw)} bytes, need 32")
    if private_key is None:
        private_key = os.urandom(32)
    try:
        shared = _x25519(private_key, raw[:32])
    except ValueError as exc:
        raise BadClientKeyError(f"key agreement failed: {exc}") from exc
    salt = new_salt() if salt is None else salt
    return ServerHandshake(session_from_shared(shared, salt), _public_b64(private_key), salt)


class ClientKeyPair:
    """Client side of §5.1 (for our client, tests and the bench)."""

    __slots__ = ("client_key", "private_key")

    def __init__(self, private_key: bytes) -> None:
        if len(private_key) != 32:
            raise CryptoError("an X25519 private key has 32 bytes")
        self.private_key = private_key
        self.client_key = _public_b64(private_key)

    @classmethod
    def generate(cls) -> ClientKeyPair:
        return cls(os.urandom(32))

    def session(self, server_key: str, salt: str) -> SessionCrypto:
        """The session from CONNACK.serverKey and CONNACK.salt; CryptoError when unusable."""
        try:
            raw = _b64decode(server_key.encode("ascii"), strict_mode=True)
            shared = _x25519(self.private_key, raw[:32])
        except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
            raise CryptoError(f"unusable serverKey: {exc}") from exc
        return session_from_shared(shared, salt)
