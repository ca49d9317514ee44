"""The weekly digest: the week's KPIs against the week before, a chart, the services with most incidents,
incidents still without a post-mortem, overdue action items and service ownership (bot/loop/ownership.py),
posted to DIGEST_CHANNEL.

The week is the seven local days before the day the digest is scheduled on (Monday 09:00 covers Monday
to Sunday). One message and one chart per week, keyed by the week's first day.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import case
from sqlmodel import Session, col, func, select

from bot.core.config import Settings
from bot.core.models import ActionItem, ActionItemStatus, Incident, Postmortem
from bot.core.rendering import format_instant, render
from bot.domain.action_items import TRACKERS
from bot.domain.incidents import counted_incidents, display_id, public_item_text, public_title
from bot.loop.charts import ChartSeries, chart_series, render_chart
from bot.loop.kpis import (
    KPI_FIELDS,
    Kpis,
    compute_kpis,
    kpi_rows,
    local_days_before,
    local_midnight,
    trend,
    week_before,
)
from bot.loop.ownership import ownership_report
from bot.slack import messages
from bot.slack.outbox import Priority, enqueue, enqueue_upload

LIST_LIMIT = 10
TOP_SERVICES = 5
CHART_WEEKS = 8
# A digest posted later than this after its scheduled time says so.
LATE_AFTER = timedelta(hours=1)
# The arrow says which way the figure moved; the colour (and the word) whether that is better or worse.
_VERDICT = {"better": ":large_green_circle: better", "worse": ":red_circle: worse"}


def trend_text(name: str, now: Kpis, before: Kpis) -> str:
    """`↓ :large_green_circle: better` for a time to resolve that fell; `↑` alone for a plain count."""
    a, b = getattr(now, name), getattr(before, name)
    if a is None or b is None or a == b:
        return ""
    arrow = "↑" if a > b else "↓"
    verdict = trend(name, now, before)
    return f"{arrow} {_VERDICT[verdict]}" if verdict else arrow


def _due_date(item: ActionItem) -> date:
    """An overdue item's due date (the overdue query selects only items that have one)."""
    if item.due_date is None:
        raise ValueError(f"action item {item.id} has no due date, so it cannot be overdue")
    return item.due_date


def digest_message(
    *,
    session: Session,
    settings: Settings,
    week_start: datetime,
    week_end: datetime,
    due_at: datetime | None = None,
) -> tuple[str, list[dict[str, Any]], ChartSeries]:
    """The digest of [week_start, week_end); `due_at` when it is posted late (it says when it was due)."""
    tz = settings.tz
    kpis = partial(
        compute_kpis, session=session, response_target_minutes=settings.response_target_minutes, tz=tz
    )
    this = kpis(since=week_start, until=week_end)
    before = kpis(since=week_before(week_start, tz), until=week_start)
    rows = [
        {
            "label": label,
            "now": shown,
            "before": was,
            "trend": trend_text(name, this.overall, before.overall),
        }
        for (label, shown), (_, was), (_, name, _, _) in zip(
            kpi_rows(this.overall), kpi_rows(before.overall), KPI_FIELDS, strict=True
        )
    ]
    services = sorted(this.by_service.items(), key=lambda item: (-item[1].incidents, item[0]))
    # Incidents of the week not resolved when the digest is written: shown as open, since the times to
    # resolve above are of resolved incidents only.
    still_open = session.exec(
        select(Incident)
        .where(
            col(Incident.triggered_at) >= week_start,
            col(Incident.triggered_at) < week_end,
            col(Incident.resolved_at).is_(None),
        )
        .order_by(col(Incident.triggered_at), col(Incident.id))
    ).all()
    # The lists show LIST_LIMIT rows and a total: fetch those rows and count the rest in SQL (over 1M
    # incidents, loading the ~400k unwritten ones took most of the digest's 25 s).
    unwritten_where = (
        col(Incident.resolved_at).is_not(None),
        col(Incident.resolved_at) < week_end,
        col(Incident.postmortem_published_at).is_(None),
        *counted_incidents(),
    )
    unwritten = session.exec(
        select(Incident, Postmortem)
        .outerjoin(Postmortem, col(Postmortem.incident_id) == col(Incident.id))
        .where(*unwritten_where)
        .order_by(col(Incident.resolved_at), col(Incident.id))
        .limit(LIST_LIMIT)
    ).all()
    unwritten_total = session.exec(select(func.count()).select_from(Incident).where(*unwritten_where)).one()
    today = week_end.astimezone(tz).date()
    overdue_where = (ActionItem.status == ActionItemStatus.OPEN, col(ActionItem.due_date) < today)
    overdue = session.exec(
        select(ActionItem, Incident, Postmortem)
        .join(Incident, col(Incident.id) == col(ActionItem.incident_id))
        .join(Postmortem, col(Postmortem.id) == col(ActionItem.postmortem_id))
        .where(*overdue_where)
        .order_by(col(ActionItem.due_date), col(ActionItem.id))
        .limit(LIST_LIMIT)
    ).all()
    overdue_total = session.exec(select(func.count()).select_from(ActionItem).where(*overdue_where)).one()
    done_total, done_in_tracker = session.exec(
        select(func.count(), func.count(case((col(ActionItem.completed_by).in_(TRACKERS), 1)))).where(
            ActionItem.status == ActionItemStatus.DONE,
            col(ActionItem.completed_at) >= week_start,
            col(ActionItem.completed_at) < week_end,
        )
    ).one()
    body = render(
        "digest.mrkdwn.j2",
        due=format_instant(due_at, tz, "%a %d %b %H:%M") if due_at else None,
        week=f"{week_start.astimezone(tz):%d %b} to {(week_end - timedelta(days=1)).astimezone(tz):%d %b %Y}",
        kpis=rows,
        services=[
            {"name": name, "incidents": k.incidents, "repeat": k.repeat_incidents}
            for name, k in services[:TOP_SERVICES]
            if k.incidents
        ],
        unwritten=[
            {
                "ref": display_id(incident),
                "title": public_title(incident, postmortem),
                "owner": (postmortem.owner_id if postmortem else None) or incident.first_responder,
                "resolved": format_instant(incident.resolved_at, tz, "%a %d %b"),
            }
            for incident, postmortem in unwritten
        ],
        unwritten_total=unwritten_total,
        still_open=[
            {
                "ref": display_id(incident),
                "title": public_title(incident),
                "triggered": format_instant(incident.triggered_at, tz, "%a %d %b %H:%M"),
            }
            for incident in still_open[:LIST_LIMIT]
        ],
        still_open_total=len(still_open),
        overdue=[
            {
                "text": public_item_text(item.text, incident, postmortem),
                "owner": item.owner_id,
                "due": _due_date(item).isoformat(),
                "ref": display_id(incident),
            }
            for item, incident, postmortem in overdue
        ],
        overdue_total=overdue_total,
        done_total=done_total,
        done_in_tracker=done_in_tracker,
        ownership=ownership_report(session=session, settings=settings, since=week_start, until=week_end),
    )
    k = this.overall
    fallback = (
        f"Weekly incident digest: {k.incidents} incidents, "
        f"{rows[3]['now']} first responses within {settings.response_target_minutes} min"
    )
    text, message = messages.feedback_message(
        title=":bar_chart: Weekly incident digest",
        body=body,
        fallback=fallback,
        footer=f"Times in {settings.timezone}. Target: first response within "
        f"{settings.response_target_minutes} min.",
    )
    series = chart_series(
        session=session, since=local_days_before(week_end, tz, 7 * CHART_WEEKS), until=week_end, tz=tz
    )
    return text, message, series


def send_digest(
    *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime
) -> ChartSeries | None:
    """The digest for the week that ended at the local midnight of `scheduled_for`'s day: its chart's
    series, or None when that week's digest was owed to Slack already (a second run posts nothing). Run
    more than LATE_AFTER after `scheduled_for` (the bot was down), it says it is late."""
    week_end = local_midnight(scheduled_for, settings.tz)
    week_start = week_before(week_end, settings.tz)
    text, message, series = digest_message(
        session=session,
        settings=settings,
        week_start=week_start,
        week_end=week_end,
        due_at=scheduled_for if now - scheduled_for > LATE_AFTER else None,
    )
    week = week_start.astimezone(settings.tz).date().isoformat()
    posted = enqueue(
        session,
        key=f"digest:{week}",
        channel=settings.digest_target,
        at=now,
        message_key=f"digest:{week}",
        text=text,
        blocks=message,
        priority=Priority.ROUTINE,
    )
    enqueue_upload(
        session,
        key=f"digest-chart:{week}",
        channel=settings.digest_target,
        at=now,
        filename=f"incidents-{week}.png",
        content=render_chart(series, target_minutes=settings.alert_mttr_minutes),
        title=f"Incidents and time to resolve, {CHART_WEEKS} weeks to {week}",
        priority=Priority.ROUTINE,
    )
    return series if posted else None
