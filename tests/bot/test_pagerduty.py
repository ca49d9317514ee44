"""PagerDuty V3: signatures on the published vectors, parsing, and the lifecycle on real databases."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from bot.core.config import load_settings
from bot.core.db import session_scope
from bot.core.models import InboundDelivery, Incident, IncidentStatus, OutboxMessage, TimelineEntry
from bot.domain.deliveries import archive_delivery
from bot.domain.incidents import incident_channel_name
from bot.domain.pagerduty import (
    SOURCE,
    MalformedDelivery,
    Outcome,
    parse_event,
    parse_instant,
    sign,
    signature_matches,
)
from bot.runtime.processor import DeliveryProcessor
from tests.conftest import NOW
from tests.shared_fixtures import SignedDelivery, pagerduty_file, pagerduty_vectors

SETTINGS = load_settings(incident_channel_prefix="inc-")
FILES = ("triggered", "acknowledged", "resolved", "annotated")


def _vectors() -> list[SignedDelivery]:
    return pagerduty_vectors()


def deliver(engine: Engine, body: bytes, settings=SETTINGS) -> Outcome | None:  # type: ignore[no-untyped-def]
    """What the webhook and the processor do after the signature check: store the delivery, then process
    what is due. None when the delivery was stored before (a duplicate: nothing is processed for it)."""
    event = parse_event(body)
    with session_scope(engine) as session:
        stored = archive_delivery(
            session,
            source=SOURCE,
            delivery_id=event.id,
            event_type=event.event_type,
            body=body.decode(),
            at=NOW,
        )
    if not stored:
        return None
    outcome = DeliveryProcessor(engine=engine, settings=settings).process_next(NOW)
    assert not isinstance(outcome, Exception), outcome
    return outcome


def lifecycle_bodies() -> list[bytes]:
    return [pagerduty_file(f"incident.{name}.json") for name in FILES]


def test_every_published_signature_verifies_and_a_tampered_body_does_not() -> None:
    for vector in _vectors():
        assert signature_matches(vector.body, vector.signature, [vector.secret]), vector.name
        assert sign(vector.body, vector.secret) == vector.signature
        assert not signature_matches(vector.body + b" ", vector.signature, [vector.secret])
        assert not signature_matches(vector.body, vector.signature, ["another secret"])
        assert not signature_matches(vector.body, None, [vector.secret])
        assert not signature_matches(vector.body, "", [vector.secret])
        assert not signature_matches(vector.body, vector.signature.replace("v1=", "v0="), [vector.secret])


def test_rotation_several_signatures_and_several_secrets() -> None:
    vector = _vectors()[0]
    header = f"v1={'0' * 64}, {vector.signature}"
    assert signature_matches(vector.body, header, ["old secret", vector.secret])
    assert not signature_matches(vector.body, f"v1={'0' * 64}", ["old secret", vector.secret])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[]", 'no "event"'),
        (b'{"messages": []}', 'no "event"'),
        (b'{"event": {"event_type": "incident.triggered"}}', "event.id"),
        (
            b'{"event": {"id": "E1", "event_type": "x", "occurred_at": "yesterday", "data": {}}}',
            "occurred_at",
        ),
        (b'{"event": {"id": "E1", "event_type": "x", "occurred_at": "2025-01-01T00:00:00Z"}}', "event.data"),
    ],
)
def test_malformed_bodies_say_why(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedDelivery) as caught:
        parse_event(body)
    assert reason in caught.value.reason


def test_annotated_names_the_incident_in_data_incident_not_data_id() -> None:
    event = parse_event(pagerduty_file("incident.annotated.json"))
    assert event.data["id"] == "PTSAIFZ"  # the note
    assert event.incident_id == "Q2CKYRLH85UNN4"
    assert event.incident is None


@pytest.mark.parametrize(
    ("number", "title", "expected"),
    [
        (37, "Test", "inc-37-test"),
        (2, "A little bump in the road!", "inc-2-a-little-bump-in-the-road"),
        (5, "Café «down» — 50% of EU_users", "inc-5-cafe-down-50-of-eu-users"),
        (6, "🔥🔥", "inc-6"),
        (7, "x" * 200, "inc-7-" + "x" * 74),
        (8, "ab " * 40, ("inc-8-" + "ab-" * 40)[:80].rstrip("-")),
    ],
)
def test_channel_names_are_slack_safe(number: int, title: str, expected: str) -> None:
    name = incident_channel_name(prefix="inc-", number=number, title=title)
    assert name == expected
    assert len(name) <= 80 and not name.endswith("-")


def test_each_fixture_stores_the_payloads_instants(engine: Engine) -> None:
    for body in lifecycle_bodies():
        assert deliver(engine, body) == Outcome.PROCESSED
    events = {json.loads(b)["event"]["event_type"]: json.loads(b)["event"] for b in lifecycle_bodies()}
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
        assert incident.pagerduty_id == "Q2CKYRLH85UNN4"
        assert (incident.number, incident.title, incident.service_id, incident.service_name) == (
            37,
            "Test",
            "PNE3JZM",
            "Webhook Tester",
        )
        assert (incident.urgency, incident.priority) == ("low", None)
        assert incident.html_url == "https://aldaviva.pagerduty.com/incidents/Q2CKYRLH85UNN4"
        # The incident's start is its created_at, carried identically by every incident event.
        assert incident.triggered_at == parse_instant(events["incident.triggered"]["data"]["created_at"])
        assert incident.acknowledged_at == parse_instant(events["incident.acknowledged"]["occurred_at"])
        assert incident.resolved_at == parse_instant(events["incident.resolved"]["occurred_at"])
        assert incident.acknowledged_at == datetime(2025, 4, 7, 3, 47, 13, 546000, tzinfo=UTC)
        assert incident.status == IncidentStatus.RESOLVED
        assert (incident.seconds_to_acknowledge, incident.seconds_to_resolve) == (0, 143)
        timeline = session.exec(select(TimelineEntry).order_by(TimelineEntry.occurred_at)).all()
        assert [(t.kind, t.occurred_at) for t in timeline] == [
            (e["event_type"].removeprefix("incident."), parse_instant(e["occurred_at"]))
            for e in sorted(events.values(), key=lambda e: e["occurred_at"])
        ]
        assert timeline[-1].text == "Note by Ben: Resolution Note: I'm resolving it"


def test_priority_updated_fixture_creates_and_describes_its_incident(engine: Engine) -> None:
    for body in [pagerduty_file("incident.priority_updated.json")] + [
        v.body for v in _vectors() if "inline" in v.name
    ]:
        assert deliver(engine, body) == Outcome.PROCESSED
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
        assert (incident.pagerduty_id, incident.number, incident.priority) == ("PGR0VU2", 2, "P1")
        assert incident.triggered_at == datetime(2020, 4, 9, 15, 16, 27, tzinfo=UTC)
        assert incident.status == IncidentStatus.TRIGGERED
        assert incident.service_name == "API Service" and incident.urgency == "high"


def counts(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        outbox = session.exec(select(OutboxMessage)).all()
        return {
            "incidents": session.exec(select(func.count()).select_from(Incident)).one(),
            "timeline": session.exec(select(func.count()).select_from(TimelineEntry)).one(),
            "deliveries": session.exec(select(func.count()).select_from(InboundDelivery)).one(),
            "channel_rows": sum(1 for row in outbox if row.kind == "channel"),
            "prompt_rows": sum(1 for row in outbox if row.key.startswith("prompt:")),
        }


@pytest.mark.parametrize("seed", range(5))
def test_three_copies_in_shuffled_order_make_one_incident(engine: Engine, seed: int) -> None:
    bodies = lifecycle_bodies() * 3
    random.Random(seed).shuffle(bodies)
    outcomes = [deliver(engine, body) for body in bodies]
    # Each event is processed once (a copy stored before is not processed again); a note that came
    # before its incident waits until then.
    assert outcomes.count(None) == 8
    assert outcomes.count(Outcome.PROCESSED) in (3, 4)
    assert set(outcomes) <= {Outcome.PROCESSED, None, Outcome.WAITING}
    assert counts(engine) == {
        "incidents": 1,
        "timeline": 4,
        "deliveries": 4,
        "channel_rows": 1,
        "prompt_rows": 0,  # the channel does not exist yet: the prompt is posted when it opens
    }
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
        assert incident.status == IncidentStatus.RESOLVED
        assert incident.acknowledged_at == datetime(2025, 4, 7, 3, 47, 13, 546000, tzinfo=UTC)
        assert (
            session.exec(
                select(func.count())
                .select_from(InboundDelivery)
                .where(InboundDelivery.processed_at.is_(None))
            ).one()
            == 0
        )  # type: ignore[union-attr]


def test_acknowledged_after_resolved_keeps_it_resolved(engine: Engine) -> None:
    for name in ("triggered", "resolved", "acknowledged"):
        deliver(engine, pagerduty_file(f"incident.{name}.json"))
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
        assert incident.status == IncidentStatus.RESOLVED
        assert incident.acknowledged_at is not None


def test_a_note_before_its_incident_waits_then_lands(engine: Engine) -> None:
    assert deliver(engine, pagerduty_file("incident.annotated.json")) == Outcome.WAITING
    assert counts(engine)["incidents"] == 0
    assert deliver(engine, pagerduty_file("incident.annotated.json")) is None  # retried: stored already
    assert deliver(engine, pagerduty_file("incident.resolved.json")) == Outcome.PROCESSED
    assert counts(engine)["timeline"] == 2
    with Session(engine) as session:
        note = session.exec(
            select(InboundDelivery).where(InboundDelivery.event_type == "incident.annotated")
        ).one()
        assert (note.processed_at, note.error) == (NOW, None)
    assert deliver(engine, pagerduty_file("incident.annotated.json")) is None


def test_unknown_event_types_are_archived_and_ignored(engine: Engine) -> None:
    ping = json.dumps(
        {
            "event": {
                "id": "01PING",
                "event_type": "pagey.ping",
                "resource_type": "pagey",
                "occurred_at": "2025-04-07T03:47:13Z",
                "agent": None,
                "client": None,
                "data": {"message": "Hello from your friend Pagey!", "type": "ping"},
            }
        }
    ).encode()
    assert deliver(engine, ping) == Outcome.IGNORED
    assert deliver(engine, ping) is None
    assert counts(engine) == {
        "incidents": 0,
        "timeline": 0,
        "deliveries": 1,
        "channel_rows": 0,
        "prompt_rows": 0,
    }


def test_the_archive_says_whether_a_delivery_is_new(session: Session) -> None:
    """On both backends (psycopg's rowcount is -1 for INSERT ... ON CONFLICT DO NOTHING)."""
    first = archive_delivery(
        session, source="slack", delivery_id="Ev1", event_type="message", body="{}", at=NOW
    )
    again = archive_delivery(
        session, source="slack", delivery_id="Ev1", event_type="message", body="{}", at=NOW
    )
    other = archive_delivery(
        session, source="pagerduty", delivery_id="Ev1", event_type=None, body="{}", at=NOW
    )
    assert (first, again, other) == (True, False, True)


def test_service_channels_setting_maps_services_to_existing_channels(engine: Engine) -> None:
    from bot.core.config import ConfigError
    from bot.slack.notices import incident_channel_target

    settings = load_settings(service_channels="PNE3JZM=#webhooks, PF9KMXH=C0123ABCD")
    assert settings.service_channels == {"PNE3JZM": "webhooks", "PF9KMXH": "C0123ABCD"}
    with pytest.raises(ConfigError, match="SERVICE_CHANNELS"):
        load_settings(service_channels="PNE3JZM")
    with pytest.raises(ConfigError, match="INCIDENT_CHANNEL_PREFIX"):
        load_settings(incident_channel_prefix="Inc #")
    deliver(engine, pagerduty_file("incident.triggered.json"), settings=settings)
    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
        assert incident_channel_target(incident, settings) == ("webhooks", False)
        assert incident_channel_target(incident, SETTINGS) == ("inc-37-test", True)
        [row] = [r for r in session.exec(select(OutboxMessage)) if r.kind == "channel"]
        assert (row.channel, row.payload["create"]) == ("webhooks", False)
