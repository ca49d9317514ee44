"""Wins in WINS_CHANNEL and threshold alerts, announced exactly once per occurrence.

Wins, judged on the last closed local week (Monday to Sunday) once none of its incidents (nor, for the
time to resolve, those of the week before) is still open: a week's figures are final only then, so a win
is never announced on figures an open incident will change. A later sweep decides it.
- every incident got its first response within RESPONSE_TARGET_MINUTES;
- every incident has a published post-mortem;
- the mean time to resolve improved by 20 % or more on the week before;
and at any time: a service reached WIN_STREAK (then 2x, 3x ...) incidents in a row within the target.

Alert: ALERT_CONSECUTIVE incidents of a service in a row that each took longer than ALERT_MTTR_MINUTES to
resolve post one alert per run of such incidents (not one per incident) to the service's channel
(SERVICE_CHANNELS) or the post-mortems channel.

Each occurrence has a key in `announcements` (inserted with ON CONFLICT DO NOTHING, in the same
transaction as the outbox row), so a second sweep, a restart or a second replica announces nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import tuple_
from sqlmodel import Session, col, select

from bot.core.config import Settings
from bot.core.db import insert_ignoring_duplicates
from bot.core.models import Announcement, Incident, Postmortem
from bot.core.rendering import format_duration, render
from bot.domain.incidents import counted_incidents, display_id, public_title
from bot.loop.kpi_services import current_names, shown_names
from bot.loop.kpis import compute_kpis, last_closed_week
from bot.slack import messages
from bot.slack.outbox import Priority, enqueue

MTTR_IMPROVEMENT = 0.20
HISTORY = timedelta(days=180)


def announce(
    *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime | None = None
) -> list[str]:
    """The sweep: every win and alert due at `now`. Returns the keys announced by this call."""
    return announce_wins(session=session, settings=settings, now=now) + alert_thresholds(
        session=session, settings=settings, now=now
    )


def _people(ids: list[str | None]) -> str:
    unique = list(dict.fromkeys(i for i in ids if i))
    mentions = [f"<@{i}>" for i in unique]
    if not mentions:
        return "everyone on call"
    return mentions[0] if len(mentions) == 1 else ", ".join(mentions[:-1]) + " and " + mentions[-1]


def _announce_once(
    session: Session, *, key: str, kind: str, channel: str, title: str, body: str, fallback: str, at: datetime
) -> bool:
    if not insert_ignoring_duplicates(session, Announcement, {"key": key, "kind": kind, "created_at": at}):
        return False
    text, message = messages.feedback_message(title=title, body=body, fallback=fallback)
    enqueue(session, key=key, channel=channel, at=at, text=text, blocks=message, priority=Priority.ROUTINE)
    return True


def announce_wins(*, session: Session, settings: Settings, now: datetime) -> list[str]:
    tz, target = settings.tz, settings.response_target_minutes
    start, end = last_closed_week(now, tz)
    previous_start, _ = last_closed_week(start, tz)
    kpis = partial(compute_kpis, session=session, response_target_minutes=target, tz=tz)
    week = kpis(since=start, until=end).overall
    before = kpis(since=previous_start, until=start).overall
    incidents = session.exec(
        select(Incident)
        .where(col(Incident.triggered_at) >= start, col(Incident.triggered_at) < end)
        .order_by(col(Incident.triggered_at), col(Incident.id))
    ).all()
    label = start.astimezone(tz).date().isoformat()
    if (
        any(i.resolved_at is None for i in incidents)
        or session.exec(
            select(Incident.id)
            .where(col(Incident.triggered_at) >= previous_start, col(Incident.triggered_at) < start)
            .where(col(Incident.resolved_at).is_(None))
            .limit(1)
        ).first()
    ):
        return _announce_streaks(session=session, settings=settings, now=now)
    responders = _people([i.first_responder for i in incidents])
    wins: list[tuple[str, dict[str, object]]] = []
    if week.incidents and week.within_target == week.incidents:
        wins.append(("response_target", {"people": responders}))
    if week.incidents and week.documented == week.incidents:
        publishers = session.exec(
            select(Postmortem.published_by).where(col(Postmortem.incident_id).in_([i.id for i in incidents]))
        ).all()
        wins.append(("documented", {"people": _people(sorted(publishers, key=str))}))
    now_mttr, before_mttr = week.mean_seconds_to_resolve, before.mean_seconds_to_resolve
    if now_mttr is not None and before_mttr and now_mttr <= before_mttr * (1 - MTTR_IMPROVEMENT):
        wins.append(
            (
                "mttr",
                {
                    "people": responders,
                    "improvement": f"{1 - now_mttr / before_mttr:.0%}",
                    "now": format_duration(round(now_mttr)),
                    "before": format_duration(round(before_mttr)),
                },
            )
        )
    announced = []
    for kind, extra in wins:
        key = f"win:{kind}:{label}"
        body = render(
            "win.mrkdwn.j2", kind=kind, week=label, target=target, incidents=week.incidents, **extra
        )
        if _announce_once(
            session,
            key=key,
            kind=f"win:{kind}",
            channel=settings.wins_channel,
            title=":tada: A win for the team",
            body=body.strip(),
            fallback=body.strip().splitlines()[0],
            at=now,
        ):
            announced.append(key)
    return announced + _announce_streaks(session=session, settings=settings, now=now)


def _by_service(session: Session, now: datetime) -> dict[str, list[Incident]]:
    rows = session.exec(
        select(Incident)
        .where(col(Incident.service_name).is_not(None), col(Incident.triggered_at) >= now - HISTORY)
        .where(col(Incident.triggered_at) <= now, *counted_incidents())
        .order_by(col(Incident.service_name), col(Incident.triggered_at), col(Incident.id))
    ).all()
    grouped: dict[str, list[Incident]] = {}
    for incident in rows:
        if incident.service_name is None:
            raise ValueError(f"incident {incident.id} has no service: the query selects those that have one")
        grouped.setdefault(incident.service_name, []).append(incident)
    return grouped


def _latest_run(timed: list[tuple[Incident, int]], test: Callable[[int], bool]) -> list[Incident]:
    """The incidents at the end of the list whose seconds all pass `test` (the current run)."""
    run: list[Incident] = []
    for incident, seconds in reversed(timed):
        if not test(seconds):
            break
        run.append(incident)
    return list(reversed(run))


def _announce_streaks(*, session: Session, settings: Settings, now: datetime) -> list[str]:
    target = settings.response_target_minutes * 60
    n = settings.win_streak
    announced = []
    for service, incidents in _by_service(session, now).items():
        # Only incidents whose first response is known count; one still unanswered ends nothing yet.
        answered = [(i, s) for i in incidents if (s := i.seconds_to_first_response) is not None]
        run = _latest_run(answered, lambda seconds: seconds <= target)
        if len(run) < n:
            continue
        count = len(run) // n * n
        key = f"win:streak:{service}:{run[0].id}:{count}"
        body = render(
            "win.mrkdwn.j2",
            kind="streak",
            service=service,
            count=count,
            target=settings.response_target_minutes,
            people=_people([i.first_responder for i in run[:count]]),
        ).strip()
        if _announce_once(
            session,
            key=key,
            kind="win:streak",
            channel=settings.wins_channel,
            title=":tada: A win for the team",
            body=body,
            fallback=body.splitlines()[0],
            at=now,
        ):
            announced.append(key)
    return announced


def slow_runs(*, session: Session, settings: Settings, now: datetime) -> dict[str, list[Incident]]:
    """Per service, its latest resolved incidents in a row (by trigger, over HISTORY) that each took longer
    than ALERT_MTTR_MINUTES: the MTTR alert's rule, and /metrics' streak (refreshed every 30 s).

    A service is its id, shown as the KPIs show it (bot/loop/kpi_services.py). Read backwards per service on
    the (service_key, triggered_at, id) index: the last quick incident, then the slow ones after it, so the
    cost is the length of the runs, not of the history."""
    limit = settings.alert_mttr_minutes * 60
    resolved = [
        col(Incident.triggered_at) >= now - HISTORY,
        col(Incident.triggered_at) <= now,
        col(Incident.seconds_to_resolve).is_not(None),
        col(Incident.resolved_at) <= now,
        *counted_incidents(),  # a merged incident's quick "resolution" ends no run
    ]
    shown = shown_names(current_names(session))
    runs: dict[str, list[Incident]] = {}
    for key, service in shown.items():
        if key is None:
            continue
        of_service = [col(Incident.service_key) == key, *resolved]
        quick = session.exec(
            select(Incident.triggered_at, Incident.id)
            .where(*of_service, col(Incident.seconds_to_resolve) <= limit)
            .order_by(col(Incident.triggered_at).desc(), col(Incident.id).desc())
            .limit(1)
        ).first()
        after = [] if quick is None else [tuple_(col(Incident.triggered_at), col(Incident.id)) > tuple(quick)]
        run = session.exec(
            select(Incident).where(*of_service, *after).order_by(col(Incident.triggered_at), col(Incident.id))
        ).all()
        if run:
            runs[service] = list(run)
    return runs


def alert_thresholds(*, session: Session, settings: Settings, now: datetime) -> list[str]:
    announced = []
    for service, run in slow_runs(session=session, settings=settings, now=now).items():
        if len(run) < settings.alert_consecutive:
            continue
        # One alert per run: keyed by the run's first incident, so a 4th slow incident adds nothing.
        key = f"alert:mttr:{service}:{run[0].id}"
        shown = run[: max(settings.alert_consecutive, 10)]
        body = render(
            "alert_mttr.mrkdwn.j2",
            service=service,
            threshold=settings.alert_mttr_minutes,
            incidents=[
                {
                    "ref": display_id(i),
                    "title": public_title(i),
                    "duration": format_duration(i.seconds_to_resolve),
                }
                for i in shown
            ],
        ).strip()
        channel = settings.service_channels.get(run[-1].service_id or "", settings.postmortems_channel)
        if _announce_once(
            session,
            key=key,
            kind="alert:mttr",
            channel=channel,
            title=f":rotating_light: Time to resolve above {settings.alert_mttr_minutes} min",
            body=body,
            fallback=body.splitlines()[0],
            at=now,
        ):
            announced.append(key)
    return announced
