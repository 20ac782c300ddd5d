"""wukongim.client: an asyncio WKProto client (TCP and WebSocket) for tests, bots and the bench."""

from wukongim.client.wkclient import (
    ClientError,
    ConnectionClosedError,
    ConnectRejectedError,
    Received,
    WKClient,
)

__all__ = [
    "ClientError",
    "ConnectRejectedError",
    "ConnectionClosedError",
    "Received",
    "WKClient",
]
