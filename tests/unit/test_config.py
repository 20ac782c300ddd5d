from pathlib import Path

from wukongim.config import Config, load_config


def test_defaults_match_wukongim_ports() -> None:
    config = load_config(environ={})
    assert config == Config()
    assert config.tcp_addr.endswith(":5100")
    assert config.ws_addr.endswith(":5200")
    assert config.http_addr.endswith(":5001")
    assert config.data_dir == Path("./wukongim-data")


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    toml = tmp_path / "wk.toml"
    toml.write_text('addr = "tcp://127.0.0.1:7000"\ntokenAuthOn = true\n[cluster]\nnodeId = 7\n')
    config = load_config(toml, environ={"WK_TOKENAUTHON": "false"}, overrides={"node_id": 9})
    assert config.tcp_addr == "127.0.0.1:7000"
    assert config.token_auth_on is False
    assert config.node_id == 9


def test_token_kick_close_delay_is_configurable() -> None:
    from wukongim.server.gateway import TOKEN_KICK_CLOSE_DELAY_S  # noqa: PLC0415

    assert Config().token_kick_close_delay_s == TOKEN_KICK_CLOSE_DELAY_S == 10.0
    assert Config().with_overrides(token_kick_close_delay_s=0.5).token_kick_close_delay_s == 0.5
