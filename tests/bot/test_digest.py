"""The weekly digest and its chart, with a fixed `now`, on SQLite and PostgreSQL."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta

from sqlmodel import Session, col, select

from bot.core.config import load_settings
from bot.core.models import Attachment, OutboxMessage
from bot.devtools.sandbox.block_checks import validate_message_blocks
from bot.loop.charts import chart_series, render_chart
from bot.loop.digest import digest_message, send_digest
from tests.factories import add_action_item, add_incident
from tests.golden import assert_golden

SETTINGS = load_settings(timezone="UTC", digest_schedule="mon 09:00", digest_channel="incident-digest")
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
WEEK = datetime(2026, 11, 16, tzinfo=UTC)


def data(session: Session) -> None:
    # The week before (Nov 9-15): two slow incidents.
    add_incident(
        session,
        at=WEEK - timedelta(days=5),
        service="checkout",
        ack=300,
        response=1500,
        resolve=3600,
        document=7200,
    )
    add_incident(
        session,
        at=WEEK - timedelta(days=4),
        service="search",
        ack=200,
        response=600,
        resolve=2400,
        document=3600,
    )
    # The week (Nov 16-22): three faster ones, one without a post-mortem.
    add_incident(
        session,
        at=WEEK + timedelta(hours=10),
        service="checkout",
        ack=60,
        response=300,
        resolve=1200,
        document=3600,
        title="Checkout <b>500s</b>",
    )
    add_incident(
        session,
        at=WEEK + timedelta(days=2, hours=3),
        service="checkout",
        ack=120,
        response=600,
        resolve=1800,
        owner="U0OWNER",
        title="Cart empty",
    )
    third = add_incident(
        session,
        at=WEEK + timedelta(days=4, hours=14),
        service="payments",
        ack=30,
        response=1200,
        resolve=600,
        document=1800,
        title="Card declines",
    )
    add_action_item(session, third, text="Retry declined cards once", owner="U0PAY", due=date(2026, 11, 20))
    session.commit()


def test_digest_posts_the_week_against_the_week_before_with_a_chart(session: Session) -> None:
    data(session)
    series = send_digest(session=session, settings=SETTINGS, now=MONDAY, scheduled_for=MONDAY)
    again = MONDAY + timedelta(minutes=5)
    assert series is not None
    assert send_digest(session=session, settings=SETTINGS, now=again, scheduled_for=MONDAY) is None
    rows = list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))
    assert [(r.key, r.kind, r.channel) for r in rows] == [
        ("digest:2026-11-16", "post", "incident-digest"),
        ("digest-chart:2026-11-16", "upload", "incident-digest"),
    ]
    payload = rows[0].payload
    assert validate_message_blocks(payload["blocks"]) == []
    assert_golden("weekly_digest.json", {"text": payload["text"], "blocks": payload["blocks"]})

    # The chart: 8 weeks of days ending Sunday Nov 22, with the incidents plotted on their days.
    assert (
        len(series.days) == 56
        and series.days[0] == date(2026, 9, 28)
        and series.days[-1] == date(2026, 11, 22)
    )
    plotted = {
        day: (n, m)
        for day, n, m in zip(series.days, series.incidents, series.mean_minutes_to_resolve, strict=True)
        if n
    }
    assert plotted == {
        date(2026, 11, 11): (1, 60.0),
        date(2026, 11, 12): (1, 40.0),
        date(2026, 11, 16): (1, 20.0),
        date(2026, 11, 18): (1, 30.0),
        date(2026, 11, 20): (1, 10.0),
    }
    png = session.get(Attachment, rows[1].payload["attachment_id"]).content  # type: ignore[union-attr]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1000, 400)
    assert 10_000 < len(png) < 500_000


def test_chart_of_an_empty_period_is_still_a_png(session: Session) -> None:
    series = chart_series(session=session, since=WEEK, until=WEEK + timedelta(days=7), tz=SETTINGS.tz)
    assert series.incidents == [0] * 7 and series.mean_minutes_to_resolve == [None] * 7
    assert render_chart(series)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_digest_counts_the_items_done_this_week_and_those_closed_in_the_tracker(session: Session) -> None:
    incident = add_incident(session, at=WEEK + timedelta(hours=2), resolve=600, document=600)
    in_slack = add_action_item(
        session, incident, text="Closed in Slack", completed_at=WEEK + timedelta(days=1)
    )
    in_jira = add_action_item(session, incident, text="Closed in Jira", completed_at=WEEK + timedelta(days=2))
    in_jira.completed_by = "jira"  # what bot/flows/trackers.py records for an issue done in the tracker
    add_action_item(session, incident, text="Closed last week", completed_at=WEEK - timedelta(days=1))
    add_action_item(session, incident, text="Still open")
    assert in_slack.completed_by == "U0OWNER"
    session.commit()
    send_digest(session=session, settings=SETTINGS, now=MONDAY, scheduled_for=MONDAY)
    text = str(session.exec(select(OutboxMessage)).first().payload["blocks"])  # type: ignore[union-attr]
    assert "*Action items done this week: 2* (1 closed in the tracker)" in text


def test_open_incidents_of_the_week_are_shown_as_open_not_left_out(session: Session) -> None:
    data(session)
    add_incident(session, at=WEEK + timedelta(days=6, hours=20), title="Queue <backlog>", ack=60)
    session.commit()
    _, blocks, _ = digest_message(
        session=session, settings=SETTINGS, week_start=WEEK, week_end=WEEK + timedelta(days=7)
    )
    shown = "\n".join(b["text"]["text"] for b in blocks if b.get("type") == "section" and "text" in b)
    assert "*Still open (1)*: not in the times to resolve above until resolved." in shown
    assert "Queue &lt;backlog&gt; · triggered Sun 22 Nov 20:00" in shown
    # The times to resolve are those of the three resolved incidents; the open one is counted as an incident.
    assert "• Incidents: *4* (was 2) ↑" in shown and "Mean time to resolve: *20 min*" in shown


def test_the_chart_covers_eight_weeks_of_local_days_across_daylight_saving(session: Session) -> None:
    berlin = load_settings(timezone="Europe/Berlin")
    # Monday Nov 2, 2026, 00:00 in Berlin (summer time ended Oct 25): eight weeks back is Sep 7, 00:00 CEST.
    week_end = datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
    add_incident(session, at=datetime(2026, 9, 6, 22, 30, tzinfo=UTC), resolve=60)  # Sep 7, 00:30 local
    add_incident(session, at=datetime(2026, 9, 6, 21, 30, tzinfo=UTC), resolve=60)  # Sep 6: outside
    session.commit()
    _, _, series = digest_message(
        session=session, settings=berlin, week_start=week_end - timedelta(days=7), week_end=week_end
    )
    assert series.days[0] == date(2026, 9, 7) and series.days[-1] == date(2026, 11, 1)
    assert len(series.days) == 56 and series.incidents[0] == 1 and sum(series.incidents) == 1
