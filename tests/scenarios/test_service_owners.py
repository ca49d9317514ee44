"""Service owners on the incident card, over HTTP: signed PagerDuty deliveries to the bot serving the Slack
sandbox, with the PagerDuty REST API stand-in (bot/devtools/sandbox/pagerduty_api.py) answering
GET /services/{id} (docs/service-owners.md)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session

from bot.core.db import make_engine
from bot.core.service_owners import ServiceOwnerLookup
from bot.devtools.sandbox.block_checks import validate_message_blocks
from bot.devtools.sandbox.pagerduty_api import PagerDutyApiStandIn, PagerDutyService
from bot.devtools.stack import LocalStack
from tests.golden import assert_golden
from tests.scenarios.conftest import BOB
from tests.scenarios.test_channel_life import publish
from tests.scenarios.test_pagerduty_lifecycle import CHANNEL, bot_messages, send
from tests.scenarios.test_pagerduty_responders import PEOPLE, TOKEN, stack_with

CHECKOUT = PagerDutyService(  # the service of the incidents in tests/fixtures/pagerduty/
    "PSVC001",
    "Checkout",
    teams=(("PTEAM01", "Payments"), ("PTEAM02", "Storefront")),
    escalation_policy=("PEP0001", "Checkout on-call"),
)
NO_TEAM = PagerDutyService("PSVC001", "Checkout", teams=(), escalation_policy=("PEP0001", "Checkout on-call"))
PAYMENTS_TEAM = "<https://sandbox.pagerduty.example/teams/PTEAM01|Payments> (PagerDuty team)"


def pagerduty_with(service: PagerDutyService) -> PagerDutyApiStandIn:
    return PagerDutyApiStandIn(token=TOKEN, users=PEOPLE, services=[service])


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyApiStandIn]:
    with pagerduty_with(CHECKOUT) as stand_in:
        yield stand_in


def with_api(database_url: str, pagerduty: PagerDutyApiStandIn, **settings: Any) -> LocalStack:
    # PAGERDUTY_USER_MAP: the assignee is invited without a lookup, so the stand-in hears only the service.
    return stack_with(
        database_url,
        pagerduty_api_token=TOKEN,
        pagerduty_api_url=pagerduty.url,
        pagerduty_user_map="PBEN001=U0BOB",
        **settings,
    )


def card(stack: LocalStack) -> dict[str, Any] | None:
    cards = [
        m
        for m in bot_messages(stack, CHANNEL)
        if ((m["metadata"] or {}).get("event_payload") or {}).get("key", "").startswith("card:")
    ]
    return cards[0] if cards else None


def card_owner(stack: LocalStack) -> str | None:
    """The card's Owner field (None: no card yet, or it names no owner)."""
    found = card(stack)
    for block in found["blocks"] if found else []:
        for field in block.get("fields") or []:
            if field["text"].startswith("*Owner*\n"):
                return str(field["text"].removeprefix("*Owner*\n"))
    return None


def wait_for_owner(stack: LocalStack, owner: str) -> None:
    stack.sandbox.wait_for(
        lambda: card_owner(stack) == owner, message=lambda: f"card owner {card_owner(stack)}"
    )


def lookup(stack: LocalStack) -> ServiceOwnerLookup | None:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return session.get(ServiceOwnerLookup, "PSVC001")
    finally:
        engine.dispose()


def test_the_owner_is_the_services_first_team_looked_up_once(
    database_url: str, pagerduty: PagerDutyApiStandIn
) -> None:
    with with_api(database_url, pagerduty) as stack:
        send(stack, "incident.triggered")
        wait_for_owner(stack, PAYMENTS_TEAM)
        send(stack, "incident.acknowledged")  # the same service, looked up moments ago: not again
        stack.sandbox.wait_for(
            lambda: (found := card(stack)) is not None and "#412 acknowledged" in found["text"],
            message="the card did not follow the acknowledgement",
        )
        assert card_owner(stack) == PAYMENTS_TEAM
        found = card(stack)
        assert found is not None and validate_message_blocks(found["blocks"]) == []
        assert_golden("incident_card_owner.json", {"text": found["text"], "blocks": found["blocks"]})
        assert [(r["path"], r["status"]) for r in pagerduty.requests] == [
            ("/services/PSVC001?include[]=teams&include[]=escalation_policies", 200)
        ]
        assert pagerduty.requests[0]["headers"]["Authorization"] == f"Token token={TOKEN}"
        assert pagerduty.requests[0]["headers"]["Accept"] == "application/vnd.pagerduty+json;version=2"


def test_without_a_team_the_owner_is_the_escalation_policy(database_url: str) -> None:
    with pagerduty_with(NO_TEAM) as pagerduty, with_api(database_url, pagerduty) as stack:
        send(stack, "incident.triggered")
        policy = "https://sandbox.pagerduty.example/escalation_policies/PEP0001"
        wait_for_owner(stack, f"<{policy}|Checkout on-call> (escalation policy)")


def test_service_owners_names_the_owner_over_pagerduty(
    database_url: str, pagerduty: PagerDutyApiStandIn
) -> None:
    with with_api(database_url, pagerduty, service_owners="Checkout=@checkout-team") as stack:
        send(stack, "incident.triggered")
        wait_for_owner(stack, "@checkout-team")
        stack.sandbox.wait_for(
            lambda: (row := lookup(stack)) is not None and row.owner == "Payments",
            message="PagerDuty was not asked",
        )
        send(stack, "incident.acknowledged")
        stack.sandbox.wait_for(
            lambda: (found := card(stack)) is not None and "#412 acknowledged" in found["text"],
            message="the card did not follow the acknowledgement",
        )
        assert card_owner(stack) == "@checkout-team"  # PagerDuty's answer did not replace the setting


def test_without_a_token_the_setting_alone_names_the_owner(database_url: str) -> None:
    with stack_with(database_url, service_owners="PSVC001=U0ALICE,Search=@search-team") as stack:
        send(stack, "incident.triggered")
        wait_for_owner(stack, "<@U0ALICE>")
        assert lookup(stack) is None  # no lookup owed without PAGERDUTY_API_TOKEN


def test_a_pagerduty_outage_leaves_the_card_without_owner_until_a_retry_names_it(
    database_url: str, pagerduty: PagerDutyApiStandIn
) -> None:
    pagerduty.fail(10_000)
    with with_api(database_url, pagerduty) as stack:
        send(stack, "incident.triggered")
        stack.sandbox.wait_for(lambda: card(stack), message="no card while PagerDuty is down")
        stack.sandbox.wait_for(
            lambda: sum(r.get("status") == 500 for r in pagerduty.requests) >= 3,
            message="the lookup was not retried",
        )
        row = lookup(stack)
        assert row is not None and "500" in (row.last_error or "") and row.owner is None
        assert card_owner(stack) is None
        pagerduty.rate_limit(1)  # PagerDuty answers again, first with a 429
        wait_for_owner(stack, PAYMENTS_TEAM)
        statuses = [r["status"] for r in pagerduty.requests]
        assert statuses[-2:] == [429, 200] and set(statuses[:-2]) == {500}
        row = lookup(stack)
        assert row is not None and (row.attempts, row.last_error) == (0, None)
        assert len(stack.sandbox.calls_to("chat.postMessage")) >= 1
        assert any("Owner" in str(call) for call in stack.sandbox.calls_to("chat.update"))


def test_the_summary_names_the_owner(database_url: str, pagerduty: PagerDutyApiStandIn) -> None:
    with with_api(database_url, pagerduty) as stack:
        send(stack, "incident.triggered")
        wait_for_owner(stack, PAYMENTS_TEAM)
        channel = stack.sandbox.channel_id(CHANNEL)  # bob is in it: PagerDuty assigned him
        send(stack, "incident.resolved")
        prompt = stack.sandbox.wait_for_message(channel, lambda m: "resolved after" in m["text"])
        publish(stack, BOB, channel, prompt["ts"])
        summary = stack.sandbox.wait_for_message(
            "postmortems", lambda m: m["text"].startswith("Post-mortem published")
        )
        assert {"type": "mrkdwn", "text": f"*Owner*\n{PAYMENTS_TEAM}"} in summary["blocks"][1]["fields"]
