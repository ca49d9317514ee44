"""Slack unreachable for 30 minutes, and for 48 hours, while 50 incidents arrive; `serve` started while
Slack is unreachable. The bot's outbox runs on a clock the test moves, so hours of outage take seconds:
nothing is lost, nothing is sent twice, and when Slack answers again every channel, card and prompt is
delivered, in order."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, func, select

from bot.core.clock import utcnow
from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident, OutboxMessage, OutboxStatus
from bot.devtools.sandbox import DEMO_HUMANS, SlackSandbox
from bot.devtools.stack import BOT_TOKEN, PAGERDUTY_SECRET, SIGNING_SECRET, LocalStack
from tests.faults.ledger import Figures, count_messages, outbox_settled, pagerduty_body, post_pagerduty
from tests.faults.test_kill_and_replicas import ServeProcess
from tests.processing import wait_until_processed

pytestmark = pytest.mark.faults

INCIDENTS = 50


class MovableClock:
    """The outbox's "now": the real time plus however far the test moved it."""

    def __init__(self) -> None:
        self._offset = timedelta()
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return utcnow() + self._offset

    def advance(self, by: timedelta) -> None:
        with self._lock:
            self._offset += by


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def outage_on(sandbox: SlackSandbox) -> None:
    sandbox.faults.fail_rate(1.0, kinds=["unreachable"])


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def stack(database_url: str, clock: MovableClock) -> Iterator[LocalStack]:
    with LocalStack(database_url, clock=clock, outbox_max_backoff_seconds=300) as running:
        yield running


@pytest.mark.parametrize(
    ("outage", "step"),
    [(timedelta(minutes=30), timedelta(minutes=5)), (timedelta(hours=48), timedelta(hours=1))],
    ids=["30min", "48h"],
)
def test_a_slack_outage_of_any_length_loses_and_duplicates_nothing(
    stack: LocalStack,
    clock: MovableClock,
    database_url: str,
    outage: timedelta,
    step: timedelta,
    request: pytest.FixtureRequest,
) -> None:
    sandbox, figures = stack.sandbox, Figures()
    outage_on(sandbox)
    for n in range(INCIDENTS):
        kinds = ("triggered", "resolved") if n % 5 == 0 else ("triggered",)
        for kind in kinds:
            figures.sent += 1
            body = pagerduty_body(f"QOUT{n:03d}", 100 + n, kind, minutes=30)
            status = post_pagerduty(stack.bot_url, body, PAGERDUTY_SECRET)
            figures.acknowledged += 200 <= status < 300
    wait_until_processed(database_url, timeout=30)
    status, health = get_json(stack.bot_url + "/healthz")
    assert status == 200 and health["slack"]["status"] == "unreachable", health

    # The outage, a step at a time: each step the worker's probe fails again; no row parks, and the rows
    # do not each hammer Slack.
    before, steps = len(sandbox.calls), int(outage / step)
    for _ in range(steps):
        probed = len(sandbox.calls) + 1
        clock.advance(step)
        stack.server.process.outbox.wake()  # type: ignore[union-attr]
        sandbox.wait_for(lambda n=probed: len(sandbox.calls) >= n, timeout=10, message="no probe")
    probes = len(sandbox.calls) - before
    assert probes <= 3 * steps, probes  # a probe per step, not one per row
    assert not [row for row in outbox(database_url) if row.status != OutboxStatus.PENDING]

    sandbox.faults.clear()
    clock.advance(timedelta(minutes=5))  # past the longest back-off: the next probe finds Slack back
    stack.server.process.outbox.wake()  # type: ignore[union-attr]
    sandbox.wait_for(lambda: outbox_settled(database_url), timeout=60, message="the outbox never settled")

    engine = make_engine(database_url)
    with Session(engine) as session:
        incidents = session.exec(select(Incident).order_by(col(Incident.number))).all()
        figures.stored = session.exec(select(func.count()).select_from(InboundDelivery)).one()
    engine.dispose()
    figures.lost += figures.acknowledged - figures.stored
    assert len(incidents) == INCIDENTS and all(incident.channel_id for incident in incidents)
    count_messages(sandbox, database_url, figures)
    created = [call["args"]["name"] for call in sandbox.calls_to("conversations.create") if call["ok"]]
    assert created == [incident.channel_name for incident in incidents]  # channels in order, once each
    for incident in incidents:
        texts = [m["text"] for m in sandbox.messages(incident.channel_id)]  # type: ignore[arg-type]
        expected = 2 if incident.resolved_at else 1
        assert len(texts) == expected and f"#{incident.number}" in texts[0], texts  # card, then prompt
    status, health = get_json(stack.bot_url + "/healthz")
    assert health["status"] == "ok" and health["slack"] == {"status": "ok"}, health
    figures.report(f"slack unreachable for {outage}, {INCIDENTS} incidents, {request.node.callspec.id}")


def outbox(database_url: str) -> list[OutboxMessage]:
    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(OutboxMessage)))
    finally:
        engine.dispose()


def test_serve_starts_without_slack_stores_webhooks_and_resolves_channels_when_slack_returns(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    figures = Figures()
    with SlackSandbox(signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN) as sandbox:
        for name in ("postmortems", "wins"):
            sandbox.create_channel(name, members=[u.id for u in DEMO_HUMANS])
        outage_on(sandbox)
        database_url = f"sqlite:///{tmp_path / 'no-slack.db'}"
        server = ServeProcess(sandbox, database_url)
        server.start()  # returns once /healthz answers: it did not exit on the unreachable Slack
        try:
            for n in range(5):
                figures.sent += 1
                body = pagerduty_body(f"QNOSLACK{n}", 300 + n, "triggered", minutes=0)
                figures.acknowledged += post_pagerduty(server.url, body, PAGERDUTY_SECRET) == 202
            assert figures.acknowledged == 5
            # Start-up's first try (and the client's own retry) ends in a second or two; then it shows.
            health = sandbox.wait_for(
                lambda: (h := get_json(server.url + "/healthz")[1])["slack"]["status"] == "unreachable" and h,
                timeout=30,
            )
            assert health["status"] == "degraded" and health["database"] == {"status": "ok"}, health
            assert get_json(server.url + "/readyz") == (200, {"ready": True})
            assert not [c for c in sandbox.calls if c["ok"]]

            sandbox.faults.clear()
            joined = sandbox.wait_for(
                lambda: (
                    {c["args"]["channel"] for c in sandbox.calls_to("conversations.join") if c["ok"]}
                    >= {sandbox.channel_id("postmortems"), sandbox.channel_id("wins")}
                ),
                timeout=30,
                message="the configured channels were never resolved",
            )
            assert joined
            sandbox.wait_for(lambda: outbox_settled(database_url), timeout=30, message="outbox never settled")
            health = get_json(server.url + "/healthz")[1]
            assert health["slack"] == {"status": "ok"} and health["status"] == "ok", health
        finally:
            server.stop()
        engine = make_engine(database_url)
        with Session(engine) as session:
            figures.stored = session.exec(select(func.count()).select_from(InboundDelivery)).one()
        engine.dispose()
        figures.lost += figures.acknowledged - figures.stored
        count_messages(sandbox, database_url, figures)
    figures.report("serve started without slack")


def test_socket_mode_connects_once_slack_answers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    stack = LocalStack(f"sqlite:///{tmp_path / 'socket.db'}", socket_mode=True, outbox_max_backoff_seconds=1)
    outage_on(stack.sandbox.start())
    with stack:  # starts although apps.connections.open cannot be reached
        sandbox = stack.sandbox
        body = pagerduty_body("QSOCKET", 400, "triggered", minutes=0)
        assert post_pagerduty(stack.bot_url, body, PAGERDUTY_SECRET) == 202
        assert sandbox.socket_mode_connections == 0
        sandbox.faults.clear()
        sandbox.wait_for(lambda: sandbox.socket_mode_connections, timeout=30, message="never connected")
        channel = sandbox.create_channel("war-room", members=["U0BOB", "U0BOT"])
        answer = sandbox.slash_command("U0BOB", channel, text="help")
        assert answer.ok and "/postmortem" in (answer.json or {}).get("text", ""), answer
