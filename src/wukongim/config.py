"""Configuration: frozen dataclasses, loaded once in the CLI and passed down explicitly.

Precedence: defaults < TOML file < `WK_*` environment variables < CLI flags. Key names follow
WuKongIM where one exists (`addr`, `wsAddr`, `httpAddr`, `tokenAuthOn`, `managerToken`, ...).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./wukongim-data")
    node_id: int = 1001
    tcp_addr: str = "0.0.0.0:5100"  # WuKongIM `addr`
    ws_addr: str = "0.0.0.0:5200"  # `wsAddr`
    http_addr: str = "0.0.0.0:5001"  # `httpAddr`
    manager_addr: str = "0.0.0.0:5300"  # `manager.addr`
    cluster_addr: str = "0.0.0.0:11110"  # `cluster.addr`
    token_auth_on: bool = False  # `tokenAuthOn`
    manager_uid: str = "____manager"  # `managerUID`
    manager_token: str = ""  # `managerToken`
    disable_encryption: bool = False
    disable_jsonrpc: bool = False
    whitelist_off_of_person: bool = True  # `whitelistOffOfPerson`
    # Connection life cycle (spec wkproto §1.4)
    auth_idle_timeout_s: float = 4.0
    conn_idle_time_s: float = 180.0  # `connIdleTime`
    kick_close_delay_s: float = 2.0
    # After a master /user/token update the old sessions get DISCONNECT, then close this late
    token_kick_close_delay_s: float = 10.0
    frame_bytes_max: int = 1_048_576
    conn_output_bytes_max: int = 8 * 1024 * 1024
    # RECV retry (`messageRetry.*`)
    recv_retry_interval_s: float = 60.0
    recv_retry_scan_s: float = 30.0
    recv_retry_max: int = 5
    fsync: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


# TOML / env key -> Config field
_KEY_MAP: dict[str, str] = {
    "dataDir": "data_dir",
    "rootDir": "data_dir",
    "nodeId": "node_id",
    "cluster.nodeId": "node_id",
    "addr": "tcp_addr",
    "wsAddr": "ws_addr",
    "httpAddr": "http_addr",
    "manager.addr": "manager_addr",
    "cluster.addr": "cluster_addr",
    "tokenAuthOn": "token_auth_on",
    "managerUID": "manager_uid",
    "managerToken": "manager_token",
    "disableEncryption": "disable_encryption",
    "disableJSONRPC": "disable_jsonrpc",
    "whitelistOffOfPerson": "whitelist_off_of_person",
    "connIdleTime": "conn_idle_time_s",
    "fsync": "fsync",
}


def _strip_scheme(addr: str) -> str:
    for scheme in ("tcp://", "ws://", "wss://", "http://"):
        if addr.startswith(scheme):
            return addr[len(scheme) :]
    return addr


def _coerce(name: str, value: Any) -> Any:
    current = getattr(Config(), name)
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    if isinstance(current, int):
        return int(value)
    if isinstance(current, float):
        if isinstance(value, str) and value.endswith("m"):
            return float(value[:-1]) * 60
        if isinstance(value, str) and value.endswith("s"):
            return float(value[:-1])
        return float(value)
    if isinstance(current, Path):
        return Path(value)
    if name.endswith("_addr"):
        return _strip_scheme(str(value))
    return value


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{full}."))
        else:
            out[full] = value
    return out


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a Config from a TOML file, `WK_*` environment variables and CLI overrides."""
    changes: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as f:
            for key, value in _flatten(tomllib.load(f)).items():
                name = _KEY_MAP.get(key)
                if name is not None:
                    changes[name] = _coerce(name, value)
    env = os.environ if environ is None else environ
    by_env = {"WK_" + k.upper().replace(".", "_"): v for k, v in _KEY_MAP.items()}
    for env_key, name in by_env.items():
        if env_key in env:
            changes[name] = _coerce(name, env[env_key])
    for name, value in (overrides or {}).items():
        if value is not None:
            changes[name] = _coerce(name, value)
    return Config(**changes)
