"""Settings: sensible defaults, and a start-up error that names each bad variable."""

from __future__ import annotations

import pytest

from bot.core.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in (
        "SLACK_BOT_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_APP_TOKEN",
        "PORT",
        "TIMEZONE",
        "DATABASE_URL",
        "PAGERDUTY_WEBHOOK_SECRETS",
        "RESPONSE_TARGET_MINUTES",
        "SLACK_API_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults() -> None:
    settings = load_settings()
    assert settings.port == 3000
    assert settings.database_url == "sqlite:///postmortem-bot.core.db"
    assert settings.postmortems_channel == "postmortems"
    assert settings.wins_channel == "wins"
    assert settings.incident_channel_prefix == "inc-"
    assert settings.response_target_minutes == 15
    assert settings.slack_api_url == "https://slack.com/api/"
    assert str(settings.tz) == "UTC"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "70000"),
        ("TIMEZONE", "Mars/Olympus"),
        ("RESPONSE_TARGET_MINUTES", "0"),
        ("DATABASE_URL", "mysql://x"),
        ("SLACK_API_URL", "slack.com/api"),
    ],
)
def test_malformed_variable_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()


def test_missing_slack_credentials_are_named() -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET"):
        load_settings().require_slack()


def test_wrong_kind_of_token_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxp-user-token-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN") as info:
        load_settings().require_slack()
    assert "xoxp-user-token-secret" not in str(info.value)


def test_lists_are_comma_separated_and_env_file_is_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("PAGERDUTY_WEBHOOK_SECRETS=old, new\nPORT=8080\n")
    settings = load_settings()
    assert settings.pagerduty_webhook_secrets == ["old", "new"]
    assert settings.port == 8080


def test_cli_reports_bad_config_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import main

    monkeypatch.setenv("PORT", "not-a-port")
    assert main(["db", "upgrade"]) == 2
    assert "PORT" in capsys.readouterr().err
