"""Action items after publication: marking one done, and who may; listing someone's open items.

No Slack here: who is an incident participant (a member of its channel) is passed in by the caller.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from bot.core.errors import UserError
from bot.core.models import ActionItem, ActionItemStatus, Incident
from bot.domain.access import may_edit
from bot.domain.incidents import display_id


class ActionItemError(UserError):
    """A user-facing refusal about an action item."""


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
class OpenItem:
    text: str
    due_date: date | None
    incident_ref: str
    incident_title: str
    channel_id: str | None
    id: int | None = None


def open_items_for(*, session: Session, owner_id: str) -> list[OpenItem]:
    """`/postmortem actions`: the owner's open items, soonest due first (undated last)."""
    statement = (
        select(ActionItem, Incident)
        .join(Incident, col(Incident.id) == col(ActionItem.incident_id))
        .where(ActionItem.owner_id == owner_id, ActionItem.status == ActionItemStatus.OPEN)
        .order_by(col(ActionItem.due_date).is_(None), col(ActionItem.due_date), col(ActionItem.id))
    )
    return [
        OpenItem(item.text, item.due_date, display_id(incident), incident.title, incident.channel_id, item.id)
        for item, incident in session.exec(statement)
    ]
