"""Action items: the rows a post-mortem save makes of the form's; after publication, marking one done, and
who may; listing someone's open items.

No Slack here: who is an incident participant (a member of its channel) is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from bot.core.errors import UserError
from bot.core.models import ActionItem, ActionItemStatus, Incident, Postmortem, TrackerLink
from bot.core.rows import id_of
from bot.domain.access import may_edit
from bot.domain.incidents import display_id

# `completed_by` of an item closed in the tracker (bot/flows/trackers.py) rather than by a person in Slack.
TRACKERS = ("jira", "github")


class ActionItemError(UserError):
    """A user-facing refusal about an action item."""


@dataclass
class ActionItemInput:
    text: str = ""
    owner_id: str | None = None
    due_date: date | None = None
    # The saved item this row edits (None: a new item). Identity comes from the id, not the row's place or
    # wording, so fixing a typo in a done item keeps it done and deleting a row moves nothing.
    item_id: int | None = None


def action_items_of(*, session: Session, postmortem: Postmortem) -> list[ActionItem]:
    statement = (
        select(ActionItem).where(ActionItem.postmortem_id == postmortem.id).order_by(col(ActionItem.position))
    )
    return list(session.exec(statement))


def replace_action_items(
    *,
    session: Session,
    postmortem: Postmortem,
    items: list[ActionItemInput],
    keep: Collection[int] = (),
    at: datetime,
) -> None:
    """Make the post-mortem's items `items`, in that order. A row with the id of a saved item edits that
    item (its status and history stay); a row without one is a new, open item. Saved items that are neither
    in `items` nor in `keep` were deleted by the editor."""
    existing = {row.id: row for row in action_items_of(session=session, postmortem=postmortem)}
    kept = [existing.pop(item_id) for item_id in keep if item_id in existing]
    for position, item in enumerate(items):
        text = item.text.strip()
        row = existing.pop(item.item_id, None) if item.item_id is not None else None
        if row is None:
            session.add(
                ActionItem(
                    postmortem_id=id_of(postmortem),
                    incident_id=postmortem.incident_id,
                    position=position,
                    text=text,
                    owner_id=item.owner_id,
                    due_date=item.due_date,
                    status=ActionItemStatus.OPEN,
                    created_at=at,
                    updated_at=at,
                )
            )
        elif (row.text, row.owner_id, row.due_date, row.position) != (
            text,
            item.owner_id,
            item.due_date,
            position,
        ):
            row.text, row.owner_id, row.due_date, row.position, row.updated_at = (
                text,
                item.owner_id,
                item.due_date,
                position,
                at,
            )
    for position, row in enumerate(kept, start=len(items)):
        row.position = position
    for row in existing.values():
        session.delete(row)
    session.flush()


def complete_action_item(
    *,
    session: Session,
    item: ActionItem,
    user_id: str,
    participants: Collection[str],
    at: datetime,
    admins: Collection[str] = (),
) -> bool:
    """Mark the item done. Returns False when it already was (a second click changes nothing).

    Raises ActionItemError for anyone but the owner, an incident participant or an admin."""
    if not may_edit(user_id=user_id, participants=participants, admins=admins, owner_id=item.owner_id):
        owner = f"its owner <@{item.owner_id}>" if item.owner_id else "its owner"
        raise ActionItemError(
            f"Only {owner}, someone in the incident's channel or a post-mortem admin can mark this "
            "action item done."
        )
    if item.status == ActionItemStatus.DONE:
        return False
    item.status = ActionItemStatus.DONE
    item.completed_at = at
    item.completed_by = user_id
    item.updated_at = at
    session.add(item)
    session.flush()
    return True


@dataclass(frozen=True)
class IssueRef:
    """An item's issue in the team's tracker, as last seen (bot/trackers/)."""

    key: str  # "OPS-12", "#7"
    url: str
    done: bool


def issue_refs(session: Session, item_ids: Iterable[int | None]) -> dict[int, IssueRef]:
    """The linked issues of these items, by item id (items without one are left out)."""
    ids = [item_id for item_id in item_ids if item_id is not None]
    if not ids:
        return {}
    statement = select(TrackerLink).where(
        col(TrackerLink.action_item_id).in_(ids), col(TrackerLink.issue_key).is_not(None)
    )
    return {
        link.action_item_id: IssueRef(link.issue_key or "", link.issue_url or "", link.remote_done)
        for link in session.exec(statement)
    }


@dataclass(frozen=True)
class OpenItem:
    text: str
    due_date: date | None
    incident_ref: str
    incident_title: str
    channel_id: str | None
    id: int | None = None
    issue: IssueRef | None = None


def open_items_for(*, session: Session, owner_id: str) -> list[OpenItem]:
    """`/postmortem actions`: the owner's open items, soonest due first (undated last)."""
    statement = (
        select(ActionItem, Incident)
        .join(Incident, col(Incident.id) == col(ActionItem.incident_id))
        .where(ActionItem.owner_id == owner_id, ActionItem.status == ActionItemStatus.OPEN)
        .order_by(col(ActionItem.due_date).is_(None), col(ActionItem.due_date), col(ActionItem.id))
    )
    rows = list(session.exec(statement))
    issues = issue_refs(session, (item.id for item, _ in rows))
    return [
        OpenItem(
            item.text,
            item.due_date,
            display_id(incident),
            incident.title,
            incident.channel_id,
            item.id,
            issues.get(item.id or 0),
        )
        for item, incident in rows
    ]
