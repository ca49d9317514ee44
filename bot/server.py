"""One bot process: migrations, the HTTP server, Socket Mode when configured, the ingest writer, the
delivery processor and the outbox worker."""

from __future__ import annotations

import gc
import logging
import signal
import threading

from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk.errors import SlackApiError
from sqlalchemy.engine import make_url

from bot.app import Runtime, build_runtime, create_app, make_client
from bot.channels import ChannelNotFound
from bot.config import Settings
from bot.db import normalize_url, upgrade
from bot.redaction import install_redaction
from bot.scheduler import Scheduler
from bot.web import create_wsgi_app, make_server

log = logging.getLogger(__name__)


class BotServer:
    """Start with `start()` (returns once the server listens), stop with `stop()`; `run()` blocks until a
    SIGTERM or SIGINT. Used by `postmortem-bot serve`, the demo, the tests and the benchmarks."""

    def __init__(self, settings: Settings, *, threads: int = 16) -> None:
        settings.require_slack()
        install_redaction(
            [
                settings.slack_bot_token,
                settings.slack_signing_secret,
                settings.slack_app_token,
                *settings.pagerduty_webhook_secrets,
                make_url(normalize_url(settings.database_url)).password,
            ]
        )
        self.settings = settings
        self._threads = threads
        self.runtime: Runtime | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._socket_mode: SocketModeHandler | None = None
        self._stopped = threading.Event()
        self.scheduler: Scheduler | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.effective_port}"

    def start(self) -> BotServer:
        upgrade(self.settings.database_url)
        self.runtime = runtime = build_runtime(self.settings)
        runtime.ingest.start()  # before the server: a webhook waits for it to store the delivery
        app = create_app(runtime)
        socket_mode = self.settings.slack_app_token is not None
        self._server = make_server(
            create_wsgi_app(runtime, None if socket_mode else app),
            self.settings.host,
            self.settings.port,
            threads=self._threads,
        )
        self._thread = threading.Thread(target=self._serve_http, name="http", daemon=True)
        self._thread.start()
        if socket_mode:
            self._socket_mode = SocketModeHandler(
                app,
                app_token=self.settings.slack_app_token,
                web_client=make_client(self.settings, token=self.settings.slack_app_token),
            )
            self._socket_mode.connect()
        self._join_channels(runtime)
        runtime.outbox.start()
        runtime.processor.start()  # processes what an earlier run stored and left unprocessed, too
        if self.settings.scheduler_enabled:
            self.scheduler = Scheduler(engine=runtime.engine, settings=self.settings).start()
        # What start-up built (SQLAlchemy, Bolt, templates, the imported modules) lives as long as the
        # process: frozen, the collector stops rescanning it at every full collection. Under load that
        # rescan cost about a third of the CPU of a webhook request (B3, measured without storing: 408 ->
        # 294 us per request).
        gc.freeze()
        log.info("postmortem-bot listening on %s (%s)", self.url, "Socket Mode" if socket_mode else "HTTP")
        return self

    def _serve_http(self) -> None:
        try:
            self._server.run()
        except OSError:
            # close() from stop() pulls the socket out from under waitress's select(); that is the exit.
            if not self._stopped.is_set():
                raise

    def _join_channels(self, runtime: Runtime) -> None:
        """Resolve the configured channels now: a typo shows at start-up, not at the first post."""
        for setting in ("postmortems_channel", "wins_channel"):
            name = getattr(self.settings, setting)
            try:
                runtime.channels.join(runtime.channels.resolve(name))
            except (ChannelNotFound, SlackApiError) as exc:
                log.warning("%s=%r: %s (messages for it wait in the outbox)", setting.upper(), name, exc)

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
        if self.runtime is not None:
            self.runtime.processor.stop()
            self.runtime.outbox.stop()
        if self._socket_mode is not None:
            self._socket_mode.close()
        if self._server is not None:
            self._server.close()
        if self._thread is not None:
            self._thread.join(5)
        if self.runtime is not None:
            self.runtime.ingest.stop()  # after the server: requests in flight still get their answer
            self.runtime.engine.dispose()
