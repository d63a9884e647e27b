"""Settings: every value is checked once, where they are read, and a bad one is named in one line."""

from __future__ import annotations

import pytest

from maestro.settings import Settings, SettingsError


def test_unset_variables_keep_the_defaults() -> None:
    settings = Settings.from_env({"HOME": "/home/u"})
    assert settings.with_(worker="w", state_dir="") == Settings(worker="w")
    assert settings.state_dir == "/home/u/.local/state/maestro"


def test_the_state_dir_is_under_the_runtime_dir_when_there_is_one() -> None:
    assert Settings.from_env({"XDG_RUNTIME_DIR": "/run/user/1"}).state_dir == "/run/user/1/maestro"
    assert Settings.from_env({"MAESTRO_STATE_DIR": "/s"}).state_dir == "/s"


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("MAESTRO_ACK_WAIT_S", "abc", "expected float, got 'abc'"),
        ("MAESTRO_ACK_WAIT_S", "-1", "must be more than 0"),
        ("MAESTRO_ACK_WAIT_S", "0", "must be more than 0"),
        ("MAESTRO_HEARTBEAT_S", "nan", "must be a finite number"),
        ("MAESTRO_REQUEST_TIMEOUT_S", "inf", "must be a finite number"),
        ("MAESTRO_MAX_DELIVER", "0", "must be at least 1"),
        ("MAESTRO_CONCURRENCY", "2.5", "expected int, got '2.5'"),
        ("MAESTRO_FETCH_BATCH", "-3", "must be at least 1"),
        ("MAESTRO_STREAM_REPLICAS", "7", "must be at most 5"),
        ("MAESTRO_DEFAULT_LIMIT_MICRO_USD", "-1", "must be at least 0"),
        ("MAESTRO_PRICE_INPUT_MICRO_USD_PER_TOKEN", "-2", "must be at least 0"),
        ("MAESTRO_HTTP_PORT", "70000", "must be at most 65535"),
        ("MAESTRO_HTTP_PORT", "-2", "must be at least -1"),
        ("MAESTRO_LOG_LEVEL", "loud", "expected one of"),
        ("MAESTRO_ROLES", "tester,wizard", "unknown roles ['wizard']"),
        ("MAESTRO_RESERVATION_TTL_S", "9e9", "must be at most 2.592e+06"),
        ("MAESTRO_DEFAULT_LIMIT_MICRO_USD", str(2**63), "must be at most 1000000000000000"),
        ("MAESTRO_MODELS", "gpt-4o,a b", "['a b']: expected model ids"),
        ("MAESTRO_PRICING", "gpt-4o=abc", "expected input:output USD per million"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_its_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and says in message
    assert "\n" not in message


def test_good_values_of_every_kind_are_read() -> None:
    settings = Settings.from_env(
        {
            "MAESTRO_ACK_WAIT_S": "2.5",
            "MAESTRO_HTTP_PORT": "-1",
            "MAESTRO_LOG_LEVEL": "debug",
            "MAESTRO_DEFAULT_LIMIT_MICRO_USD": "0",
            "MAESTRO_ROLES": "tester, planner",
            "MAESTRO_NATS_URL": "",
        }
    )
    assert (settings.ack_wait_s, settings.http_port, settings.log_level) == (2.5, -1, "DEBUG")
    assert (settings.default_limit_micro_usd, settings.nats_url) == (0, None)
    assert settings.roles == ("tester", "planner")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_auth_may_be_off_where_only_this_machine_reaches_the_api(host: str) -> None:
    settings = Settings.from_env({"MAESTRO_AUTH": "off", "MAESTRO_HTTP_HOST": host})
    assert settings.auth is False


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "maestro.example.com"])
def test_auth_off_is_refused_where_others_could_reach_the_api(host: str) -> None:
    with pytest.raises(SettingsError, match=f"MAESTRO_AUTH=off: refused, the API would listen on {host}"):
        Settings.from_env({"MAESTRO_AUTH": "off", "MAESTRO_HTTP_HOST": host})
    assert Settings.from_env({"MAESTRO_HTTP_HOST": host}).auth is True  # on, the default, it is fine
