"""No token or secret ever appears in logs: the whole demo script runs with DEBUG logging on every logger
(and http.client's debug output switched on), and everything captured is scanned."""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

import pytest

from bot.devtools.demo import play_script
from bot.devtools.sandbox.jira import JiraStandIn
from bot.devtools.stack import APP_TOKEN, BOT_TOKEN, PAGERDUTY_SECRET, SIGNING_SECRET, LocalStack
from bot.runtime.redaction import REDACTED, install_redaction, redact
from bot.trackers.jira import basic_credentials

JIRA = JiraStandIn()  # the demo's Jira stand-in's credentials: its token, the Basic header, its secret
SECRETS = (
    BOT_TOKEN,
    SIGNING_SECRET,
    APP_TOKEN,
    PAGERDUTY_SECRET,
    "second-pagerduty-secret",
    JIRA.api_token,
    basic_credentials(JIRA.email, JIRA.api_token),
    JIRA.webhook_secret,
)


def test_the_whole_demo_at_debug_leaves_no_secret_in_the_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger
    for name in ("slack_sdk", "slack_bolt", "urllib3", "http.client", "websockets", "waitress", "sqlalchemy"):
        caplog.set_level(logging.DEBUG, logger=name)
    # urllib's debug output (slack_sdk's WebClient calls urllib.request.urlopen): every request's headers,
    # Authorization included, printed by http.client.
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.HTTPHandler(debuglevel=1)))
    try:
        with LocalStack(
            f"sqlite:///{tmp_path / 'demo.db'}",
            socket_mode=True,  # the app-level token is in use too
            pagerduty_webhook_secrets=[PAGERDUTY_SECRET, "second-pagerduty-secret"],
            tracker="jira",
        ) as stack:
            play_script(stack, say=lambda line: None)
    finally:
        urllib.request.install_opener(None)
    out, err = capfd.readouterr()
    logged = "\n".join(
        [caplog.text, *(r.getMessage() for r in caplog.records), *(r.exc_text or "" for r in caplog.records)]
    )
    assert len(caplog.records) > 500, "DEBUG logging did not reach the loggers"
    for secret in SECRETS:
        for where, text in (("logs", logged), ("stdout", out), ("stderr", err)):
            assert secret not in text, f"{secret!r} appears in the {where}"
    assert "send: b'POST /api/chat.postMessage" in logged  # urllib's debug output went through logging


def test_redaction_covers_configured_secrets_and_token_shapes() -> None:
    install_redaction(["a-configured-secret", None, "ab"])
    text = "token xoxb-123-456-abc and xapp-1-A0-9f, xoxe.xoxp-1-abc, secret a-configured-secret, ab stays"
    assert redact(text) == f"token {REDACTED} and {REDACTED}, {REDACTED}, secret {REDACTED}, ab stays"
