"""`POST /webhooks/pagerduty` over real HTTP, with the bot serving the Slack sandbox: published deliveries
with their published signatures, repeats in shuffled order, many at once (group commit), deliveries left
unprocessed by an earlier run, refusals that store nothing, Slack down."""

from __future__ import annotations

import contextlib
import http.client
import json
import random
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session, func, select

from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident, OutboxMessage, OutboxStatus, TimelineEntry
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import LocalStack
from bot.domain.pagerduty import parse_instant, sign
from bot.runtime.web import MAX_BODY_BYTES
from bot.slack.blocks import Action
from bot.slack.pagerduty_notices import ENABLE_INVITATIONS_HINT
from tests.faults.ledger import pagerduty_body
from tests.processing import wait_until_processed
from tests.shared_fixtures import pagerduty_vectors

FILES = ("triggered", "acknowledged", "resolved", "annotated")
CHANNEL = "inc-37-test"


@pytest.fixture
def stack(pagerduty_stack: LocalStack) -> LocalStack:
    return pagerduty_stack


def post(stack: LocalStack, body: bytes, signature: str | None) -> tuple[int, dict]:
    url = urlsplit(stack.bot_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    try:
        # The server may answer (413) and close before an oversized body is fully sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.request("POST", "/webhooks/pagerduty", body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        # waitress itself answers an oversized body with a plain-text 413, before the router sees it.
        is_json = response.getheader("Content-Type", "").startswith("application/json")
        return response.status, json.loads(raw) if is_json else {"error": raw.decode()}
    finally:
        connection.close()


def signed(name: str) -> tuple[bytes, str]:
    vector = next(v for v in pagerduty_vectors() if v.name == f"pagerduty/incident.{name}.json")
    return vector.body, vector.signature


def stored(stack: LocalStack) -> dict[str, int]:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return {
                model.__name__: session.exec(select(func.count()).select_from(model)).one()
                for model in (InboundDelivery, Incident, TimelineEntry, OutboxMessage)
            }
    finally:
        engine.dispose()


def outbox_drained(stack: LocalStack) -> bool:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            statuses = session.exec(select(OutboxMessage.status)).all()
        return bool(statuses) and all(status == OutboxStatus.SENT for status in statuses)
    finally:
        engine.dispose()


def test_each_published_delivery_is_accepted_with_its_published_signature(stack: LocalStack) -> None:
    for vector in pagerduty_vectors():
        status, answer = post(stack, vector.body, vector.signature)
        assert status == 202, (vector.name, answer)
        assert answer == {"status": "accepted", "event_id": vector.event["id"]}
        status, answer = post(stack, vector.body, vector.signature)
        assert (status, answer) == (200, {"status": "duplicate", "event_id": vector.event["id"]})
    wait_until_processed(stack.database_url)
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        incidents = {i.pagerduty_id: i for i in session.exec(select(Incident))}
        assert set(incidents) == {"Q2CKYRLH85UNN4", "PGR0VU2"}
        test = incidents["Q2CKYRLH85UNN4"]
        events = {
            json.loads(signed(n)[0])["event"]["event_type"]: json.loads(signed(n)[0])["event"] for n in FILES
        }
        assert test.triggered_at == parse_instant(events["incident.triggered"]["data"]["created_at"])
        assert test.acknowledged_at == parse_instant(events["incident.acknowledged"]["occurred_at"])
        assert test.resolved_at == parse_instant(events["incident.resolved"]["occurred_at"])
        entries = session.exec(select(TimelineEntry).where(TimelineEntry.incident_id == test.id)).all()
        assert {e.occurred_at for e in entries} == {parse_instant(e["occurred_at"]) for e in events.values()}
        assert incidents["PGR0VU2"].priority == "P1"
    engine.dispose()


def test_every_delivery_three_times_shuffled_is_one_incident_channel_card_and_prompt(
    stack: LocalStack,
) -> None:
    sandbox = stack.sandbox
    deliveries = [signed(name) for name in FILES] * 3
    random.Random(7).shuffle(deliveries)
    statuses = [post(stack, body, signature)[0] for body, signature in deliveries]
    assert sorted(statuses) == [200] * 8 + [202] * 4
    wait_until_processed(stack.database_url)
    sandbox.wait_for(lambda: outbox_drained(stack), message="outbox not drained")
    channel = sandbox.channel_id(CHANNEL)
    created = [c for c in sandbox.calls_to("conversations.create") if c["ok"]]
    assert len(created) == 1
    messages = [m for m in sandbox.messages(channel) if m.get("bot_id")]
    cards = [m for m in messages if m["text"].startswith(":large_green_circle: Incident #37")]
    prompts = [m for m in messages if "resolved after 2 minutes" in m["text"]]
    hints = [m for m in messages if m["text"] == ENABLE_INVITATIONS_HINT]  # the incident has assignees
    assert (len(messages), len(cards), len(prompts), len(hints)) == (3, 1, 1, 1), sandbox.transcript(channel)
    assert stored(stack)["Incident"] == 1
    assert any(
        e.get("action_id") == Action.OPEN_POSTMORTEM and e.get("value") == "1"
        for b in prompts[0]["blocks"]
        for e in b.get("elements", [])
    )


@pytest.mark.parametrize(
    ("body", "signature", "status", "error"),
    [
        (b'{"event": {}}', None, 401, "X-PagerDuty-Signature"),
        (b'{"event": {}}', "v1=" + "0" * 64, 401, "X-PagerDuty-Signature"),
        (b"{not json", "sign", 400, "not JSON"),
        (b'{"messages": [1]}', "sign", 400, 'no "event"'),
    ],
)
def test_refusals_store_nothing(
    stack: LocalStack, body: bytes, signature: str | None, status: int, error: str
) -> None:
    if signature == "sign":
        signature = sign(body, stack.settings().pagerduty_webhook_secrets[0])
    answer_status, answer = post(stack, body, signature)
    assert answer_status == status
    assert error in answer["error"]
    assert set(stored(stack).values()) == {0}


def test_a_tampered_published_delivery_is_refused(stack: LocalStack) -> None:
    body, signature = signed("triggered")
    status, _ = post(stack, body.replace(b'"Test"', b'"Tset"'), signature)
    assert status == 401
    assert set(stored(stack).values()) == {0}


def test_an_oversized_body_is_refused_with_413(stack: LocalStack) -> None:
    body = b'{"event": {"id": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    status, answer = post(stack, body, sign(body, stack.settings().pagerduty_webhook_secrets[0]))
    assert status == 413, answer
    assert set(stored(stack).values()) == {0}


@pytest.mark.faults
def test_slack_down_loses_nothing_the_channel_opens_later(stack: LocalStack) -> None:
    sandbox: SlackSandbox = stack.sandbox
    sandbox.faults.fail_next("conversations.create", "unavailable", count=1)
    for name in ("triggered", "resolved"):
        assert post(stack, *signed(name))[0] == 202
    wait_until_processed(stack.database_url)
    assert stored(stack)["Incident"] == 1  # stored and processed whatever Slack does
    sandbox.wait_for(lambda: outbox_drained(stack), timeout=10, message="outbox not drained")
    channel = sandbox.channel_id(CHANNEL)
    texts = [m["text"] for m in sandbox.messages(channel) if m.get("bot_id")]
    texts.remove(ENABLE_INVITATIONS_HINT)  # no PAGERDUTY_API_TOKEN: said once
    assert len(texts) == 2 and "resolved after 2 minutes" in texts[1], texts
    assert [c["ok"] for c in sandbox.calls_to("conversations.create")] == [False, True]


def test_the_router_refuses_a_declared_oversized_body_before_reading_it(stack: LocalStack) -> None:
    """Behind a server without waitress's own limit, the router still answers 413 from Content-Length."""
    from bot.runtime.server import create_wsgi_app

    assert stack.server is not None and stack.server.process is not None
    app = create_wsgi_app(stack.server.process, None)
    answers: list[str] = []
    environ = {
        "PATH_INFO": "/webhooks/pagerduty",
        "REQUEST_METHOD": "POST",
        "CONTENT_LENGTH": str(MAX_BODY_BYTES + 1),
        "wsgi.input": None,  # never read
    }
    body = b"".join(app(environ, lambda status, headers: answers.append(status)))
    assert answers == ["413 Content Too Large"] and b"body over" in body
    assert set(stored(stack).values()) == {0}


def test_many_deliveries_at_once_are_each_stored_and_processed_once(stack: LocalStack) -> None:
    """32 senders at once, every delivery sent twice concurrently (a retry racing the original): the
    group commit stores each once and answers the original 202 and the copy 200, whichever batch each
    lands in."""
    secret = stack.settings().pagerduty_webhook_secrets[0]
    bodies = [pagerduty_body(f"QMANY{n:03d}", 300 + n, "triggered", minutes=0) for n in range(60)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda body: post(stack, body, sign(body, secret)), bodies * 2))
    by_event: dict[str, list[int]] = {}
    for status, answer in answers:
        by_event.setdefault(answer["event_id"], []).append(status)
    assert len(by_event) == 60 and all(sorted(s) == [200, 202] for s in by_event.values()), by_event
    wait_until_processed(stack.database_url, timeout=30)
    counts = stored(stack)
    assert (counts["InboundDelivery"], counts["Incident"], counts["TimelineEntry"]) == (60, 60, 60)


def test_deliveries_left_unprocessed_by_an_earlier_run_are_processed_at_start(database_url: str) -> None:
    """A process killed after storing (and answering) a delivery, before processing it: the next start
    processes it, opening the incident's channel."""
    from bot.core.db import session_scope
    from bot.domain.deliveries import archive_delivery
    from bot.domain.pagerduty import SOURCE

    engine = make_engine(database_url)
    with session_scope(engine) as session:
        for name in ("triggered", "acknowledged"):
            body, _ = signed(name)
            event = json.loads(body)["event"]
            archive_delivery(
                session,
                source=SOURCE,
                delivery_id=event["id"],
                event_type=event["event_type"],
                body=body.decode(),
                at=parse_instant(event["occurred_at"]),
            )
    engine.dispose()
    with LocalStack(database_url) as stack:
        wait_until_processed(stack.database_url)
        channel = stack.sandbox.wait_for(
            lambda: _channel_id(stack.sandbox, CHANNEL), message=f"no #{CHANNEL}"
        )
        stack.sandbox.wait_for_message(channel, lambda m: "Incident #37" in m.get("text", ""))
    assert stored(stack)["Incident"] == 1


def _channel_id(sandbox: SlackSandbox, name: str) -> str | None:
    try:
        return sandbox.channel_id(name)
    except KeyError:
        return None
