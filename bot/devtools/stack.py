"""The bot wired to the local Slack sandbox: the demo, the scenario tests and the benchmarks all start it
this way, so what the tests prove is what the demo shows."""

from __future__ import annotations

from typing import Any

from bot.core.config import Settings, load_settings
from bot.devtools.sandbox import DEMO_HUMANS, SlackSandbox
from bot.runtime.server import BotServer

SIGNING_SECRET = "sandbox-signing-secret"
BOT_TOKEN = "xoxb-sandbox"
APP_TOKEN = "xapp-sandbox"
PAGERDUTY_SECRET = "sandbox-pagerduty-secret"


class LocalStack:
    """A started sandbox (with #postmortems and #wins) and a bot serving it on `database_url`."""

    def __init__(
        self,
        database_url: str,
        *,
        socket_mode: bool = False,
        port: int = 0,
        sandbox_port: int = 0,
        **settings: Any,
    ) -> None:
        self.database_url = database_url
        self.socket_mode = socket_mode
        self.port = port
        self.settings_overrides = settings
        self.sandbox = SlackSandbox(
            signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN, app_token=APP_TOKEN, port=sandbox_port
        )
        self.server: BotServer | None = None

    def start(self) -> LocalStack:
        self.sandbox.start()
        humans = [user.id for user in DEMO_HUMANS]
        for name in ("postmortems", "wins"):
            self.sandbox.create_channel(name, members=humans)
        self.server = BotServer(self.settings()).start()
        if not self.socket_mode:
            self.sandbox.bot_url = f"{self.server.url}/slack/events"
        return self

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_app_token": APP_TOKEN if self.socket_mode else None,
            "slack_api_url": self.sandbox.api_url,
            "database_url": self.database_url,
            "host": "127.0.0.1",
            "port": self.port,
            "pagerduty_webhook_secrets": [PAGERDUTY_SECRET],
        }
        values.update(self.settings_overrides)
        return load_settings(**values)

    @property
    def bot_url(self) -> str:
        assert self.server is not None, "start() first"
        return self.server.url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.sandbox.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
