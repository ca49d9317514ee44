"""Retro reminder and nudges, each called with a fixed `now` on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, col, select

from bot.core.config import ConfigError, Settings, load_settings
from bot.core.models import ActionItem, OutboxMessage, Postmortem
from bot.devtools.sandbox.block_checks import validate_message_blocks
from bot.loop.reminders import send_nudges, send_retro_reminder, snooze
from tests.factories import add_action_item, add_incident
from tests.golden import assert_golden

SETTINGS: Settings = load_settings(retro_schedule="fri 15:00", timezone="UTC")
RETRO = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # a Friday


def outbox(session: Session) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def message_of(row: OutboxMessage) -> dict:
    assert validate_message_blocks(row.payload["blocks"]) == []
    return {"channel": row.channel, "text": row.payload["text"], "blocks": row.payload["blocks"]}


def test_retro_reminder_lists_what_was_published_since_the_last_retro(session: Session) -> None:
    before = add_incident(session, at=RETRO - timedelta(days=9), title="Old news", resolve=600, document=60)
    this_week = add_incident(
        session,
        at=RETRO - timedelta(days=6),
        title="Checkout <!channel> down",
        service="checkout",
        resolve=600,
        document=3600,
        published_by="U0ALICE",
    )
    add_incident(session, at=RETRO - timedelta(minutes=30), title="Too late", resolve=600, document=3600)
    add_action_item(
        session, this_week, text="Alert on pool saturation", owner="U0BOB", due=date(2026, 11, 18)
    )
    add_action_item(session, before, text="Write the runbook", owner=None)
    add_action_item(session, before, text="Done already", completed_at=RETRO - timedelta(days=1))
    session.commit()

    assert send_retro_reminder(session=session, settings=SETTINGS, now=RETRO, scheduled_for=RETRO)
    assert not send_retro_reminder(
        session=session, settings=SETTINGS, now=RETRO + timedelta(minutes=1), scheduled_for=RETRO
    )
    rows = outbox(session)
    assert len(rows) == 1
    assert rows[0].key == "retro:2026-11-20T15:00:00+00:00"
    assert_golden("retro_reminder.json", message_of(rows[0]))


def test_the_retro_reminder_says_which_published_postmortem_needs_a_review(session: Session) -> None:
    incident = add_incident(session, at=RETRO - timedelta(days=6), title="Reopened", resolve=600, document=60)
    add_incident(session, at=RETRO - timedelta(days=5), title="Settled", resolve=600, document=60)
    postmortem = session.exec(select(Postmortem).where(Postmortem.incident_id == incident.id)).one()
    postmortem.needs_review_since = RETRO - timedelta(days=1)  # its incident reopened after publication
    session.add(postmortem)
    session.commit()
    assert send_retro_reminder(session=session, settings=SETTINGS, now=RETRO, scheduled_for=RETRO)
    blocks = message_of(outbox(session)[0])["blocks"]
    body = "\n".join(block["text"]["text"] for block in blocks if "text" in block)
    lines = [line for line in body.splitlines() if line.startswith("•")]
    reopened = next(line for line in lines if "Reopened" in line)
    settled = next(line for line in lines if "Settled" in line)
    assert reopened.endswith(":warning: needs a review (its incident reopened)")
    assert "needs a review" not in settled


def _unwritten(session: Session, *, resolved: datetime, owner: str | None = "U0OWNER") -> int:
    incident = add_incident(
        session,
        at=resolved - timedelta(minutes=40),
        title="Payments timing out",
        resolve=40 * 60,
        owner=owner,
        channel_id="C0INC",
    )
    session.commit()
    return incident.id  # type: ignore[return-value]


RESOLVED = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)


def test_unwritten_postmortem_nudges_owner_twice_then_the_channel(session: Session) -> None:
    incident_id = _unwritten(session, resolved=RESOLVED)
    # Resolved on a Monday at 10:00: 120 h later is a Saturday, so the channel hears on Monday (168 h).
    sweeps = [23, 24, 25, 48, 72, 73, 120, 121, 168, 169, 200]
    sent = {
        hours: send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=hours))
        for hours in sweeps
    }
    assert sent == {23: 0, 24: 1, 25: 0, 48: 0, 72: 1, 73: 0, 120: 0, 121: 0, 168: 1, 169: 0, 200: 0}
    rows = outbox(session)
    assert [(r.key, r.channel) for r in rows] == [
        (f"nudge:postmortem:{incident_id}:0", "U0OWNER"),
        (f"nudge:postmortem:{incident_id}:1", "U0OWNER"),
        (f"nudge:postmortem:{incident_id}:2", "C0INC"),
    ]
    assert_golden("nudge_postmortem_owner.json", message_of(rows[0]))
    assert_golden("nudge_postmortem_channel.json", message_of(rows[2]))


def test_nudges_stop_once_published_and_skip_a_backlog(session: Session) -> None:
    first = _unwritten(session, resolved=RESOLVED)
    second = _unwritten(session, resolved=RESOLVED)
    # The bot was down for three days: only the latest stage goes out.
    assert send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=79)) == 2
    assert {r.key for r in outbox(session)} == {f"nudge:postmortem:{first}:1", f"nudge:postmortem:{second}:1"}
    postmortem = session.exec(select(Postmortem).where(Postmortem.incident_id == first)).one()
    postmortem.published_at = RESOLVED + timedelta(hours=100)
    session.commit()
    assert send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=97)) == 0
    assert send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=168)) == 1
    assert outbox(session)[-1].key == f"nudge:postmortem:{second}:2"


def test_snooze_holds_a_postmortem_nudge_for_a_day(session: Session) -> None:
    incident_id = _unwritten(session, resolved=RESOLVED, owner=None)
    until = snooze(
        session=session,
        target=f"postmortem:{incident_id}",
        user_id="U0CAROL",
        at=RESOLVED + timedelta(hours=23),
    )
    session.commit()
    assert until == RESOLVED + timedelta(hours=47)
    assert send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=30)) == 0
    assert send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=48)) == 1
    # Snoozing made the clicker the owner of the write-up.
    assert outbox(session)[0].channel == "U0CAROL"


def test_no_nudges_outside_working_hours(session: Session) -> None:
    _unwritten(session, resolved=RESOLVED)
    assert send_nudges(session=session, settings=SETTINGS, now=RESOLVED + timedelta(hours=24 + 12)) == 0
    assert outbox(session) == []


def test_no_nudges_on_weekends_unless_working_days_say_so(session: Session) -> None:
    friday = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    _unwritten(session, resolved=friday)
    saturday, monday = friday + timedelta(days=1), friday + timedelta(days=3)
    assert send_nudges(session=session, settings=SETTINGS, now=saturday) == 0
    daily = load_settings(working_days="daily", timezone="UTC")
    assert send_nudges(session=session, settings=daily, now=saturday) == 1
    assert send_nudges(session=session, settings=SETTINGS, now=monday) == 1  # the 72 h stage, on Monday
    # Working days are days in TIMEZONE: Sunday 23:30 UTC is Monday 08:30 in Tokyo (before 9:00), and
    # Monday 09:30 there.
    tokyo = load_settings(timezone="Asia/Tokyo")
    sunday_late = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    assert send_nudges(session=session, settings=tokyo, now=sunday_late) == 0
    assert send_nudges(session=session, settings=tokyo, now=sunday_late + timedelta(hours=1)) == 0  # sent
    assert send_nudges(session=session, settings=SETTINGS, now=sunday_late + timedelta(hours=1)) == 0


def test_working_days_are_checked_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"WORKING_DAYS: .*unknown day 'someday'"):
        load_settings(working_days="mon,someday")


def test_action_item_nudged_on_its_due_date_and_weekly_after(session: Session) -> None:
    incident = add_incident(
        session, at=RESOLVED - timedelta(days=3), title="Disk full", resolve=600, document=600
    )
    item = add_action_item(session, incident, text="Add a disk alert", owner="U0DAVE", due=date(2026, 11, 20))
    session.commit()

    def sweep(day: int) -> int:
        return send_nudges(session=session, settings=SETTINGS, now=datetime(2026, 11, day, 10, tzinfo=UTC))

    assert [sweep(day) for day in (19, 20, 21, 26, 27, 28)] == [0, 1, 0, 0, 1, 0]
    rows = outbox(session)
    assert [(r.key, r.channel) for r in rows] == [
        (f"nudge:action_item:{item.id}:0", "U0DAVE"),
        (f"nudge:action_item:{item.id}:1", "U0DAVE"),
    ]
    assert_golden("nudge_action_item_overdue.json", message_of(rows[1]))

    snooze(
        session=session,
        target=f"action_item:{item.id}",
        user_id="U0DAVE",
        at=datetime(2026, 12, 4, 9, tzinfo=UTC),
    )
    session.commit()
    assert send_nudges(session=session, settings=SETTINGS, now=datetime(2026, 12, 4, 10, tzinfo=UTC)) == 0
    stored = session.get(ActionItem, item.id)
    assert stored is not None
    stored.status, stored.completed_at = "done", datetime(2026, 12, 4, 11, tzinfo=UTC)
    session.commit()
    assert send_nudges(session=session, settings=SETTINGS, now=datetime(2026, 12, 11, 10, tzinfo=UTC)) == 0
