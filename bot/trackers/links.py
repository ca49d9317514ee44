"""The enqueue side of tracker work: an action item's link to its issue, owed a sync in the caller's
transaction (so the work exists exactly when the change that caused it does), and what the issue says.

A link row is itself the durable work: `version` is bumped by each change, and the tracker worker
(bot/runtime/tracker_worker.py) makes the issue match the item as it is then, so a burst of edits is one
call, and a change made while the tracker is down is applied once it is back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from bot.core.db import insert_ignoring_duplicates
from bot.core.models import ActionItem, Incident, Postmortem, TrackerLink, TrackerSync
from bot.domain.incidents import display_id
from bot.trackers.base import IssueContent

# /healthz says "degraded" once a link has failed this many times in a row (about 4 minutes of back-off);
# it is still retried, so the tracker's return heals it.
FAILING_ATTEMPTS = 8


def owe_sync(session: Session, items: Iterable[ActionItem], *, tracker: str | None, at: datetime) -> None:
    """The items' issues must be created or brought up to date. Nothing without a tracker; nothing for an
    item whose issue was deleted in the tracker (unlinked stays unlinked)."""
    if tracker is None:
        return
    for item in items:
        assert item.id is not None
        created = insert_ignoring_duplicates(
            session,
            TrackerLink,
            {
                "action_item_id": item.id,
                "tracker": tracker,
                # The idempotency key the issue carries: random, so two installations never share one.
                "ref": f"pmbot-{uuid.uuid4().hex[:16]}",
                "remote_done": False,
                "sync": TrackerSync.PENDING,
                "version": 1,
                "synced_version": 0,
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
                "updated_at": at,
            },
        )
        if not created:
            session.execute(
                update(TrackerLink)
                .where(
                    col(TrackerLink.action_item_id) == item.id, col(TrackerLink.sync) != TrackerSync.UNLINKED
                )
                .values(
                    version=TrackerLink.version + 1,
                    sync=TrackerSync.PENDING,
                    attempts=0,
                    next_attempt_at=at,
                    last_error=None,
                    updated_at=at,
                )
            )


def owe_close_of_removed(session: Session, *, at: datetime) -> None:
    """Items deleted from their post-mortem (a cleared row) leave their issue open: it is owed a close.
    Links are few (one per item ever published), so looking for the orphaned ones is cheap."""
    item_gone = ~select(ActionItem.id).where(col(ActionItem.id) == col(TrackerLink.action_item_id)).exists()
    session.execute(
        update(TrackerLink)
        .where(
            col(TrackerLink.sync) == TrackerSync.SYNCED, col(TrackerLink.remote_done).is_(False), item_gone
        )
        .values(version=TrackerLink.version + 1, sync=TrackerSync.PENDING, next_attempt_at=at, updated_at=at)
    )


def link_for_issue(session: Session, *, tracker: str, issue_id: str) -> TrackerLink | None:
    statement = select(TrackerLink).where(TrackerLink.tracker == tracker, TrackerLink.issue_id == issue_id)
    return session.exec(statement).first()


def issue_content(
    session: Session, item: ActionItem, *, ref: str, document_url: str | None, owner_email: str | None
) -> IssueContent:
    """What the item's issue says: the item, its incident, severity, services, root cause, due date, and
    the way back to Slack (the incident channel and the published summary with its document)."""
    incident = session.get(Incident, item.incident_id)
    postmortem = session.get(Postmortem, item.postmortem_id)
    assert incident is not None and postmortem is not None
    lines = [
        item.text,
        f"From the post-mortem of incident {display_id(incident)}: {incident.title}",
        f"Severity: {postmortem.severity or 'not set'}",
        f"Services: {', '.join(postmortem.services) or incident.service_name or 'not set'}",
        f"Root cause: {postmortem.root_cause or 'not written yet'}",
        f"Owner in Slack: {item.owner_id or 'nobody'}",
        f"Due: {item.due_date.isoformat() if item.due_date else 'no date'}",
    ]
    if incident.channel_id:
        lines.append(f"Incident channel: https://slack.com/archives/{incident.channel_id}")
    if document_url:
        lines.append(f"Post-mortem and its document: {document_url}")
    description = "\n".join(lines)
    return IssueContent(ref, item.text, description, item.due_date, owner_email)


def tracker_backlog(session: Session) -> dict[str, int]:
    """For /healthz and /metrics: links waiting for the tracker, of which `failing` have failed
    FAILING_ATTEMPTS times in a row (the tracker has been unreachable for a while), and parked ones."""
    counts = dict(session.exec(select(TrackerLink.sync, func.count()).group_by(col(TrackerLink.sync))).all())
    failing = session.exec(
        select(func.count()).where(
            TrackerLink.sync == TrackerSync.PENDING, col(TrackerLink.attempts) >= FAILING_ATTEMPTS
        )
    ).one()
    return {
        "pending": int(counts.get(TrackerSync.PENDING, 0)),
        "failing": int(failing),
        "parked": int(counts.get(TrackerSync.PARKED, 0)),
    }
