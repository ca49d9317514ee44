"""Every PagerDuty V3 incident event type, as signed deliveries over HTTP against the bot serving the Slack
sandbox: the table in docs/pagerduty.md row by row (deliveries in tests/fixtures/pagerduty/), a merge, a
bulk resolve of stale incidents, an incident from the future, and two accounts with the same incident
number and title."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session, col, select

from bot.core.db import make_engine
from bot.core.models import Incident, OutboxMessage, Postmortem, PostmortemStatus, TimelineEntry
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from bot.domain.pagerduty import EventType, sign
from bot.domain.pagerduty_lifecycle import FIRST_SEEN_RESOLVED
from bot.loop.export import export_postmortems
from bot.loop.kpis import compute_kpis
from bot.slack.outbox import OutboxKind
from tests.processing import wait_until_processed
from tests.scenarios.test_pagerduty_webhook import post

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "pagerduty"
ACME = "acme.pagerduty.com"
CHANNEL = "inc-412-checkout-latency-above-2-s"
EARLY_ACCESS = {"incident.conference_bridge.updated", "incident.custom_field_values.updated"}
DAY = (datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))

# Row by row, what docs/pagerduty.md promises: the incident's status after the event, and the timeline
# entry it adds (None: archived and ignored, no entry).
ROWS: dict[str, tuple[str, str | None]] = {
    "incident.triggered": ("triggered", "Triggered in PagerDuty: Checkout latency above 2 s (Checkout)"),
    "incident.acknowledged": ("acknowledged", "Acknowledged in PagerDuty by Ben Oncall"),
    "incident.unacknowledged": ("triggered", "Unacknowledged in PagerDuty: paging again"),
    "incident.escalated": ("triggered", "Escalated to Maeve Responder"),
    "incident.reassigned": ("triggered", "Reassigned to Alice Lead by Ben Oncall"),
    "incident.delegated": ("triggered", "Delegated to Payments on-call (Alice Lead) by Ben Oncall"),
    "incident.priority_updated": ("triggered", "Priority set to P1 by Ben Oncall"),
    "incident.annotated": ("triggered", "Note by Ben Oncall: Rolled back the 13:00 deploy."),
    "incident.responder.added": (
        "triggered",
        "Responder requested: Maeve Responder by Ben Oncall: Please look at the payment queue",
    ),
    "incident.responder.replied": ("triggered", "Maeve Responder replied to the responder request: accepted"),
    "incident.status_update_published": (
        "triggered",
        "Status update by Ben Oncall: Checkout is slow; a fix is rolling out.",
    ),
    "incident.resolved": ("resolved", "Resolved in PagerDuty by Ben Oncall"),
    "incident.reopened": ("triggered", "Reopened in PagerDuty by Ben Oncall"),
    "incident.conference_bridge.updated": ("triggered", None),
    "incident.custom_field_values.updated": ("triggered", None),
}


@pytest.fixture
def stack(database_url: str) -> Any:
    with LocalStack(database_url, incident_channel_prefix="inc-") as running:
        yield running


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def send(stack: LocalStack, delivery: dict[str, Any] | str) -> str:
    """POST one signed delivery (a fixture name or a document) and wait until it is processed."""
    body = json.dumps(fixture(delivery) if isinstance(delivery, str) else delivery).encode()
    event_id = json.loads(body)["event"]["id"]
    status, answer = post(stack, body, sign(body, PAGERDUTY_SECRET))
    assert status == 202, answer
    wait_until_processed(stack.database_url, event_ids=[event_id])
    return event_id


def incident(stack: LocalStack, pagerduty_id: str, account: str = ACME) -> Incident:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            found = session.exec(
                select(Incident).where(
                    Incident.pagerduty_id == pagerduty_id, Incident.pagerduty_account == account
                )
            ).one()
            session.expunge(found)
            return found
    finally:
        engine.dispose()


def entry_text(stack: LocalStack, event_id: str) -> str | None:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return session.exec(
                select(TimelineEntry.text).where(TimelineEntry.source_key == f"pagerduty:{event_id}")
            ).first()
    finally:
        engine.dispose()


def bot_messages(stack: LocalStack, channel: str) -> list[dict[str, Any]]:
    """The bot's messages in `channel`; none while the outbox has not opened it yet."""
    try:
        return [m for m in stack.sandbox.messages(channel) if m.get("bot_id")]
    except KeyError:
        return []


def card_says(stack: LocalStack, channel: str, text: str) -> bool:
    return any(m["text"].startswith(":") and text in m["text"] for m in bot_messages(stack, channel))


def prompts(stack: LocalStack, channel: str) -> list[str]:
    return [m["text"] for m in bot_messages(stack, channel) if "resolved after" in m["text"]]


def kpis(stack: LocalStack) -> Any:
    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            return compute_kpis(
                session=session, since=DAY[0], until=DAY[1], response_target_minutes=15, tz=ZoneInfo("UTC")
            ).overall
    finally:
        engine.dispose()


def with_data(document: dict[str, Any], event_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of a delivery with another event id and some fields of `event.data` changed."""
    copy = json.loads(json.dumps(document))
    copy["event"]["id"] = event_id
    for path, value in changes.items():
        where = copy["event"]
        *parents, last = path.split("__")
        for part in parents:
            where = where[part]
        where[last] = value
    return copy


def test_the_table_in_the_docs_lists_every_event_type_and_each_has_a_delivery() -> None:
    table = (ROOT / "docs" / "pagerduty.md").read_text()
    documented = re.findall(r"^\| `(incident\.[a-z_.]+)` \|", table, re.MULTILINE)
    assert documented == list(ROWS)  # the test below sends each row, in the table's order
    assert set(documented) == {t.value for t in EventType} | EARLY_ACCESS
    for event_type in documented:
        assert fixture(event_type)["event"]["event_type"] == event_type


def test_each_event_type_over_http_does_what_the_table_says(stack: LocalStack) -> None:
    for event_type, (status, text) in ROWS.items():
        if event_type == "incident.reopened":
            # Published before the reopen: the channel is asked to review it.
            published = datetime(2026, 11, 23, 13, 25, tzinfo=UTC)
            engine = make_engine(stack.database_url)
            with Session(engine) as session:
                row = session.exec(select(Incident).where(Incident.pagerduty_id == "PLIFE01")).one()
                row.postmortem_published_at = published
                session.add(row)
                session.add(
                    Postmortem(
                        incident_id=row.id or 0,
                        status=PostmortemStatus.PUBLISHED,
                        created_at=published,
                        updated_at=published,
                        published_at=published,
                        published_by="U0ALICE",
                    )
                )
                session.commit()
            engine.dispose()
        event_id = send(stack, event_type)
        assert (incident(stack, "PLIFE01").status, entry_text(stack, event_id)) == (status, text), event_type
        if event_type == "incident.resolved":
            assert incident(stack, "PLIFE01").seconds_to_resolve == 20 * 60
            stack.sandbox.wait_for(
                lambda: [p for p in prompts(stack, CHANNEL) if "after 20 minutes" in p], message="no prompt"
            )
            [prompt_ts] = [m["ts"] for m in bot_messages(stack, CHANNEL) if "resolved after" in m["text"]]
        if event_type == "incident.reopened":
            reopened = incident(stack, "PLIFE01")
            assert (reopened.resolved_at, reopened.seconds_to_resolve) == (None, None)
            assert reopened.reopened_at == datetime(2026, 11, 23, 13, 30, tzinfo=UTC)
            stack.sandbox.wait_for(
                lambda: (
                    card_says(stack, CHANNEL, "Incident #412 triggered")
                    and any("needs a review" in m["text"] for m in bot_messages(stack, CHANNEL))
                    and prompts(stack, CHANNEL) == []
                ),
                message="card not triggered, no review request, or the prompt still invites a write-up",
            )
            # The one prompt message says the incident lives again, with no button to write it up.
            [live] = [m for m in bot_messages(stack, CHANNEL) if "was reopened in PagerDuty" in m["text"]]
            assert live["ts"] == prompt_ts and "Write the post-mortem" not in json.dumps(live["blocks"])
    assert incident(stack, "PLIFE01").priority == "P1"

    # The final resolution: time to resolve counts to it, and the one prompt says so.
    send(stack, "incident.resolved.final")
    final = incident(stack, "PLIFE01")
    assert (final.status, final.seconds_to_resolve) == ("resolved", 90 * 60)
    stack.sandbox.wait_for(
        lambda: len(prompts(stack, CHANNEL)) == 1 and "after 90 minutes" in prompts(stack, CHANNEL)[0],
        message=f"the prompt was not updated to the final resolution: {prompts(stack, CHANNEL)}",
    )
    [again] = [m for m in bot_messages(stack, CHANNEL) if "resolved after" in m["text"]]
    assert again["ts"] == prompt_ts and "Write the post-mortem" in json.dumps(again["blocks"])
    posted = [c for c in stack.sandbox.calls_to("chat.postMessage") if c["ok"]]
    assert len([c for c in posted if "resolved after" in c["args"].get("text", "")]) == 1  # one prompt ever
    assert len([c for c in stack.sandbox.calls_to("conversations.create") if c["ok"]]) == 1


def test_a_merged_incident_points_to_the_survivor_gets_no_prompt_and_is_in_no_kpi(stack: LocalStack) -> None:
    send(stack, "incident.triggered")
    merged = fixture("incident.resolved.merged")
    send(
        stack,
        with_data(
            merged,
            "01LIFE18DUPETRIGGERED",
            event_type="incident.triggered",
            occurred_at="2026-11-23T13:38:00.000Z",
            data__status="triggered",
            data__resolve_reason=None,
        ),
    )
    duplicate_channel = "inc-413-checkout-latency-above-2-s-duplicate"
    stack.sandbox.wait_for(lambda: card_says(stack, duplicate_channel, "Incident #413"), message="no card")
    event_id = send(stack, merged)
    duplicate = incident(stack, "PDUPE01")
    assert (duplicate.status, duplicate.merged_into) == ("resolved", "PLIFE01")
    assert entry_text(stack, event_id) == "Merged into PagerDuty incident PLIFE01 by Ben Oncall"
    stack.sandbox.wait_for(
        lambda: any(
            "Merged into" in json.dumps(m.get("blocks")) for m in bot_messages(stack, duplicate_channel)
        ),
        message="the card does not say it was merged",
    )
    assert prompts(stack, duplicate_channel) == []
    send(stack, "incident.resolved")
    overall = kpis(stack)
    assert (overall.incidents, overall.resolved, overall.mean_seconds_to_resolve) == (1, 1, 20 * 60)


def stale_resolve(n: int, *, created: datetime, resolved: datetime) -> dict[str, Any]:
    document = fixture("incident.resolved")
    return with_data(
        document,
        f"01STALE{n:03d}",
        occurred_at=resolved.isoformat().replace("+00:00", "Z"),
        data__id=f"PSTALE{n:03d}",
        data__number=9000 + n,
        data__html_url=f"https://acme.pagerduty.com/incidents/PSTALE{n:03d}",
        data__created_at=created.isoformat().replace("+00:00", "Z"),
        data__title=f"Disk almost full on host {n}",
    )


def test_fifty_stale_incidents_resolved_in_bulk_open_no_channel_and_post_nothing(stack: LocalStack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(50):
        # Months old, or only days old: both were never seen before they were resolved.
        created = now - (timedelta(days=90 + n) if n % 2 else timedelta(days=2, minutes=n))
        send(stack, stale_resolve(n, created=created, resolved=now))
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        stale = session.exec(select(Incident).where(col(Incident.pagerduty_id).startswith("PSTALE"))).all()
        outbox = session.exec(select(OutboxMessage)).all()
    engine.dispose()
    assert len(stale) == 50
    assert {i.recorded_only for i in stale} == {
        FIRST_SEEN_RESOLVED,
        "first seen over 30 days after it started",
    }
    assert all(i.channel_id is None and i.status == "resolved" for i in stale)
    assert [row for row in outbox if row.kind == OutboxKind.CHANNEL] == [] and outbox == []
    assert stack.sandbox.calls_to("conversations.create") == []
    assert stack.sandbox.calls_to("chat.postMessage") == []


def test_a_resolve_that_crossed_its_trigger_still_gets_its_channel_and_prompt(stack: LocalStack) -> None:
    send(stack, "incident.resolved")
    assert incident(stack, "PLIFE01").recorded_only == FIRST_SEEN_RESOLVED
    send(stack, "incident.triggered")
    assert incident(stack, "PLIFE01").recorded_only is None
    stack.sandbox.wait_for(lambda: len(prompts(stack, CHANNEL)) == 1, message="no prompt after the trigger")


def test_an_incident_that_starts_in_the_future_is_recorded_with_a_reason_and_no_channel(
    stack: LocalStack,
) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    send(
        stack,
        with_data(
            fixture("incident.triggered"),
            "01FUTURE01",
            occurred_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            data__created_at=future.isoformat().replace("+00:00", "Z"),
        ),
    )
    recorded = incident(stack, "PLIFE01")
    assert recorded.recorded_only == f"starts in the future ({future.isoformat()})"
    assert recorded.channel_id is None and stack.sandbox.calls_to("conversations.create") == []


def test_two_accounts_same_number_and_title_two_incidents_two_channels_two_exported_files(
    stack: LocalStack, tmp_path: Path
) -> None:
    send(stack, "incident.triggered")
    other = with_data(
        fixture("incident.triggered"),
        "01GLOBEX01",
        data__id="QGLOBEX1",
        data__html_url="https://globex.pagerduty.com/incidents/QGLOBEX1",
    )
    send(stack, other)
    stack.sandbox.wait_for(
        lambda: (
            card_says(stack, CHANNEL, "Incident #412") and card_says(stack, f"{CHANNEL}-2", "Incident #412")
        ),
        message="two channels with a card each",
    )
    acme, globex = incident(stack, "PLIFE01"), incident(stack, "QGLOBEX1", "globex.pagerduty.com")
    assert (acme.channel_name, globex.channel_name) == (CHANNEL, f"{CHANNEL}-2")
    assert acme.channel_id != globex.channel_id

    engine = make_engine(stack.database_url)
    at = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    with Session(engine) as session:
        for incident_id in (acme.id, globex.id):
            session.add(
                Postmortem(
                    incident_id=incident_id,
                    status=PostmortemStatus.PUBLISHED,
                    summary="Checkout was slow.",
                    created_at=at,
                    updated_at=at,
                    published_at=at,
                    published_by="U0ALICE",
                )
            )
        session.commit()
        names = []
        for _ in range(2):
            result = export_postmortems(
                session=session, out=tmp_path, now=at, tz=ZoneInfo("UTC"), response_target_minutes=15
            )
            names.append(sorted(p.name for p in result.files if p.name != "README.md"))
    engine.dispose()
    assert (
        names[0]
        == names[1]
        == [
            "2026-11-23-inc-412-pd-plife01-checkout-latency-above-2-s.md",
            "2026-11-23-inc-412-pd-qglobex1-checkout-latency-above-2-s.md",
        ]
    )
    assert sorted(p.name for p in tmp_path.glob("*.md") if p.name != "README.md") == names[0]


def test_announce_channel_links_each_new_incident_channel_and_follows_its_resolution(
    database_url: str,
) -> None:
    with LocalStack(database_url, incident_channel_prefix="inc-", announce_channel="postmortems") as stack:
        send(stack, "incident.triggered")
        stack.sandbox.wait_for(lambda: bot_messages(stack, "postmortems"), message="no announcement")
        channel_id = stack.sandbox.channel_id(CHANNEL)
        [opened] = bot_messages(stack, "postmortems")
        assert (
            opened["text"]
            == f":rotating_light: Incident #412: Checkout latency above 2 s (in <#{channel_id}>)"
        )
        send(stack, "incident.resolved")
        stack.sandbox.wait_for(
            lambda: bot_messages(stack, "postmortems")[0]["text"].startswith(":white_check_mark:"),
            message="the announcement did not follow the resolution",
        )
        [resolved] = bot_messages(stack, "postmortems")  # the same message, updated in place
        assert resolved["ts"] == opened["ts"]
        assert "resolved after 20" in resolved["text"] and f"<#{channel_id}>" in resolved["text"]
        send(stack, "incident.reopened")
        stack.sandbox.wait_for(
            lambda: bot_messages(stack, "postmortems")[0]["text"].startswith(
                ":rotating_light: Incident #412 reopened"
            ),
            message=f"the announcement did not follow the reopen: {bot_messages(stack, 'postmortems')}",
        )
        send(stack, "incident.resolved.final")
        stack.sandbox.wait_for(
            lambda: "resolved after 1 h 30 min" in bot_messages(stack, "postmortems")[0]["text"],
            message=f"not the final resolution: {bot_messages(stack, 'postmortems')}",
        )
        assert [m["ts"] for m in bot_messages(stack, "postmortems")] == [opened["ts"]]


def test_an_incident_that_deserves_no_channel_is_counted_and_listed_for_triage_with_a_button(
    database_url: str,
) -> None:
    low = with_data(fixture("incident.triggered"), "01LOWURGENCY", data__urgency="low")
    with LocalStack(
        database_url,
        incident_channel_prefix="inc-",
        channel_urgencies="high",
        triage_channel="postmortems",
    ) as stack:
        send(stack, low)
        stack.sandbox.wait_for(lambda: bot_messages(stack, "postmortems"), message="not listed for triage")
        [listing] = bot_messages(stack, "postmortems")
        assert listing["text"] == (
            ":mag: Incident #412: Checkout latency above 2 s (Checkout, low): no channel opened."
        )
        assert stack.sandbox.calls_to("conversations.create") == []
        assert kpis(stack).incidents == 1  # recorded for the KPIs all the same
        postmortems = stack.sandbox.channel_id("postmortems")
        clicked = stack.sandbox.click_button(
            "U0ALICE",
            postmortems,
            listing["ts"],
            "open_channel",
            value=listing["blocks"][1]["elements"][0]["value"],
        )
        assert clicked.status == 200
        stack.sandbox.wait_for(
            lambda: card_says(stack, CHANNEL, "Incident #412"), message="no channel opened"
        )
        channel_id = stack.sandbox.channel_id(CHANNEL)
        stack.sandbox.wait_for(
            lambda: bot_messages(stack, "postmortems")[0]["text"].endswith(
                f"channel opened by <@U0ALICE>: <#{channel_id}>"
            ),
            message="the listing does not say who opened it, nor link the channel",
        )
        [opened] = bot_messages(stack, "postmortems")  # the same message, updated in place
        assert opened["ts"] == listing["ts"] and len(opened["blocks"]) == 1  # no button left
        # A high-urgency incident gets its channel at once, and is not listed.
        send(stack, with_data(fixture("incident.triggered"), "01HIGH", data__id="PHIGH01", data__number=500))
        stack.sandbox.wait_for(
            lambda: card_says(stack, "inc-500-checkout-latency-above-2-s", "Incident #500"),
            message="no channel",
        )
        assert len(bot_messages(stack, "postmortems")) == 1


def test_a_priority_raised_later_opens_the_channel_then(database_url: str) -> None:
    with LocalStack(database_url, incident_channel_prefix="inc-", channel_priorities="P1") as stack:
        send(stack, "incident.triggered")  # no priority yet
        send(stack, "incident.acknowledged")
        assert stack.sandbox.calls_to("conversations.create") == []
        send(stack, "incident.priority_updated")  # P1
        stack.sandbox.wait_for(lambda: card_says(stack, CHANNEL, "Incident #412"), message="no channel at P1")


def test_a_triage_listing_whose_incident_comes_to_qualify_links_its_new_channel_in_place(
    database_url: str,
) -> None:
    with LocalStack(
        database_url,
        incident_channel_prefix="inc-",
        channel_urgencies="high",
        channel_priorities="P1",
        triage_channel="postmortems",
    ) as stack:
        # No priority yet: listed. The priority raised to P1 makes it qualify.
        send(stack, "incident.triggered")
        stack.sandbox.wait_for(lambda: bot_messages(stack, "postmortems"), message="not listed for triage")
        [listing] = bot_messages(stack, "postmortems")
        assert listing["blocks"][1]["elements"][0]["text"]["text"] == "Open a channel"
        send(stack, "incident.priority_updated")
        stack.sandbox.wait_for(lambda: card_says(stack, CHANNEL, "Incident #412"), message="no channel at P1")
        channel_id = stack.sandbox.channel_id(CHANNEL)
        stack.sandbox.wait_for(
            lambda: bot_messages(stack, "postmortems")[0]["text"].endswith(
                f"channel opened: <#{channel_id}>"
            ),
            message=f"the listing does not link the channel: {bot_messages(stack, 'postmortems')}",
        )
        [opened] = bot_messages(stack, "postmortems")
        assert opened["ts"] == listing["ts"] and len(opened["blocks"]) == 1  # updated in place, no button

        # Low urgency at P1: listed. PagerDuty raising the urgency (on any later event) makes it qualify.
        low = with_data(
            fixture("incident.priority_updated"),
            "01LOWP1",
            data__id="PLOW001",
            data__number=600,
            data__urgency="low",
            data__html_url="https://acme.pagerduty.com/incidents/PLOW001",
        )
        send(stack, with_data(low, "01LOWP1TRIGGER", event_type="incident.triggered"))
        stack.sandbox.wait_for(lambda: len(bot_messages(stack, "postmortems")) == 2, message="not listed")
        send(
            stack, with_data(low, "01LOWP1HIGH", occurred_at="2026-11-23T13:40:00.000Z", data__urgency="high")
        )
        low_channel = "inc-600-checkout-latency-above-2-s"
        stack.sandbox.wait_for(lambda: card_says(stack, low_channel, "Incident #600"), message="no channel")
        low_id = stack.sandbox.channel_id(low_channel)
        stack.sandbox.wait_for(
            lambda: bot_messages(stack, "postmortems")[1]["text"].endswith(f"channel opened: <#{low_id}>"),
            message=f"the listing does not link the channel: {bot_messages(stack, 'postmortems')}",
        )
        assert len(bot_messages(stack, "postmortems")) == 2
