"""The bot killed with SIGKILL mid-load and restarted; two replicas on one PostgreSQL; SQLite under
concurrent writers. Every request answered 2xx is stored, nothing is posted twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlmodel import Session, col, func, select

from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import BOT_TOKEN, PAGERDUTY_SECRET, SIGNING_SECRET
from tests.faults.ledger import Figures, count_messages, outbox_settled, pagerduty_body, post_pagerduty

pytestmark = pytest.mark.faults


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServeProcess:
    """`postmortem-bot serve` in a child process, configured through the environment."""

    def __init__(self, sandbox: SlackSandbox, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": sandbox.api_url,
            "DATABASE_URL": database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "PAGERDUTY_WEBHOOK_SECRETS": PAGERDUTY_SECRET,
            "SCHEDULER_ENABLED": "false",
            "OUTBOX_CLAIM_SECONDS": "2",
            "OUTBOX_MAX_BACKOFF_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return
            except OSError:
                assert self.process.poll() is None, self.process.stderr.read().decode()  # type: ignore[union-attr]
                time.sleep(0.1)
        raise TimeoutError("the bot did not start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def test_sigkill_mid_load_loses_nothing_answered_and_posts_nothing_twice(
    sandbox: SlackSandbox, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    database_url = f"sqlite:///{tmp_path / 'killed.db'}"
    server = ServeProcess(sandbox, database_url)
    server.start()
    sandbox.bot_url = server.url + "/slack/events"
    # Slow Slack down a little, so the kill lands while the outbox is between sending and recording.
    sandbox.faults.delay(0.05, methods=["chat.postMessage", "conversations.create"])
    figures = Figures()
    bodies = [pagerduty_body(f"QKILL{n:03d}", 500 + n, "triggered", minutes=0) for n in range(40)]
    answers: dict[int, int] = {}
    killed = threading.Event()

    def send(n: int) -> None:
        answers[n] = post_pagerduty(server.url, bodies[n], PAGERDUTY_SECRET, timeout=5)
        if n == 15 and not killed.is_set():
            killed.set()
            server.kill()

    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(send, range(len(bodies))))
        figures.sent = len(bodies)
        acknowledged = {n for n, status in answers.items() if 200 <= status < 300}
        assert 0 < len(acknowledged) < len(bodies), answers  # the kill really was mid-load
        server.start()  # the same database, a fresh process
        # PagerDuty retries whatever was not answered 2xx.
        for n in sorted(set(range(len(bodies))) - acknowledged):
            figures.sent += 1
            assert 200 <= post_pagerduty(server.url, bodies[n], PAGERDUTY_SECRET) < 300
        sandbox.wait_for(
            lambda: outbox_settled(database_url), timeout=60, message="deliveries or outbox never settled"
        )
    finally:
        server.stop()

    figures.acknowledged = len(acknowledged)
    engine = make_engine(database_url)
    with Session(engine) as session:
        archived = set(session.exec(select(InboundDelivery.delivery_id)).all())
        incidents = session.exec(select(func.count()).select_from(Incident)).one()
    engine.dispose()
    figures.stored = sum(1 for n in acknowledged if f"EVQKILL{n:03d}triggered" in archived)
    figures.lost += figures.acknowledged - figures.stored + (len(bodies) - incidents)
    count_messages(sandbox, database_url, figures)
    channels = [c for c in sandbox.snapshot()["channels"] if c["name"].startswith("inc-")]
    assert len(channels) == len(bodies)  # one channel per incident, none created twice
    figures.report("sigkill mid-load")


@pytest.mark.postgres
def test_two_replicas_on_postgresql_split_the_load_without_duplicates(postgres_url: str) -> None:
    from bot.core.models import JobRun
    from bot.devtools.stack import LocalStack
    from bot.runtime.server import BotServer
    from tests.conftest import _truncate_postgres
    from tests.scenarios.conftest import ALICE, BOB

    _truncate_postgres(postgres_url)
    fast = {"outbox_max_backoff_seconds": 1.0, "outbox_claim_seconds": 5, "scheduler_enabled": True}
    with LocalStack(postgres_url, **fast) as stack:
        other = BotServer(stack.settings()).start()
        try:
            sandbox, figures = stack.sandbox, Figures()
            replicas = [stack.bot_url, other.url]
            bodies = [pagerduty_body(f"QREPL{n:03d}", 700 + n, "triggered", minutes=0) for n in range(12)]

            def both(body: bytes) -> list[int]:
                # The same delivery reaches both replicas at once (a retry racing the original).
                with ThreadPoolExecutor(2) as pool:
                    return list(pool.map(lambda url: post_pagerduty(url, body, PAGERDUTY_SECRET), replicas))

            with ThreadPoolExecutor(4) as pool:
                statuses = [s for pair in pool.map(both, bodies) for s in pair]
            figures.sent = len(statuses)
            figures.acknowledged = sum(1 for s in statuses if 200 <= s < 300)
            channels = [
                sandbox.create_channel(f"war-room-{n}", members=[ALICE, BOB, "U0BOT"]) for n in range(6)
            ]
            for n, channel in enumerate(channels):
                sandbox.bot_url = replicas[n % 2] + "/slack/events"  # alternate replicas
                figures.sent += 1
                answer = sandbox.slash_command(BOB, channel, text=f"new Split {n}")
                figures.acknowledged += "Declared incident" in (answer.json or {}).get("text", "")
            # Both replicas' schedulers fire the weekly digest for the same instant.
            runners = [stack.server.scheduler.runner, other.scheduler.runner]  # type: ignore[union-attr]
            job = runners[0].jobs["weekly_digest"]
            at = job.schedule.previous(sandbox_now()) + job.grace / 2
            with ThreadPoolExecutor(2) as pool:
                list(pool.map(lambda runner: runner.run_due("weekly_digest", at), runners))
            sandbox.wait_for(
                lambda: outbox_settled(postgres_url), timeout=60, message="deliveries or outbox never settled"
            )
        finally:
            other.stop()
        engine = make_engine(postgres_url)
        with Session(engine) as session:
            paged = session.exec(
                select(func.count()).select_from(Incident).where(col(Incident.pagerduty_id).is_not(None))
            ).one()
            declared = session.exec(
                select(func.count()).select_from(Incident).where(col(Incident.declared_by).is_not(None))
            ).one()
            digests = session.exec(
                select(func.count()).select_from(JobRun).where(JobRun.job_id == "weekly_digest")
            ).one()
        engine.dispose()
        assert digests >= 1
        figures.stored = len(bodies) * 2 * (paged == len(bodies)) + declared
        figures.duplicated += max(0, paged - len(bodies)) + max(0, declared - len(channels))
        figures.lost += max(0, len(bodies) - paged) + max(0, len(channels) - declared)
        figures.lost += figures.acknowledged - figures.stored
        count_messages(sandbox, postgres_url, figures)
        digest_posts = [m for m in sandbox.messages("postmortems") if "digest" in str(m.get("metadata"))]
        assert len(digest_posts) == 1, digest_posts
        figures.report("two replicas on postgresql")


def sandbox_now():  # type: ignore[no-untyped-def]
    from bot.core.clock import utcnow

    return utcnow()


def test_sqlite_under_concurrent_writers_never_shows_database_is_locked(
    tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    from bot.core.clock import utcnow
    from bot.core.db import session_scope
    from bot.devtools.stack import LocalStack
    from bot.domain.incidents import declare_incident, record_first_response
    from tests.scenarios.conftest import ALICE, BOB

    figures, errors = Figures(), []
    with LocalStack(f"sqlite:///{tmp_path / 'busy.db'}") as stack:
        sandbox = stack.sandbox
        engine = make_engine(stack.database_url)
        channels = [sandbox.create_channel(f"busy-{n}", members=[ALICE, BOB, "U0BOT"]) for n in range(16)]

        def over_http(n: int) -> None:
            answer = sandbox.slash_command(BOB, channels[n], text=f"new Busy {n}")
            text = (answer.json or {}).get("text", answer.body)
            if "Declared incident" not in text:
                errors.append(text)
            for _ in range(3):
                sandbox.post_message(ALICE, channels[n], "on it")
                listing = sandbox.slash_command(BOB, channels[n], text="list")
                if not listing.ok or "Recent incidents" not in listing.body:
                    errors.append(listing.body)

        def in_process(n: int) -> None:
            try:
                for k in range(10):
                    with session_scope(engine) as session:
                        incident = declare_incident(
                            session=session,
                            title=f"Service-layer {n}-{k}",
                            channel_id=f"CSVC{n:02d}{k:02d}",
                            channel_name=None,
                            channel_is_private=False,
                            declared_by=BOB,
                            at=utcnow(),
                        )
                        record_first_response(incident=incident, user_id=ALICE, at=utcnow())
            except Exception as exc:  # what would reach a user
                errors.append(repr(exc))

        with caplog.at_level("ERROR"), ThreadPoolExecutor(16) as pool:
            jobs = [pool.submit(over_http, n) for n in range(16)] + [
                pool.submit(in_process, n) for n in range(8)
            ]
            for job in jobs:
                job.result()
        sandbox.wait_for(lambda: outbox_settled(stack.database_url), timeout=60)
        with Session(engine) as session:
            stored = session.exec(select(func.count()).select_from(Incident)).one()
        engine.dispose()
        figures.sent = 16 * 5 + 8 * 10
        figures.acknowledged = figures.sent - len(errors)
        figures.stored = stored + 16 * 4  # the list commands and messages change nothing but the cards
        figures.lost = (16 + 80) - stored + len(errors)
        count_messages(sandbox, stack.database_url, figures)
    locked = [r.getMessage() for r in caplog.records if "locked" in r.getMessage()]
    assert not errors and not locked, (errors[:5], locked[:5])
    figures.report("sqlite concurrent writers")
