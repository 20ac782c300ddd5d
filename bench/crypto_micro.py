"""Micro-benchmark of per-message crypto: prints microseconds per operation.

    python bench/crypto_micro.py [iterations]

Compares the session's reused CBC contexts (what the server uses) with building a Cipher per
call, for a typical 28-byte chat payload and a 1 KiB payload, and the server's two per-message
calls (open_send, seal_recv) on the C accelerator and on the pure-Python path.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from functools import partial

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wukongim.protocol.crypto import ACCELERATED, SessionCrypto, server_handshake
from wukongim.protocol.wkproto import (
    Decoder,
    Send,
    Side,
    encode_recv,
    encode_sendack,
)

CLIENT_KEY = "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4="
SMALL = b'{"content":"hello","type":1}'
LARGE = bytes(range(256)) * 4


def per_call_cipher_encrypt(key: bytes, iv: bytes, plain: bytes) -> bytes:
    pad = 16 - len(plain) % 16
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(plain + bytes((pad,)) * pad) + enc.finalize()


def per_call_cipher_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = dec.update(data) + dec.finalize()
    return plain[: -plain[-1]]


def measure(label: str, fn: Callable[[], object], number: int) -> None:
    best = min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6
    print(f"{label:<44} {best:8.2f} us")


def main() -> None:
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    hs = server_handshake(CLIENT_KEY)
    session: SessionCrypto = hs.session
    key, iv = session.aes_key, session.aes_iv
    way = "C accelerator" if ACCELERATED else "reused context"
    for name, plain in (("28 B", SMALL), ("1 KiB", LARGE)):
        wire = session.encrypt_payload(plain)
        raw = session.encrypt(plain)
        cases: list[tuple[str, Callable[[], object]]] = [
            (f"encrypt_payload {{}} ({way})", partial(session.encrypt_payload, plain)),
            ("encrypt {} (new Cipher per call)", partial(per_call_cipher_encrypt, key, iv, plain)),
            (f"decrypt_payload {{}} ({way})", partial(session.decrypt_payload, wire)),
            ("decrypt {} (new Cipher per call)", partial(per_call_cipher_decrypt, key, iv, raw)),
        ]
        for label, fn in cases:
            measure(label.format(name), fn, number)
    # The two per-message calls of the server, on the C accelerator and on the pure-Python path
    # (a 100-byte payload as in bench.one_to_one).
    plain = b'{"type":1,"content":"' + b"x" * 77 + b'"}'
    pure = SessionCrypto(key, iv, accel=False)
    wire = pure.encrypt_payload(plain)
    send_frame = Send(
        setting=0,
        client_seq=12345,
        client_msg_no="9f3b2c1a-msgno",
        channel_id="u42",
        channel_type=1,
        payload=wire,
        msg_key=pure.send_msg_key(12345, "9f3b2c1a-msgno", "u42", 1, wire),
    )
    recv_args = (1234567890123456789, 17, "9f3b2c1a-msgno", 1700000001, "u41", "u42", 1, plain)
    paths = [("pure Python", pure)]
    if ACCELERATED:
        paths.insert(0, ("C accelerator", SessionCrypto(key, iv)))
    else:
        print("(the C accelerator is not built here)")
    for path, crypto in paths:
        measure(f"open_send 100 B ({path})", partial(crypto.open_send, send_frame), number)
        measure(f"seal_recv 100 B ({path})", partial(crypto.seal_recv, *recv_args), number)
    wire = session.encrypt_payload(SMALL)
    measure(
        "send_msg_key (28 B payload)",
        lambda: session.send_msg_key(1, "cmn1", "u2", 1, wire),
        number,
    )
    measure(
        "recv_msg_key (28 B payload)",
        lambda: session.recv_msg_key(
            1234567890123456789, 1, "cmn1", 1700000001, "u1", "u1", 1, wire
        ),
        number,
    )
    measure(
        "server_handshake (X25519, per connection)", lambda: server_handshake(CLIENT_KEY), 2_000
    )
    # Codec, for scale.
    send = bytes.fromhex(
        "326200000000010004636d6e3100027532010000000000203665636365366130616339373430393065303237"
        "343432633765396461316539456d68525265394f2b6a2f4939356e494f6378714f4f366a41544247666a6a4e"
        "396c674e65476e337775513d"
    )
    decoder = Decoder(Side.SERVER, 5)
    measure("Decoder.feed(one SEND frame)", lambda: decoder.feed(send), number)
    measure("encode_sendack", lambda: encode_sendack(2, 1234567890123456789, 1, 1, 1), number)
    measure(
        "encode_recv",
        lambda: encode_recv(
            5,
            flags=2,
            setting=0,
            msg_key="c25135802d855534a08ad231eb7e4c93",
            from_uid="u1",
            channel_id="u1",
            channel_type=1,
            client_msg_no="cmn1",
            message_id=1234567890123456789,
            message_seq=1,
            timestamp_s=1700000001,
            payload=wire,
        ),
        number,
    )


if __name__ == "__main__":
    main()
