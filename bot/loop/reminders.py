"""Reminders: the retro reminder and the nudges, as sweeps over the tables with a fixed `now`.

- Before each retro (RETRO_SCHEDULE) the post-mortems channel gets the post-mortems published since the
  previous retro and the open action items.
- An unwritten post-mortem nudges its owner by DM 24 h and 72 h after the resolution, then (120 h) the
  incident channel; it stops once the post-mortem is published.
- An open action item nudges its owner on its due date and weekly after.
- A snooze button on every nudge holds that thing's nudges for a day.

Nobody is nudged twice for the same thing: each nudge occurrence has its own outbox key
("nudge:postmortem:<incident>:<stage>", "nudge:action_item:<id>:<week>"). Only the latest stage reached
is sent, so a bot that was down does not send a backlog. Nudges to people go out in working hours
(9:00-18:00) of working days (WORKING_DAYS), in TIMEZONE. A reminder that waited in the outbox past its
freshness (Slack was down) is dropped, not sent late.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlmodel import Session, col, select

from bot.core.config import Settings
from bot.core.errors import UserError
from bot.core.models import ActionItem, ActionItemStatus, Incident, Postmortem
from bot.core.rendering import format_duration, format_instant, plural, render
from bot.domain.incidents import counted_incidents, display_id, get_incident, public_item_text, public_title
from bot.domain.postmortems import start_postmortem
from bot.slack import messages
from bot.slack.outbox import Priority, enqueue

# (after the resolution, who hears it)
POSTMORTEM_STAGES = (
    (timedelta(hours=24), "owner"),
    (timedelta(hours=72), "owner"),
    (timedelta(hours=120), "channel"),
)
# An incident older than this is no longer chased (its last stage went out long ago).
POSTMORTEM_CHASE_LIMIT = timedelta(days=30)
SNOOZE = timedelta(days=1)
# How long a reminder stays worth sending: the scheduler's grace for the retro reminder, and how long a
# reminder may wait in the outbox (Slack down) before it is dropped with a log line instead of sent late.
RETRO_FRESH = timedelta(hours=1)
NUDGE_FRESH = timedelta(hours=4)
WORKING_HOURS = range(9, 18)
RETRO_LIST_LIMIT = 15


def send_retro_reminder(
    *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime
) -> bool:
    """The reminder for the retro scheduled at `scheduled_for` (one message per retro). False when it was
    owed to Slack already (nothing new is posted)."""
    previous_retro = settings.retro.previous(scheduled_for - timedelta(seconds=1), settings.tz)
    text, message = retro_reminder_message(
        session=session, settings=settings, since=previous_retro, until=scheduled_for
    )
    return enqueue(
        session,
        key=f"retro:{scheduled_for.isoformat()}",
        channel=settings.postmortems_channel,
        at=now,
        stale_at=scheduled_for + RETRO_FRESH,
        priority=Priority.ROUTINE,
        text=text,
        blocks=message,
    )


def retro_reminder_message(
    *, session: Session, settings: Settings, since: datetime, until: datetime
) -> tuple[str, list[dict[str, Any]]]:
    tz = settings.tz
    published = session.exec(
        select(Postmortem, Incident)
        .join(Incident, col(Incident.id) == col(Postmortem.incident_id))
        .where(col(Postmortem.published_at) >= since, col(Postmortem.published_at) < until)
        .order_by(col(Postmortem.published_at), col(Postmortem.id))
    ).all()
    open_items = session.exec(
        select(ActionItem, Incident, Postmortem)
        .join(Incident, col(Incident.id) == col(ActionItem.incident_id))
        .join(Postmortem, col(Postmortem.id) == col(ActionItem.postmortem_id))
        .where(ActionItem.status == ActionItemStatus.OPEN, col(ActionItem.created_at) < until)
        .order_by(col(ActionItem.due_date).is_(None), col(ActionItem.due_date), col(ActionItem.id))
    ).all()
    today = until.astimezone(tz).date()
    body = render(
        "retro_reminder.mrkdwn.j2",
        since=format_instant(since, tz, "%a %d %b %H:%M"),
        postmortems=[
            {
                "ref": display_id(incident),
                "title": public_title(incident, postmortem),
                "service": incident.service_name,
                "published_by": postmortem.published_by,
                "published": format_instant(postmortem.published_at, tz, "%a %d %b"),
                "needs_review": postmortem.needs_review_since is not None,
            }
            for postmortem, incident in published[:RETRO_LIST_LIMIT]
        ],
        more_postmortems=max(0, len(published) - RETRO_LIST_LIMIT),
        items=[
            {
                "text": public_item_text(item.text, incident, postmortem),
                "owner": item.owner_id,
                "due": item.due_date.isoformat() if item.due_date else None,
                "overdue": item.due_date is not None and item.due_date < today,
                "ref": display_id(incident),
            }
            for item, incident, postmortem in open_items[:RETRO_LIST_LIMIT]
        ],
        open_items_total=len(open_items),
        more_items=max(0, len(open_items) - RETRO_LIST_LIMIT),
    )
    fallback = (
        f"Retro reminder: {plural(len(published), 'post-mortem')} published, "
        f"{plural(len(open_items), 'open action item')}"
    )
    return messages.feedback_message(title=":calendar: Retro reminder", body=body, fallback=fallback)


def send_nudges(
    *, session: Session, settings: Settings, now: datetime, scheduled_for: datetime | None = None
) -> int:
    """The nudge sweep: unwritten post-mortems and overdue action items. Returns how many were enqueued."""
    local = now.astimezone(settings.tz)
    if local.hour not in WORKING_HOURS or local.weekday() not in settings.working_weekdays:
        return 0
    return nudge_unwritten_postmortems(
        session=session, settings=settings, now=now
    ) + nudge_overdue_action_items(session=session, settings=settings, now=now)


def nudge_unwritten_postmortems(*, session: Session, settings: Settings, now: datetime) -> int:
    first_delay = POSTMORTEM_STAGES[0][0]
    rows = session.exec(
        select(Incident, Postmortem)
        .outerjoin(Postmortem, col(Postmortem.incident_id) == col(Incident.id))
        .where(
            col(Incident.resolved_at) <= now - first_delay,
            col(Incident.resolved_at) > now - POSTMORTEM_CHASE_LIMIT,
            col(Incident.postmortem_published_at).is_(None),
            or_(col(Postmortem.id).is_(None), col(Postmortem.published_at).is_(None)),
            or_(col(Postmortem.snoozed_until).is_(None), col(Postmortem.snoozed_until) <= now),
            *counted_incidents(),
        )
        .order_by(col(Incident.resolved_at), col(Incident.id))
    ).all()
    sent = 0
    for incident, postmortem in rows:
        if incident.resolved_at is None:
            raise ValueError(f"incident {incident.id} is not resolved: the query selects resolved ones")
        age = now - incident.resolved_at
        stage = max(index for index, (delay, _) in enumerate(POSTMORTEM_STAGES) if age >= delay)
        owner = (
            (postmortem.owner_id if postmortem else None) or incident.first_responder or incident.declared_by
        )
        to_channel = POSTMORTEM_STAGES[stage][1] == "channel" or owner is None
        target = incident.channel_id if to_channel else owner
        if target is None:
            continue
        body = render(
            "nudge_postmortem.mrkdwn.j2",
            to_channel=to_channel,
            owner=owner,
            ref=display_id(incident),
            title=incident.title,
            channel=incident.channel_id,
            age=format_duration(int(age.total_seconds())),
        ).strip()
        text, message = messages.nudge_message(
            body=body,
            fallback=f"The post-mortem for {display_id(incident)} is still unwritten",
            snooze_value=f"postmortem:{incident.id}",
            open_incident_id=incident.id,
        )
        sent += enqueue(
            session,
            key=f"nudge:postmortem:{incident.id}:{stage}",
            channel=target,
            at=now,
            stale_at=now + NUDGE_FRESH,
            priority=Priority.ROUTINE,
            text=text,
            blocks=message,
        )
    return sent


def nudge_overdue_action_items(*, session: Session, settings: Settings, now: datetime) -> int:
    today = now.astimezone(settings.tz).date()
    rows = session.exec(
        select(ActionItem, Incident)
        .join(Incident, col(Incident.id) == col(ActionItem.incident_id))
        .where(
            ActionItem.status == ActionItemStatus.OPEN,
            col(ActionItem.owner_id).is_not(None),
            col(ActionItem.due_date) <= today,
            or_(col(ActionItem.snoozed_until).is_(None), col(ActionItem.snoozed_until) <= now),
        )
        .order_by(col(ActionItem.due_date), col(ActionItem.id))
    ).all()
    sent = 0
    for item, incident in rows:
        if item.due_date is None or item.owner_id is None:
            raise ValueError(f"action item {item.id}: the query selects items with an owner and a due date")
        weeks = (today - item.due_date).days // 7
        body = render(
            "nudge_action_item.mrkdwn.j2",
            owner=item.owner_id,
            weeks=weeks,
            due=item.due_date.isoformat(),
            ref=display_id(incident),
            title=incident.title,
            text=item.text,
        ).strip()
        text, message = messages.nudge_message(
            body=body,
            fallback=f"Action item from {display_id(incident)} is due",
            snooze_value=f"action_item:{item.id}",
        )
        sent += enqueue(
            session,
            key=f"nudge:action_item:{item.id}:{weeks}",
            channel=item.owner_id,
            at=now,
            stale_at=now + NUDGE_FRESH,
            priority=Priority.ROUTINE,
            text=text,
            blocks=message,
        )
    return sent


def snooze(*, session: Session, target: str, user_id: str, at: datetime) -> datetime:
    """The snooze button: hold the nudges of one post-mortem or action item for a day."""
    kind, _, raw_id = target.partition(":")
    if not raw_id.isdigit():
        raise UserError("That reminder can no longer be snoozed.")
    until = at + SNOOZE
    if kind == "postmortem":
        incident = get_incident(session=session, incident_id=int(raw_id))
        postmortem = start_postmortem(session=session, incident=incident, owner_id=user_id, at=at)
        postmortem.snoozed_until = until
    elif kind == "action_item":
        item = session.get(ActionItem, int(raw_id))
        if item is None:
            raise UserError("That action item no longer exists.")
        item.snoozed_until = until
    else:
        raise UserError("That reminder can no longer be snoozed.")
    session.flush()
    return until
