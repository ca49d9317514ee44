"""What a person's App Home tab shows: their open action items, the post-mortems they owe, and the team's
KPIs for the last 30 days. No Slack here; bot/slack/home_view.py builds the view and handlers/home.py
publishes it."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from bot.core.models import Incident, Postmortem
from bot.core.rows import id_of
from bot.domain.action_items import open_items_for
from bot.domain.incidents import counted_incidents, display_id
from bot.domain.reviews import postmortem_status
from bot.loop.kpis import compute_kpis, kpi_rows
from bot.slack.home_view import HomeContent, OwedPostmortem

HOME_KPI_DAYS = 30


def postmortems_owed_by(*, session: Session, user_id: str) -> list[OwedPostmortem]:
    """Unpublished post-mortems, and published ones that need a review (their incident reopened), whose
    owner is `user_id`: the post-mortem's owner, or (no owner yet) the incident's first responder, then
    whoever declared it, the person the reminders nudge. An incident counts once it is resolved or its
    post-mortem has been started."""
    owner = func.coalesce(Postmortem.owner_id, Incident.first_responder, Incident.declared_by)
    rows = session.exec(
        select(Incident, Postmortem)
        .outerjoin(Postmortem, col(Postmortem.incident_id) == col(Incident.id))
        .where(
            owner == user_id,
            or_(
                and_(col(Incident.postmortem_published_at).is_(None), col(Postmortem.published_at).is_(None)),
                col(Postmortem.needs_review_since).is_not(None),
            ),
            or_(col(Incident.resolved_at).is_not(None), col(Postmortem.id).is_not(None)),
            *counted_incidents(),
        )
        .order_by(col(Incident.resolved_at).is_(None), col(Incident.resolved_at), col(Incident.id))
    ).all()
    return [
        OwedPostmortem(
            incident_id=id_of(incident),
            incident_ref=display_id(incident),
            title=incident.title,
            channel_id=incident.channel_id,
            resolved_at=incident.resolved_at,
            status=postmortem_status(postmortem),
        )
        for incident, postmortem in rows
    ]


def home_content(
    *, session: Session, user_id: str, now: datetime, tz: ZoneInfo, response_target_minutes: int
) -> HomeContent:
    since = now - timedelta(days=HOME_KPI_DAYS)
    report = compute_kpis(
        session=session, since=since, until=now, response_target_minutes=response_target_minutes, tz=tz
    )
    return HomeContent(
        action_items=open_items_for(session=session, owner_id=user_id),
        owed=postmortems_owed_by(session=session, user_id=user_id),
        kpis=kpi_rows(report.overall),
        since=since,
        until=now,
    )
