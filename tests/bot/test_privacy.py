"""Details of an incident in a private channel stay there unless its post-mortem was shared publicly:
the digest, the retro reminder and the MTTR alert (all posted in public channels) withhold its title and
its action items' text."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, select

from bot.core.config import load_settings
from bot.core.models import OutboxMessage
from bot.loop.digest import digest_message
from bot.loop.reminders import retro_reminder_message
from bot.loop.wins import alert_thresholds
from tests.factories import add_action_item, add_incident, postmortem_of

SETTINGS = load_settings(timezone="UTC", alert_mttr_minutes=20, alert_consecutive=3)
WEEK_END = datetime(2026, 11, 23, tzinfo=UTC)
SECRET = "Acquisition talks leaked"


def private_incident(session: Session, *, at: datetime, shared: bool, document: int | None = 3600):
    incident = add_incident(session, at=at, title=SECRET, resolve=3600, document=document, owner="U0OWN")
    incident.channel_is_private = True
    postmortem_of(session, incident).share_publicly = shared
    add_action_item(session, incident, text="Rotate the leaked keys", due=date(2026, 11, 1))
    session.flush()
    return incident


def test_digest_withholds_a_private_incident_unless_shared(session: Session) -> None:
    private_incident(session, at=WEEK_END - timedelta(days=3), shared=False, document=None)
    text, blocks, _ = digest_message(
        session=session, settings=SETTINGS, week_start=WEEK_END - timedelta(days=7), week_end=WEEK_END
    )
    shown = text + json.dumps(blocks)
    assert SECRET not in shown and "Rotate the leaked keys" not in shown
    assert "(a private incident)" in shown and "(an action item of a private incident)" in shown


def test_retro_reminder_shows_a_shared_private_postmortem(session: Session) -> None:
    private_incident(session, at=WEEK_END - timedelta(days=3), shared=True)
    _, blocks = retro_reminder_message(
        session=session, settings=SETTINGS, since=WEEK_END - timedelta(days=7), until=WEEK_END
    )
    assert SECRET in json.dumps(blocks) and "Rotate the leaked keys" in json.dumps(blocks)


def test_retro_reminder_withholds_an_unshared_private_postmortem(session: Session) -> None:
    private_incident(session, at=WEEK_END - timedelta(days=3), shared=False)
    text, blocks = retro_reminder_message(
        session=session, settings=SETTINGS, since=WEEK_END - timedelta(days=7), until=WEEK_END
    )
    assert SECRET not in text + json.dumps(blocks)
    assert "Rotate the leaked keys" not in json.dumps(blocks)


def test_mttr_alert_withholds_private_titles(session: Session) -> None:
    for day in (3, 2, 1):
        private_incident(session, at=WEEK_END - timedelta(days=day), shared=False)
    assert alert_thresholds(session=session, settings=SETTINGS, now=WEEK_END)
    [alert] = session.exec(select(OutboxMessage)).all()
    assert SECRET not in json.dumps(alert.payload) and "(a private incident)" in json.dumps(alert.payload)
