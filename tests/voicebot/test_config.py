"""Configuration precedence and validation."""

import pytest

from voicebot.config import Config, ConfigError, load_config


def test_defaults_need_no_file_or_environment():
    config = load_config(env={})
    assert config == Config()
    assert config.asr.model == "tiny.en"


def test_file_then_env_then_flags(tmp_path):
    path = tmp_path / "bot.toml"
    path.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[turns]\nendpoint_ms = 800\n')
    env = {"VOICEBOT_SERVER__PORT": "9100", "VOICEBOT_ASR__MODEL": "base", "OTHER": "x"}
    config = load_config(path, env=env, overrides={"server": {"port": 9200, "host": None}})
    assert config.server.port == 9200  # flag beats env beats file
    assert config.server.host == "0.0.0.0"  # an unset flag does not override
    assert config.asr.model == "base"
    assert config.turns.endpoint_ms == 800


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[server]\nprot = 1\n", "unknown setting 'prot'"),
        ("[nosuch]\nx = 1\n", "unknown section [nosuch]"),
        ('[server]\nport = "eighty"\n', "expected int"),
        ("[twilio]\nvalidate_signatures = 3\n", "expected bool"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_files_fail_with_a_clear_message(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(path, env={})


def test_missing_file_and_bad_env_are_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="expected bool"):
        load_config(env={"VOICEBOT_TWILIO__VALIDATE_SIGNATURES": "maybe"})


def test_auth_token_comes_only_from_the_environment():
    config = load_config(env={})
    assert config.twilio_auth_token({"TWILIO_AUTH_TOKEN": "secret"}) == "secret"
    assert config.twilio_auth_token({}) is None


def test_the_example_config_file_loads():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "config" / "voicebot.example.toml"
    config = load_config(path, env={})
    assert config.server.public_url == "https://bot.example.com"
    assert config.turns.endpoint_ms == 600
