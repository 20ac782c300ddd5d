"""Protocol errors: who broke the protocol decides what the shell does.

- `RemoteProtocolError`: the peer sent something we cannot accept (garbage bytes, a truncated
  frame, an unknown frame type, invalid UTF-8, an oversized frame). The shell closes that one
  connection; nothing else is affected.
- `LocalProtocolError`: we asked the codec to do something the protocol cannot express (a string
  longer than a u16 length, an integer out of range). This is our bug, not the peer's.
- `CryptoError` and its subclasses: the key exchange or a payload failed. They are *not*
  connection-fatal by themselves: a `BadClientKeyError` maps to CONNACK reason 2 (AuthFail) and a
  `PayloadDecryptError` on SEND maps to SENDACK reason 9 (PayloadDecodeError).
"""


class ProtocolError(Exception):
    """Base class of every error raised by `wukongim.protocol`."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the wire protocol; close its connection."""


class LocalProtocolError(ProtocolError):
    """We tried to encode something the wire protocol cannot carry."""


class CryptoError(ProtocolError):
    """Key agreement or payload encryption failed."""


class BadClientKeyError(CryptoError):
    """The CONNECT clientKey is unusable (bad base64, < 32 bytes, all-zero shared secret).

    The gateway answers CONNACK with reason 2 (AuthFail) and closes.
    """


class PayloadDecryptError(CryptoError):
    """A payload is not valid base64 / AES-CBC / PKCS#7 for this session.

    On SEND the gateway answers SENDACK with reason 9 (PayloadDecodeError).
    """
