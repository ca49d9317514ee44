"""Settings: sensible defaults, and a start-up error that names each bad variable."""

from __future__ import annotations

import pytest

from bot.core.config import ConfigError, load_settings

TRACKER_VARIABLES = (
    "ACTION_ITEM_TRACKER",
    "JIRA_URL",
    "JIRA_EMAIL",
    "JIRA_API_TOKEN",
    "JIRA_PROJECT_KEY",
    "JIRA_ISSUE_TYPE",
    "JIRA_LABELS",
    "JIRA_WEBHOOK_SECRET",
    "GITHUB_TOKEN",
    "GITHUB_REPOSITORY",
    "GITHUB_API_URL",
    "GITHUB_WEBHOOK_SECRET",
    "TRACKER_POLL_MINUTES",
)


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
        *TRACKER_VARIABLES,
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
        ("ACTION_ITEM_TRACKER", "trello"),
        ("JIRA_URL", "acme.atlassian.net"),
        ("JIRA_PROJECT_KEY", "ops board"),
        ("GITHUB_REPOSITORY", "just-a-name"),
        ("GITHUB_API_URL", "api.github.com"),
        ("TRACKER_POLL_MINUTES", "-1"),
        ("JIRA_LABELS", "post mortem"),
        ("DOCS_SCHEDULE", "nightly"),
        ("DOCS_REPO_DIR", "../elsewhere"),
        ("DOCS_GITHUB_REPOSITORY", "docs"),
        ("RUNBOOKS", "checkout"),
        ("RUNBOOK_CHECK_SCHEDULE", "quarterly someday 10:00"),
        ("RUNBOOK_STALE_INCIDENTS", "0"),
        ("SERVICE_OWNERS", "checkout"),
        ("SERVICE_OWNERS", "checkout=payments-team"),  # a handle starts with @
        ("SERVICE_OWNERS", "checkout=@Payments Team"),
        ("DOC_LATENCY_TARGET_HOURS", "0"),
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


def test_tracker_settings_default_to_no_tracker_and_jira_defaults() -> None:
    settings = load_settings()
    assert settings.action_item_tracker is None
    settings.require_tracker()  # nothing is needed without a tracker
    assert (settings.jira_issue_type, settings.jira_labels) == ("Task", ["postmortem"])
    assert settings.github_api_url == "https://api.github.com"
    assert settings.tracker_poll_minutes == 0


def test_the_chosen_tracker_names_each_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTION_ITEM_TRACKER", "jira")
    monkeypatch.setenv("JIRA_URL", "https://acme.atlassian.net/")
    with pytest.raises(ConfigError, match="JIRA_EMAIL, JIRA_API_TOKEN, JIRA_PROJECT_KEY"):
        load_settings().require_tracker()
    monkeypatch.setenv("ACTION_ITEM_TRACKER", "GitHub")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_x")
    with pytest.raises(ConfigError, match="GITHUB_REPOSITORY"):
        load_settings().require_tracker()
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/ops")
    monkeypatch.setenv("JIRA_LABELS", "postmortem, follow-up")
    settings = load_settings()
    settings.require_tracker()
    assert settings.action_item_tracker == "github" and settings.jira_url == "https://acme.atlassian.net"
    assert settings.jira_labels == ["postmortem", "follow-up"]


def test_an_empty_tracker_setting_means_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTION_ITEM_TRACKER", "")
    assert load_settings().action_item_tracker is None


def test_docs_settings_defaults_and_the_repository_read_from_a_github_url() -> None:
    settings = load_settings()
    assert (settings.docs_repo, settings.docs_repo_dir, settings.docs_schedule) == (
        None,
        "postmortems/",
        "daily 02:00",
    )
    assert settings.docs.days == tuple(range(7)) and (settings.docs.hour, settings.docs.minute) == (2, 0)
    assert load_settings(docs_repo_dir="/docs//postmortems").docs_repo_dir == "docs/postmortems/"
    for url in ("https://github.com/acme/devops-docs.git", "git@github.com:acme/devops-docs.git"):
        assert load_settings(docs_repo=url).docs_pull_repository == "acme/devops-docs"
    assert load_settings(docs_repo="/srv/docs.git").docs_pull_repository is None
    assert (
        load_settings(docs_repo="/srv/docs.git", docs_github_repository="acme/docs").docs_pull_repository
        == "acme/docs"
    )


def test_the_docs_sync_names_each_missing_setting() -> None:
    with pytest.raises(ConfigError, match="DOCS_REPO, GITHUB_TOKEN"):
        load_settings().require_docs()
    with pytest.raises(ConfigError, match="DOCS_GITHUB_REPOSITORY"):
        load_settings(docs_repo="/srv/docs.git", github_token="t").require_docs()
    load_settings(docs_repo="https://github.com/acme/devops-docs", github_token="t").require_docs()


def test_runbooks_are_service_equals_path_and_the_check_is_quarterly_by_default() -> None:
    settings = load_settings(runbooks="checkout=/runbooks/checkout.md, search = runbooks/search.md")
    assert settings.runbooks == {"checkout": "runbooks/checkout.md", "search": "runbooks/search.md"}
    assert settings.runbook_check_schedule == "quarterly mon 10:00" and settings.runbook_stale_incidents == 2
    assert load_settings(runbook_check_schedule="mon 09:00").runbook_check.days == (0,)  # weekly works too


def test_service_owners_map_a_name_or_an_id_to_a_handle_or_a_user() -> None:
    settings = load_settings(service_owners="checkout=@payments-team, PSVC002 = U0ALICE")
    assert settings.service_owners == {"checkout": "@payments-team", "PSVC002": "U0ALICE"}
    assert (load_settings().service_owners, load_settings().doc_latency_target_hours) == ({}, 120)
