"""Changes that come back from the tracker (a webhook, or the poll): an issue done or closed there marks
its item done in Slack, reopened reopens it, deleted unlinks it; the summary, App Home and digest follow.

Each change compares the issue's state with the item's: a change the bot made itself (it closed the
issue because the item was marked done in Slack) finds them equal and does nothing, so there is no
ping-pong. A webhook delivery is archived in the same transaction, so a retried delivery is applied once.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from enum import StrEnum

from sqlmodel import col, select

from bot.core.models import ActionItem, ActionItemStatus, Incident, Postmortem, TrackerSync
from bot.domain.deliveries import RawDelivery, archive_delivery
from bot.domain.postmortems import postmortem_for
from bot.flows.context import Runtime
from bot.flows.postmortems import republish
from bot.trackers.links import link_for_issue


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # this delivery was applied before
    UNCHANGED = "unchanged"  # no item linked to the issue, or it already is in that state


def issue_changed(
    runtime: Runtime,
    *,
    tracker: str,
    issue_id: str,
    done: bool | None,
    at: datetime,
    delivery: RawDelivery | None = None,
) -> Outcome:
    """The issue is now done (True), open (False) or deleted (None)."""
    with runtime.change() as session:
        if delivery is not None and not archive_delivery(
            session,
            source=delivery.source,
            delivery_id=delivery.delivery_id,
            event_type=delivery.event_type,
            body=delivery.body,
            at=at,
            processed=True,
        ):
            return Outcome.DUPLICATE
        link = link_for_issue(session, tracker=tracker, issue_id=issue_id)
        item = session.get(ActionItem, link.action_item_id) if link else None
        incident = session.get(Incident, item.incident_id) if item else None
        postmortem = postmortem_for(session=session, incident=incident) if incident else None
        if link is None or item is None or incident is None or postmortem is None:
            return Outcome.UNCHANGED
        link.updated_at = at
        if done is None:
            link.issue_id = link.issue_key = link.issue_url = None
            link.sync = TrackerSync.UNLINKED
            reason = "unlinked"
        else:
            link.remote_done = done
            if (item.status == ActionItemStatus.DONE) == done:
                session.add(link)
                return Outcome.UNCHANGED
            item.status = ActionItemStatus.DONE if done else ActionItemStatus.OPEN
            item.completed_at = at if done else None
            item.completed_by = tracker if done else None
            item.updated_at = at
            session.add(item)
            reason = "done" if done else "reopened"
        session.add(link)
        session.flush()
        republish(
            runtime,
            session,
            incident,
            postmortem,
            reason=f"tracker:{item.id}:{reason}:{at.isoformat()}",
            at=at,
        )
        return Outcome.APPLIED


def issues_shown(runtime: Runtime, *, item_ids: Collection[int], at: datetime) -> None:
    """Items got their issue, or its state moved, by the tracker worker's hand: their post-mortems'
    summaries (and documents) show it, one update per post-mortem."""
    with runtime.change() as session:
        statement = select(ActionItem.postmortem_id).where(col(ActionItem.id).in_(list(item_ids))).distinct()
        for postmortem_id in sorted(session.exec(statement)):
            postmortem = session.get(Postmortem, postmortem_id)
            incident = session.get(Incident, postmortem.incident_id) if postmortem else None
            if postmortem is not None and incident is not None:
                reason = f"issues:{at.isoformat()}"
                republish(
                    runtime,
                    session,
                    incident,
                    postmortem,
                    reason=reason,
                    at=at,
                )
