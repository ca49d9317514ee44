"""The Slack Web API client every part of the bot builds: always aimed at SLACK_API_URL (Slack, or the
local sandbox)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.core.config import Settings


def make_client(settings: Settings, token: str | None = None) -> WebClient:
    return WebClient(
        token=token or settings.slack_bot_token,
        base_url=settings.slack_api_url,
        # slack_sdk annotates `timeout` as int, but passes it on to urllib, which takes seconds as a float.
        timeout=settings.slack_api_timeout_seconds,  # type: ignore[arg-type]
    )
