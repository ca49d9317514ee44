"""The bot wired to the local Slack sandbox: the demo, the scenario tests and the benchmarks all start it
this way, so what the tests prove is what the demo shows. Also the sandbox page for such a stack (PagerDuty
sends to its bot; the clock runs its scheduled jobs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.core.clock import utcnow
from bot.core.config import Settings, load_settings
from bot.core.db import session_scope
from bot.devtools.sandbox import DEMO_HUMANS, SlackSandbox
from bot.devtools.sandbox.github import GitHubStandIn
from bot.devtools.sandbox.jira import JiraStandIn
from bot.devtools.sandbox.pagerduty_sender import PagerDutySender
from bot.devtools.sandbox.ui import ClockJob, PagerDutyControls, SandboxPage
from bot.loop import digest, reminders, wins
from bot.runtime.server import BotServer

SIGNING_SECRET = "sandbox-signing-secret"
BOT_TOKEN = "xoxb-sandbox"
APP_TOKEN = "xapp-sandbox"
PAGERDUTY_SECRET = "sandbox-pagerduty-secret"


def tracker_settings(stand_in: JiraStandIn | GitHubStandIn) -> dict[str, Any]:
    """The settings that point the bot at a tracker stand-in (its webhooks signed with the stand-in's
    secret)."""
    if isinstance(stand_in, JiraStandIn):
        return {
            "action_item_tracker": "jira",
            "jira_url": stand_in.url,
            "jira_email": stand_in.email,
            "jira_api_token": stand_in.api_token,
            "jira_project_key": stand_in.project_key,
            "jira_webhook_secret": stand_in.webhook_secret,
        }
    return {
        "action_item_tracker": "github",
        "github_api_url": stand_in.url,
        "github_token": stand_in.token,
        "github_repository": stand_in.repository,
        "github_webhook_secret": stand_in.webhook_secret,
    }


class LocalStack:
    """A started sandbox (with #postmortems and #wins) and a bot serving it on `database_url`."""

    def __init__(
        self,
        database_url: str,
        *,
        socket_mode: bool = False,
        port: int = 0,
        sandbox_port: int = 0,
        clock: Callable[[], datetime] = utcnow,
        tracker: str | None = None,
        **settings: Any,
    ) -> None:
        self.database_url = database_url
        self.socket_mode = socket_mode
        self.port = port
        self.settings_overrides = settings
        # The bot's outbox clock (a test moves it to cover hours of Slack outage in seconds).
        self.clock = clock
        self.sandbox = SlackSandbox(
            signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN, app_token=APP_TOKEN, port=sandbox_port
        )
        # `tracker="jira"` or "github": a stand-in of that tracker, its webhooks pointed at the bot.
        self.tracker: JiraStandIn | GitHubStandIn | None = None
        if tracker == "jira":
            humans = {f"{user.name}@example.com": f"account-{user.name}" for user in DEMO_HUMANS}
            self.tracker = JiraStandIn(users=humans)
        elif tracker == "github":
            self.tracker = GitHubStandIn()
        self.server: BotServer | None = None

    def start(self) -> LocalStack:
        self.sandbox.start()
        if self.tracker is not None:
            self.tracker.start()
            self.settings_overrides = {**tracker_settings(self.tracker), **self.settings_overrides}
        humans = [user.id for user in DEMO_HUMANS]
        for name in ("postmortems", "wins"):
            self.sandbox.create_channel(name, members=humans)
        self.server = BotServer(self.settings(), clock=self.clock).start()
        if not self.socket_mode:
            self.sandbox.bot_url = f"{self.server.url}/slack/events"
        if self.tracker is not None:
            self.tracker.webhook_url = f"{self.server.url}/webhooks/{self.settings().action_item_tracker}"
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
        if self.tracker is not None:
            self.tracker.stop()
        self.sandbox.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def page_for_stack(stack: LocalStack, *, port: int = 0, host: str = "127.0.0.1") -> SandboxPage:
    """The page for a started LocalStack: PagerDuty sends to its bot, the clock runs its scheduled jobs."""
    settings = stack.settings()
    secrets = settings.pagerduty_webhook_secrets
    pagerduty = PagerDutyControls(PagerDutySender(stack.bot_url, secrets[0])) if secrets else None
    return SandboxPage(stack.sandbox, pagerduty=pagerduty, jobs=stack_jobs(stack), host=host, port=port)


def stack_jobs(stack: LocalStack) -> dict[str, ClockJob]:
    """The scheduled jobs, run now for the current instant (the same functions the scheduler calls)."""
    assert stack.server is not None and stack.server.runtime is not None, "start the stack first"
    runtime = stack.server.runtime
    settings = runtime.settings

    def run(action: Callable[..., Any], **kwargs: Any) -> Any:
        with session_scope(runtime.engine) as session:
            result = action(session=session, settings=settings, **kwargs)
        runtime.outbox.wake()
        return result

    def run_digest() -> str:
        now = utcnow()
        # The digest covers the seven local days before its scheduled day; scheduled for tomorrow, that
        # is the last seven days including today, so what just happened on the page is in it.
        series = run(digest.send_digest, now=now, scheduled_for=now + timedelta(days=1))
        if series is None:
            return f"Today's digest was posted to #{settings.digest_target} already: nothing new posted"
        return (
            f"Digest of the last 7 days posted to #{settings.digest_target}, with a chart of "
            f"{sum(series.incidents)} incident(s) over {len(series.days)} days"
        )

    def run_reminders() -> str:
        now = utcnow()
        posted = run(reminders.send_retro_reminder, now=now, scheduled_for=now)
        nudges = run(reminders.send_nudges, now=now)
        retro = (
            f"Retro reminder posted to #{settings.postmortems_channel}"
            if posted
            else "This retro reminder was posted already: nothing new posted"
        )
        return (
            f"{retro}; {nudges} nudge(s) due now "
            "(nudges go out in working hours of WORKING_DAYS, from 24 h after a resolve)"
        )

    def run_wins() -> str:
        keys = run(wins.announce, now=utcnow())
        return f"{len(keys)} win(s) or alert(s) announced" if keys else "No new wins or alerts are due"

    return {
        "digest": ClockJob("Run the weekly digest", run_digest),
        "reminders": ClockJob("Run reminders and nudges", run_reminders),
        "wins": ClockJob("Announce wins and alerts", run_wins),
    }
