"""Responders in the room, over HTTP: signed PagerDuty deliveries to the bot serving the Slack sandbox,
with a PagerDuty REST API stand-in (bot/devtools/sandbox/pagerduty_api.py) giving the e-mails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core.db import make_engine
from bot.core.models import OutboxMessage
from bot.devtools.sandbox.pagerduty_api import PagerDutyApiStandIn, PagerDutyUser
from bot.devtools.stack import LocalStack
from bot.slack.outbox import OutboxKind
from bot.slack.pagerduty_notices import ENABLE_INVITATIONS_HINT
from tests.scenarios.conftest import assert_manifest_covers
from tests.scenarios.test_pagerduty_lifecycle import CHANNEL, bot_messages, card_says, send

TOKEN = "pd-read-only-key"
PEOPLE = [
    PagerDutyUser("PBEN001", "Ben Oncall", "bob@example.com"),  # Slack: U0BOB
    PagerDutyUser("PALICE1", "Alice Lead", "Alice@Example.com"),  # Slack: U0ALICE (any case)
    PagerDutyUser("PMAEVE1", "Maeve Responder", "maeve@contractor.example"),  # not in Slack
]


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyApiStandIn]:
    with PagerDutyApiStandIn(token=TOKEN, users=PEOPLE) as stand_in:
        yield stand_in


def stack_with(database_url: str, **settings: Any) -> LocalStack:
    return LocalStack(
        database_url, incident_channel_prefix="inc-", outbox_max_backoff_seconds=0.2, **settings
    )


def members(stack: LocalStack) -> set[str]:
    try:
        return set(stack.sandbox.members(CHANNEL))
    except KeyError:
        return set()


def listed(stack: LocalStack, name: str) -> list[str]:
    return [
        m["text"]
        for m in bot_messages(stack, CHANNEL)
        if m["text"].startswith(f":bust_in_silhouette: {name}")
    ]


def test_assignees_and_responders_are_invited_and_the_unmatched_listed_once(
    database_url: str, pagerduty: PagerDutyApiStandIn
) -> None:
    with stack_with(database_url, pagerduty_api_token=TOKEN, pagerduty_api_url=pagerduty.url) as stack:
        send(stack, "incident.triggered")  # assigned to Ben
        stack.sandbox.wait_for(lambda: "U0BOB" in members(stack), message="the assignee was not invited")
        # The card names the assignee, as a mention once their e-mail found them in Slack.
        stack.sandbox.wait_for(lambda: assigned(stack) == "<@U0BOB>", message=f"card: {assigned(stack)}")
        send(stack, "incident.acknowledged")  # still Ben: not looked up again
        send(stack, "incident.escalated")  # Maeve: no Slack user
        stack.sandbox.wait_for(
            lambda: assigned(stack) == "Maeve Responder", message=f"card: {assigned(stack)}"
        )
        send(stack, "incident.reassigned")  # Alice
        stack.sandbox.wait_for(
            lambda: "U0ALICE" in members(stack), message="the new assignee was not invited"
        )
        stack.sandbox.wait_for(lambda: assigned(stack) == "<@U0ALICE>", message=f"card: {assigned(stack)}")
        send(stack, "incident.responder.added")  # Maeve again: already listed
        stack.sandbox.wait_for(lambda: listed(stack, "Maeve Responder"), message="Maeve not listed")
        stack.sandbox.wait_for(
            lambda: all(row.status == "sent" for row in outbox(stack)), message="outbox not drained"
        )
        assert len(listed(stack, "Maeve Responder")) == 1
        assert not listed(stack, "Ben") and not listed(stack, "Alice")
        looked_up = [r["path"] for r in pagerduty.requests if r["path"].startswith("/users/")]
        assert sorted(looked_up) == ["/users/PALICE1", "/users/PBEN001", "/users/PMAEVE1"]
        assert {r["headers"]["Authorization"] for r in pagerduty.requests} == {f"Token token={TOKEN}"}
        assert {r["headers"]["Accept"] for r in pagerduty.requests} == {
            "application/vnd.pagerduty+json;version=2"
        }
        assert not any(ENABLE_INVITATIONS_HINT in m["text"] for m in bot_messages(stack, CHANNEL))
        assert_manifest_covers(stack.sandbox.calls)


def assigned(stack: LocalStack) -> str | None:
    """The incident card's "Assigned" field, or None."""
    for message in bot_messages(stack, CHANNEL):
        for block in message.get("blocks") or []:
            for field in block.get("fields") or []:
                if field["text"].startswith("*Assigned*\n"):
                    return str(field["text"].removeprefix("*Assigned*\n"))
    return None


def outbox(stack: LocalStack) -> list[OutboxMessage]:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return list(session.exec(select(OutboxMessage)))
    finally:
        engine.dispose()


def test_the_user_map_overrides_the_email_and_needs_no_lookup(
    database_url: str, pagerduty: PagerDutyApiStandIn
) -> None:
    with stack_with(
        database_url,
        pagerduty_api_token=TOKEN,
        pagerduty_api_url=pagerduty.url,
        pagerduty_user_map="PBEN001=U0CAROL",
    ) as stack:
        send(stack, "incident.triggered")
        stack.sandbox.wait_for(lambda: "U0CAROL" in members(stack), message="the mapped user was not invited")
        stack.sandbox.wait_for(lambda: assigned(stack) == "<@U0CAROL>", message=f"card: {assigned(stack)}")
        stack.sandbox.wait_for(
            lambda: all(row.status == "sent" for row in outbox(stack)), message="outbox not drained"
        )
        assert "U0BOB" not in members(stack)
        assert not [r for r in pagerduty.requests if r["path"].startswith("/users/")]


def test_a_rate_limited_lookup_is_retried_and_a_bad_key_is_an_error_not_a_guess(
    database_url: str, pagerduty: PagerDutyApiStandIn
) -> None:
    pagerduty.rate_limit(2)
    with stack_with(database_url, pagerduty_api_token=TOKEN, pagerduty_api_url=pagerduty.url) as stack:
        send(stack, "incident.triggered")
        stack.sandbox.wait_for(
            lambda: "U0BOB" in members(stack), timeout=20, message="not invited after 429s"
        )
        # The two 429s went to the user's lookup or the service owner's (docs/service-owners.md).
        assert [r.get("status") for r in pagerduty.requests].count(429) == 2
        assert [r.get("status") for r in pagerduty.requests if r["path"] == "/users/PBEN001"][-1] == 200
    pagerduty.requests.clear()
    with stack_with(database_url, pagerduty_api_token="wrong", pagerduty_api_url=pagerduty.url) as stack:
        send(stack, "incident.reassigned")  # Alice, looked up with a key PagerDuty refuses
        stack.sandbox.wait_for(
            lambda: any(
                "401" in (row.last_error or "") for row in outbox(stack) if row.kind == OutboxKind.INVITE
            ),
            message="the 401 is not on the row",
        )
        assert "U0ALICE" not in members(stack) and not listed(stack, "Alice")


def test_without_a_token_the_channel_hears_once_how_to_enable_it_and_nothing_else_breaks(
    database_url: str,
) -> None:
    with stack_with(database_url) as stack:
        for name in ("incident.triggered", "incident.escalated", "incident.reassigned"):
            send(stack, name)
        # Nobody can be found in Slack: the card names PagerDuty's assignee.
        stack.sandbox.wait_for(lambda: assigned(stack) == "Alice Lead", message=f"card: {assigned(stack)}")
        send(stack, "incident.resolved")  # PagerDuty unassigns a resolved incident
        stack.sandbox.wait_for(lambda: assigned(stack) is None, message=f"card: {assigned(stack)}")
        stack.sandbox.wait_for(lambda: card_says(stack, CHANNEL, "Incident #412 resolved"), message="no card")
        stack.sandbox.wait_for(
            lambda: all(row.status == "sent" for row in outbox(stack)), message="outbox not drained"
        )
        hints = [m for m in bot_messages(stack, CHANNEL) if m["text"] == ENABLE_INVITATIONS_HINT]
        assert len(hints) == 1
        assert stack.sandbox.calls_to("conversations.invite") == []
        assert stack.sandbox.calls_to("users.lookupByEmail") == []
