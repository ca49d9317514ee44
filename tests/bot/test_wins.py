"""Wins and threshold alerts: announced once per occurrence, with a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from bot.core.config import load_settings
from bot.core.models import Announcement, OutboxMessage
from bot.devtools.sandbox.block_checks import validate_message_blocks
from bot.domain.incidents import refresh_durations
from bot.loop.wins import announce
from tests.factories import add_incident
from tests.golden import assert_golden

SETTINGS = load_settings(
    timezone="UTC",
    win_streak=3,
    alert_mttr_minutes=20,
    alert_consecutive=3,
    service_channels="PCHK=C0CHECKOUT",
)
WEEK = datetime(2026, 11, 16, tzinfo=UTC)  # Monday
NEXT_MONDAY = WEEK + timedelta(days=7, hours=10)


def outbox(session: Session) -> list[OutboxMessage]:
    return list(session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))))


def test_week_wins_are_announced_once_and_name_the_people(session: Session) -> None:
    # Week before: slow. This week: every response within 15 min, all documented, resolve 50% faster.
    add_incident(
        session,
        at=WEEK - timedelta(days=3),
        service="search",
        response=1200,
        resolve=3600,
        document=60,
        responder="U0OLD",
    )
    add_incident(
        session,
        at=WEEK + timedelta(days=1),
        service="checkout",
        response=300,
        resolve=1800,
        document=600,
        responder="U0ALICE",
        published_by="U0ALICE",
    )
    add_incident(
        session,
        at=WEEK + timedelta(days=3),
        service="search",
        response=900,
        resolve=1800,
        document=900,
        responder="U0BOB",
        published_by="U0CAROL",
    )
    session.commit()

    first = announce(session=session, settings=SETTINGS, now=NEXT_MONDAY)
    assert first == ["win:response_target:2026-11-16", "win:documented:2026-11-16", "win:mttr:2026-11-16"]
    assert announce(session=session, settings=SETTINGS, now=NEXT_MONDAY + timedelta(minutes=15)) == []
    rows = outbox(session)
    assert [(r.key, r.channel) for r in rows] == [(key, "wins") for key in first]
    for row in rows:
        assert validate_message_blocks(row.payload["blocks"]) == []
    assert_golden(
        "wins_week.json", [{"text": r.payload["text"], "blocks": r.payload["blocks"]} for r in rows]
    )
    assert "<@U0ALICE> and <@U0BOB>" in rows[0].payload["blocks"][1]["text"]["text"]
    assert "<@U0ALICE> and <@U0CAROL>" in rows[1].payload["blocks"][1]["text"]["text"]
    assert "50%" in rows[2].payload["text"]


def test_a_week_is_judged_only_once_none_of_its_incidents_is_open(session: Session) -> None:
    # The week before: one hour to resolve. This week: a 10-minute incident, and one still open at Monday
    # 00:15 that will take 8 hours: no "improved by 83%" on figures it is about to change.
    add_incident(session, at=WEEK - timedelta(days=3), response=1200, resolve=3600, document=60)
    add_incident(session, at=WEEK + timedelta(days=1), response=300, resolve=600, document=60)
    still_open = add_incident(session, at=WEEK + timedelta(days=6, hours=20), response=300, document=None)
    session.commit()
    monday = WEEK + timedelta(days=7, minutes=15)
    assert announce(session=session, settings=SETTINGS, now=monday) == []
    # Resolved 8 hours after its trigger: the week is final, and it was not an improvement.
    still_open.resolved_at = still_open.triggered_at + timedelta(hours=8)
    refresh_durations(still_open)
    session.commit()
    assert "win:mttr:2026-11-16" not in announce(
        session=session, settings=SETTINGS, now=monday + timedelta(hours=9)
    )
    assert outbox(session) == [] or all("mttr" not in r.key for r in outbox(session))


def test_no_week_win_when_one_incident_missed(session: Session) -> None:
    add_incident(session, at=WEEK + timedelta(days=1), response=300, resolve=600)
    add_incident(session, at=WEEK + timedelta(days=2), response=901, resolve=600)
    session.commit()
    assert announce(session=session, settings=SETTINGS, now=NEXT_MONDAY) == []


def test_streak_is_announced_once_per_multiple(session: Session) -> None:
    start = WEEK - timedelta(days=30)
    add_incident(session, at=start, service="search", response=2000, resolve=600)
    ids = [
        add_incident(
            session,
            at=start + timedelta(days=n + 1),
            service="search",
            response=60,
            resolve=600,
            responder=f"U0R{n}",
        ).id
        for n in range(7)
    ]
    session.commit()
    now = start + timedelta(days=10)
    keys = announce(session=session, settings=SETTINGS, now=now)
    streaks = [k for k in keys if k.startswith("win:streak")]
    assert streaks == [f"win:streak:search:{ids[0]}:6"]
    assert announce(session=session, settings=SETTINGS, now=now + timedelta(hours=1)) == []
    add_incident(session, at=start + timedelta(days=11), service="search", response=60, resolve=600)
    add_incident(session, at=start + timedelta(days=12), service="search", response=60, resolve=600)
    session.commit()
    assert [
        k
        for k in announce(session=session, settings=SETTINGS, now=start + timedelta(days=13))
        if "streak" in k
    ] == [f"win:streak:search:{ids[0]}:9"]
    streak_row = next(r for r in outbox(session) if r.key.endswith(":6"))
    assert_golden(
        "win_streak.json", {"text": streak_row.payload["text"], "blocks": streak_row.payload["blocks"]}
    )


def test_threshold_alert_fires_once_per_run_of_slow_incidents(session: Session) -> None:
    start = datetime(2026, 11, 2, tzinfo=UTC)

    def slow(day: int, minutes: int = 45):  # type: ignore[no-untyped-def]
        incident = add_incident(
            session,
            at=start + timedelta(days=day),
            service="checkout",
            response=60,
            resolve=minutes * 60,
            title=f"Slow {day}",
        )
        incident.service_id = "PCHK"
        session.commit()
        return incident

    def alerts(day: int) -> list[str]:
        now = start + timedelta(days=day, hours=12)
        return [k for k in announce(session=session, settings=SETTINGS, now=now) if k.startswith("alert:")]

    first = slow(0)
    slow(1)
    assert alerts(1) == []
    slow(2)
    assert alerts(2) == [f"alert:mttr:checkout:{first.id}"]
    slow(3)  # a fourth slow one extends the same run: no new alert
    assert alerts(3) == []
    slow(4, minutes=10)  # a fast one ends the run
    again = slow(5)
    merged = slow(5, minutes=2)  # merged into another incident: resolved at once, in no KPI, ends no run
    merged.merged_into = "PSURVIVOR"
    session.commit()
    slow(6)
    slow(7)
    assert alerts(7) == [f"alert:mttr:checkout:{again.id}"]
    rows = [r for r in outbox(session) if r.key.startswith("alert:")]
    assert [r.channel for r in rows] == ["C0CHECKOUT", "C0CHECKOUT"]
    assert_golden("alert_mttr.json", {"text": rows[0].payload["text"], "blocks": rows[0].payload["blocks"]})
    assert len(session.exec(select(Announcement).where(Announcement.kind == "alert:mttr")).all()) == 2
