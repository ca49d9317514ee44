"""One bot process, and the one place that wires it (the composition root): the runtime the flows share,
the Bolt app with every listener (handlers/), the HTTP routes, Socket Mode when configured, the ingest
writer, the delivery processor, the outbox worker and the scheduler."""

from __future__ import annotations

import gc
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from slack_bolt import App, BoltContext
from slack_bolt.adapter.socket_mode import SocketModeHandler
from sqlalchemy.engine import make_url
from waitress.server import BaseWSGIServer

import handlers
from bot.core.clock import utcnow
from bot.core.config import Settings
from bot.core.db import make_engine, normalize_url, upgrade
from bot.flows.channel_life import refresh_privacy
from bot.flows.context import Runtime
from bot.flows.incidents import channel_opened, person_matched
from bot.flows.trackers import issue_changed, issues_shown
from bot.loop.metrics import MetricsSnapshot
from bot.runtime.ingest import IngestWriter
from bot.runtime.invitations import Invitations
from bot.runtime.outbox_pacing import Pacer
from bot.runtime.outbox_worker import OutboxWorker
from bot.runtime.owner_lookups import OwnerLookups
from bot.runtime.pagerduty_api import pagerduty_api_from
from bot.runtime.processor import DeliveryProcessor
from bot.runtime.redaction import install_redaction
from bot.runtime.scheduler import Scheduler
from bot.runtime.slack_health import SlackStartup, join_channel
from bot.runtime.tracker_routes import GITHUB_PATH, JIRA_PATH, github_webhook, jira_webhook
from bot.runtime.tracker_worker import TrackerWorker, make_tracker, slack_user_email
from bot.runtime.web import Router, health, make_server, metrics, ready, slack_events
from bot.runtime.webhook_route import PATH as PAGERDUTY_PATH
from bot.runtime.webhook_route import pagerduty_webhook
from bot.runtime.workers import MetricsRefresher, PollingWorker
from bot.slack.channels import ChannelDirectory
from bot.slack.client import make_client
from bot.slack.people import PeopleDirectory
from bot.trackers.jira import basic_credentials

log = logging.getLogger(__name__)

# How often start-up work that needs Slack (Socket Mode, the configured channels) is tried again while
# Slack is unreachable.
RESOLVE_INTERVAL_SECONDS = 15.0


@dataclass
class Process:
    """The runtime the flows share, and the workers of this process around it."""

    runtime: Runtime
    outbox: OutboxWorker
    # Inbound webhooks: stored by group commit (ingest.py), then processed by a worker (processor.py).
    ingest: IngestWriter
    processor: DeliveryProcessor
    # /metrics serves `metrics`, which `metrics_refresher` recomputes periodically.
    metrics: MetricsSnapshot
    metrics_refresher: MetricsRefresher
    # Action items in Jira or GitHub (ACTION_ITEM_TRACKER); None without a tracker.
    trackers: TrackerWorker | None = None
    # Service owners from PagerDuty (docs/service-owners.md); None without PAGERDUTY_API_TOKEN.
    owner_lookups: OwnerLookups | None = None


@dataclass
class _Workers:
    """What a committed change wakes: the outbox, and the tracker worker when there is one."""

    workers: list[PollingWorker]

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()


def build_process(settings: Settings, *, clock: Callable[[], datetime] = utcnow) -> Process:
    """`clock` is the outbox's "now" (tests move it to cover hours of Slack outage in seconds)."""
    engine = make_engine(settings.database_url)
    client = make_client(settings)
    # The outbox owns retries (it honours Retry-After, backs off, parks what no retry can fix), so its
    # client must not retry on its own and hide a failure or send twice.
    outbox_client = make_client(settings)
    outbox_client.retry_handlers = []
    channels = ChannelDirectory(client)
    pagerduty = pagerduty_api_from(settings)
    outbox = OutboxWorker(
        engine=engine,
        client=outbox_client,
        channels=channels,
        on_channel=partial(channel_opened, settings=settings),
        invitations=Invitations(
            client=outbox_client,
            pagerduty=pagerduty,
            matched=partial(person_matched, settings=settings),
        ),
        max_backoff=settings.outbox_max_backoff_seconds,
        claim_seconds=settings.outbox_claim_seconds,
        clock=clock,
        pacer=Pacer() if settings.outbox_pacing else None,
    )
    wake = _Workers([outbox])
    runtime = Runtime(
        settings=settings,
        engine=engine,
        client=client,
        channels=channels,
        outbox=wake,
        people=PeopleDirectory(client),
    )
    ingest = IngestWriter(engine=engine, on_stored=lambda: processor.wake())
    processor = DeliveryProcessor(
        engine=engine, settings=settings, on_processed=outbox.wake, yield_to=ingest.wait_until_idle
    )
    tracker = make_tracker(settings)
    trackers = None
    if tracker is not None:
        trackers = TrackerWorker(
            engine=engine,
            tracker=tracker,
            on_remote_change=lambda name, issue_id, done, at: issue_changed(
                runtime, tracker=name, issue_id=issue_id, done=done, at=at
            ),
            on_shown=lambda item_ids, at: issues_shown(runtime, item_ids=item_ids, at=at),
            owner_email=slack_user_email(client)
            if settings.action_item_tracker == "jira"
            else lambda _user: None,
            max_backoff=settings.outbox_max_backoff_seconds,
            claim_seconds=settings.outbox_claim_seconds,
            poll_minutes=settings.tracker_poll_minutes,
        )
        wake.workers.append(trackers)
    snapshot = MetricsSnapshot(engine=engine, settings=settings)
    return Process(
        runtime=runtime,
        outbox=outbox,
        ingest=ingest,
        processor=processor,
        metrics=snapshot,
        metrics_refresher=MetricsRefresher(snapshot, interval=settings.metrics_refresh_seconds),
        trackers=trackers,
        owner_lookups=OwnerLookups(engine=engine, settings=settings, pagerduty=pagerduty)
        if pagerduty
        else None,
    )


def create_app(runtime: Runtime) -> App:
    """The Bolt app with every listener registered; listeners receive `runtime` by Bolt's keyword
    injection (it is a context key).

    `process_before_response=True`: listeners run before the HTTP answer goes out (measured twice as fast
    as acking on a thread, docs/architecture.md). Listeners therefore stay quick: slow work goes to the
    outbox.
    """
    app = App(
        client=runtime.client,
        signing_secret=runtime.settings.slack_signing_secret,
        process_before_response=True,
        token_verification_enabled=False,
        logger=logging.getLogger("slack_bolt"),
    )

    @app.middleware
    def provide_runtime(context: BoltContext, next: Callable[[], None]) -> None:
        context["runtime"] = runtime
        next()

    handlers.register(app)
    return app


def create_wsgi_app(process: Process, bolt_app: App | None) -> Router:
    """All routes. `bolt_app` is None in Socket Mode, where Slack traffic does not come over HTTP."""
    settings, engine = process.runtime.settings, process.runtime.engine
    router = Router()
    if bolt_app is not None:
        router.add("POST", "/slack/events", slack_events(bolt_app, settings.slack_signing_secret or ""))
    router.add("GET", "/healthz", health(engine, process.outbox.health))
    router.add("GET", "/readyz", ready(engine, process.ingest))
    router.add("GET", "/metrics", metrics(process.metrics))
    router.add("POST", PAGERDUTY_PATH, pagerduty_webhook(settings, process.ingest))
    if process.trackers is not None:
        router.add("POST", JIRA_PATH, jira_webhook(process.runtime))
        router.add("POST", GITHUB_PATH, github_webhook(process.runtime))
    return router


class BotServer:
    """Start with `start()` (returns once the server listens), stop with `stop()`; `run()` blocks until a
    SIGTERM or SIGINT. Used by `postmortem-bot serve`, the demo, the tests and the benchmarks."""

    def __init__(
        self,
        settings: Settings,
        *,
        threads: int = 16,
        clock: Callable[[], datetime] = utcnow,
        resolve_interval: float = RESOLVE_INTERVAL_SECONDS,
    ) -> None:
        settings.require_slack()
        settings.require_tracker()
        install_redaction(
            [
                settings.slack_bot_token,
                settings.slack_signing_secret,
                settings.slack_app_token,
                *settings.pagerduty_webhook_secrets,
                settings.jira_api_token,
                settings.jira_api_token
                and basic_credentials(settings.jira_email or "", settings.jira_api_token),
                settings.jira_webhook_secret,
                settings.github_token,
                settings.github_webhook_secret,
                settings.pagerduty_api_token,
                make_url(normalize_url(settings.database_url)).password,
            ]
        )
        self.settings = settings
        self._threads = threads
        self._clock = clock
        self._resolve_interval = resolve_interval
        self.startup: SlackStartup | None = None
        self.process: Process | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._socket_mode: SocketModeHandler | None = None
        self._stopped = threading.Event()
        self.scheduler: Scheduler | None = None

    @property
    def runtime(self) -> Runtime | None:
        return self.process.runtime if self.process else None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        # waitress sets effective_port when it binds; types-waitress does not declare it.
        return f"http://127.0.0.1:{self._server.effective_port}"  # type: ignore[attr-defined]

    def start(self) -> BotServer:
        upgrade(self.settings.database_url)
        self.process = process = build_process(self.settings, clock=self._clock)
        runtime = process.runtime
        process.ingest.start()  # before the server: a webhook waits for it to store the delivery
        app = create_app(runtime)
        socket_mode = self.settings.slack_app_token is not None
        self._server = server = make_server(
            create_wsgi_app(process, None if socket_mode else app),
            self.settings.host,
            self.settings.port,
            threads=self._threads,
        )
        self._thread = threading.Thread(target=self._serve_http, args=(server,), name="http", daemon=True)
        self._thread.start()
        tasks = {
            setting.upper(): join_channel(runtime.channels, setting, getattr(self.settings, setting))
            for setting in ("postmortems_channel", "wins_channel")
        }
        if socket_mode:
            self._socket_mode = SocketModeHandler(
                app,
                app_token=self.settings.slack_app_token,
                web_client=make_client(self.settings, token=self.settings.slack_app_token),
            )
            tasks = {"Socket Mode": self._socket_mode.connect, **tasks}
        # Slack now: a typo or a bad token shows at start-up. When Slack is unreachable the bot serves
        # anyway (webhooks are stored) and finishes these once Slack answers.
        self.startup = SlackStartup(
            tasks=tasks, health=process.outbox.health, poll_interval=self._resolve_interval
        )
        self.startup.run_once()
        if self.startup.pending:
            self.startup.start()
        process.outbox.start()
        if process.trackers is not None:
            process.trackers.start()
        process.processor.start()  # processes what an earlier run stored and left unprocessed, too
        process.metrics_refresher.start()
        if process.owner_lookups is not None:
            process.owner_lookups.start()
        if self.settings.scheduler_enabled:
            self.start_scheduler()
        # What start-up built (SQLAlchemy, Bolt, templates, the imported modules) lives as long as the
        # process: frozen, the collector stops rescanning it at every full collection. Under load that
        # rescan cost about a third of the CPU of a webhook request (B3, measured without storing: 408 ->
        # 294 us per request).
        gc.freeze()
        log.info("postmortem-bot listening on %s (%s)", self.url, "Socket Mode" if socket_mode else "HTTP")
        return self

    def start_scheduler(self) -> None:
        """Run the scheduled jobs in this process: start() does unless SCHEDULER_ENABLED=false; the demo
        does once its script has played, so that no sweep posts in the middle of the story."""
        assert self.process is not None, "start() first"
        runtime = self.process.runtime
        self.scheduler = Scheduler(
            engine=runtime.engine,
            settings=self.settings,
            before_public=lambda now: refresh_privacy(runtime, at=now),
        ).start()

    def _serve_http(self, server: BaseWSGIServer) -> None:
        try:
            server.run()
        except OSError:
            # close() from stop() pulls the socket out from under waitress's select(); that is the exit.
            if not self._stopped.is_set():
                raise

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT, then stop cleanly."""
        self.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopped.set())
        self._stopped.wait()
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.startup is not None:
            self.startup.stop()
        if self.process is not None:
            self.process.processor.stop()
            self.process.outbox.stop()
            self.process.metrics_refresher.stop()
            for worker in (self.process.trackers, self.process.owner_lookups):
                if worker is not None:
                    worker.stop()
        if self._socket_mode is not None:
            self._socket_mode.close()  # type: ignore[no-untyped-call]  # unannotated, as connect
        if self._server is not None:
            self._server.close()
        if self._thread is not None:
            self._thread.join(5)
        if self.process is not None:
            self.process.ingest.stop()  # after the server: requests in flight still get their answer
            self.process.runtime.engine.dispose()
