"""Post-mortems: drafts, validation, saves as revisions, publishing and restoring revisions.
The Markdown document is bot/domain/document.py's.

No Slack here. Errors are keyed by field name ("summary", "action_items.2.owner"); the Slack layer maps
them to the modal's block ids.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, col, select

from bot.core.errors import UserError
from bot.core.models import (
    ActionItem,
    ActionItemStatus,
    Incident,
    Postmortem,
    PostmortemRevision,
    PostmortemStatus,
    id_of,
)
from bot.domain.incidents import refresh_durations

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
TEXT_FIELDS = ("summary", "impact", "root_cause", "resolution")
REQUIRED_TO_PUBLISH = {"summary": "Summary", "root_cause": "Root cause", "resolution": "Resolution"}
MAX_TEXT = 3000


class PostmortemError(UserError):
    """A user-facing problem with a post-mortem request."""


@dataclass
class ActionItemInput:
    text: str = ""
    owner_id: str | None = None
    due_date: date | None = None
    # The saved item this row edits (None: a new item). Identity comes from the id, not the row's place or
    # wording, so fixing a typo in a done item keeps it done and deleting a row moves nothing.
    item_id: int | None = None


@dataclass
class PostmortemDraft:
    """The editable fields, as a person typed them (numbers still as text, so bad input can be reported)."""

    summary: str = ""
    impact: str = ""
    root_cause: str = ""
    resolution: str = ""
    severity: str | None = None
    services_text: str = ""
    resolution_minutes_text: str = ""
    share_publicly: bool = False
    action_items: list[ActionItemInput] = field(default_factory=list)
    # Saved items the editor did not show (the modal has room for 20 rows): kept as they are on save.
    hidden_item_ids: tuple[int, ...] = ()

    @property
    def services(self) -> list[str]:
        seen: dict[str, None] = {}
        for name in self.services_text.replace("\n", ",").split(","):
            if name.strip():
                seen.setdefault(name.strip(), None)
        return list(seen)

    @property
    def resolution_minutes(self) -> int | None:
        text = self.resolution_minutes_text.strip()
        return int(text) if text.isdigit() else None

    def filled_action_items(self) -> list[ActionItemInput]:
        return [item for item in self.action_items if item.text.strip() or item.owner_id or item.due_date]


def validate(
    draft: PostmortemDraft, *, publishing: bool, today: date, saved_due_dates: Collection[date] = ()
) -> dict[str, str]:
    """Field errors, keyed by field name. A draft may be incomplete; publishing needs the essentials.

    A due date in the past is refused only when it is new: one already saved has simply passed (an overdue
    item), and must not stop anyone from editing the rest of the post-mortem."""
    errors: dict[str, str] = {}
    if publishing:
        for name, label in REQUIRED_TO_PUBLISH.items():
            if not getattr(draft, name).strip():
                errors[name] = f"{label} is needed to publish."
        if draft.severity is None:
            errors["severity"] = "Choose a severity to publish."
    for name in TEXT_FIELDS:
        if len(getattr(draft, name)) > MAX_TEXT:
            errors[name] = f"Keep this under {MAX_TEXT} characters."
    if draft.severity is not None and draft.severity not in SEVERITIES:
        errors["severity"] = "Unknown severity."
    minutes = draft.resolution_minutes_text.strip()
    if minutes and (not minutes.isdigit() or int(minutes) > 525_600):
        errors["resolution_minutes"] = "Enter whole minutes, for example 42."
    for index, item in enumerate(draft.action_items):
        has_text = bool(item.text.strip())
        if (item.owner_id or item.due_date) and not has_text:
            errors[f"action_items.{index}.text"] = "Describe the action item, or clear its owner and date."
        if has_text and publishing and not item.owner_id:
            errors[f"action_items.{index}.owner"] = "Every action item needs an owner."
        if item.due_date and item.due_date < today and has_text and item.due_date not in saved_due_dates:
            errors[f"action_items.{index}.due"] = "The due date is in the past."
    return errors


def saved_due_dates(*, session: Session, postmortem: Postmortem | None) -> set[date]:
    """The due dates already stored for the post-mortem's action items (see `validate`)."""
    if postmortem is None or postmortem.id is None:
        return set()
    statement = select(col(ActionItem.due_date)).where(
        ActionItem.postmortem_id == postmortem.id, col(ActionItem.due_date).is_not(None)
    )
    return {due_date for due_date in session.exec(statement) if due_date is not None}


def start_postmortem(*, session: Session, incident: Incident, owner_id: str, at: datetime) -> Postmortem:
    """The incident's post-mortem, created as an empty draft owned by the first person to open it."""
    postmortem = postmortem_for(session=session, incident=incident)
    if postmortem is None:
        postmortem = Postmortem(incident_id=id_of(incident), owner_id=owner_id, created_at=at, updated_at=at)
        session.add(postmortem)
        session.flush()
    return postmortem


def postmortem_for(*, session: Session, incident: Incident) -> Postmortem | None:
    return session.exec(select(Postmortem).where(Postmortem.incident_id == incident.id)).first()


def action_items_of(*, session: Session, postmortem: Postmortem) -> list[ActionItem]:
    statement = (
        select(ActionItem).where(ActionItem.postmortem_id == postmortem.id).order_by(col(ActionItem.position))
    )
    return list(session.exec(statement))


def draft_of(*, session: Session, incident: Incident, postmortem: Postmortem) -> PostmortemDraft:
    """What the modal shows: the saved content, with the resolution time derived when none was saved."""
    minutes = postmortem.resolution_minutes
    if minutes is None and incident.seconds_to_resolve is not None:
        minutes = round(incident.seconds_to_resolve / 60)
    return PostmortemDraft(
        summary=postmortem.summary,
        impact=postmortem.impact,
        root_cause=postmortem.root_cause,
        resolution=postmortem.resolution,
        severity=postmortem.severity,
        services_text=", ".join(
            postmortem.services or ([incident.service_name] if incident.service_name else [])
        ),
        resolution_minutes_text="" if minutes is None else str(minutes),
        share_publicly=postmortem.share_publicly,
        action_items=[
            ActionItemInput(text=item.text, owner_id=item.owner_id, due_date=item.due_date, item_id=item.id)
            for item in action_items_of(session=session, postmortem=postmortem)
        ],
    )


@dataclass
class SaveResult:
    postmortem: Postmortem
    revision: PostmortemRevision
    first_publication: bool
    # The saved action items' ids in order: the draft's filled rows first, then the items kept unshown.
    item_ids: list[int] = field(default_factory=list)


def save_postmortem(
    *,
    session: Session,
    incident: Incident,
    draft: PostmortemDraft,
    author_id: str,
    publish: bool,
    at: datetime,
    tz: ZoneInfo,
) -> SaveResult:
    """Save the draft as a new revision; with `publish`, also mark it published (first time: the instant).

    Raises PostmortemError when the draft does not validate (callers validate first to show inline errors).
    """
    postmortem = start_postmortem(session=session, incident=incident, owner_id=author_id, at=at)
    # Two replicas saving one post-mortem at once must not both write revision n+1 (PostgreSQL; SQLite's
    # writers are already serialised).
    session.refresh(postmortem, with_for_update=True)
    # "Today" is the team's day (TIMEZONE), as in the handlers' own check: in New York at 21:30 it is
    # already tomorrow in UTC, and an item due today would be refused as past.
    errors = validate(
        draft,
        publishing=publish,
        today=at.astimezone(tz).date(),
        saved_due_dates=saved_due_dates(session=session, postmortem=postmortem),
    )
    if errors:
        raise PostmortemError("The post-mortem has errors: " + "; ".join(errors.values()))
    before = snapshot(session=session, postmortem=postmortem)

    postmortem.summary = draft.summary.strip()
    postmortem.impact = draft.impact.strip()
    postmortem.root_cause = draft.root_cause.strip()
    postmortem.resolution = draft.resolution.strip()
    postmortem.severity = draft.severity
    postmortem.services = draft.services
    postmortem.resolution_minutes = draft.resolution_minutes
    postmortem.share_publicly = draft.share_publicly
    postmortem.updated_at = at
    _replace_action_items(
        session=session,
        postmortem=postmortem,
        items=draft.filled_action_items(),
        keep=draft.hidden_item_ids,
        at=at,
    )

    first_publication = False
    if publish:
        first_publication = postmortem.published_at is None
        postmortem.status = PostmortemStatus.PUBLISHED
        postmortem.published_by = author_id
        if first_publication:
            postmortem.published_at = at
            incident.postmortem_published_at = at
            refresh_durations(incident)
            incident.updated_at = at
    revision = _record_revision(
        session=session,
        postmortem=postmortem,
        before=before,
        author_id=author_id,
        action="publish" if publish else "save",
        at=at,
    )
    return SaveResult(
        postmortem=postmortem,
        revision=revision,
        first_publication=first_publication,
        item_ids=[id_of(item) for item in action_items_of(session=session, postmortem=postmortem)],
    )


def _replace_action_items(
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


def snapshot(*, session: Session, postmortem: Postmortem) -> dict[str, Any]:
    """The whole editable content, JSON-ready: what a revision stores and what `restore` brings back."""
    return {
        "summary": postmortem.summary,
        "impact": postmortem.impact,
        "root_cause": postmortem.root_cause,
        "resolution": postmortem.resolution,
        "severity": postmortem.severity,
        "services": list(postmortem.services or []),
        "resolution_minutes": postmortem.resolution_minutes,
        "share_publicly": postmortem.share_publicly,
        "action_items": [
            {
                "id": i.id,
                "text": i.text,
                "owner_id": i.owner_id,
                "due_date": i.due_date.isoformat() if i.due_date else None,
            }
            for i in action_items_of(session=session, postmortem=postmortem)
        ],
    }


def _record_revision(
    *,
    session: Session,
    postmortem: Postmortem,
    before: dict[str, Any],
    author_id: str,
    action: str,
    at: datetime,
) -> PostmortemRevision:
    after = snapshot(session=session, postmortem=postmortem)
    postmortem.revision += 1
    revision = PostmortemRevision(
        postmortem_id=id_of(postmortem),
        number=postmortem.revision,
        author_id=author_id,
        action=action,
        changed_fields=[name for name in after if after[name] != before.get(name)],
        snapshot=after,
        created_at=at,
    )
    session.add(revision)
    session.flush()
    return revision


def revisions_of(*, session: Session, postmortem: Postmortem) -> list[PostmortemRevision]:
    statement = select(PostmortemRevision).where(PostmortemRevision.postmortem_id == postmortem.id)
    return list(session.exec(statement.order_by(col(PostmortemRevision.number))))


def restore_revision(
    *,
    session: Session,
    incident: Incident,
    postmortem: Postmortem,
    number: int,
    author_id: str,
    at: datetime,
) -> PostmortemRevision:
    """Bring back revision `number` as a new revision (history is never rewritten)."""
    old = session.exec(
        select(PostmortemRevision).where(
            PostmortemRevision.postmortem_id == postmortem.id, PostmortemRevision.number == number
        )
    ).first()
    if old is None:
        raise PostmortemError(f"Revision {number} does not exist.")
    content = old.snapshot
    session.refresh(postmortem, with_for_update=True)  # as in save_postmortem: one revision n+1
    before = snapshot(session=session, postmortem=postmortem)
    for name in (
        "summary",
        "impact",
        "root_cause",
        "resolution",
        "severity",
        "services",
        "resolution_minutes",
        "share_publicly",
    ):
        setattr(postmortem, name, content[name])
    postmortem.updated_at = at
    items = [
        ActionItemInput(
            text=i["text"],
            owner_id=i["owner_id"],
            due_date=date.fromisoformat(i["due_date"]) if i["due_date"] else None,
            item_id=i.get("id"),  # revisions saved before items carried ids have none
        )
        for i in content["action_items"]
    ]
    _replace_action_items(session=session, postmortem=postmortem, items=items, at=at)
    revision = _record_revision(
        session=session, postmortem=postmortem, before=before, author_id=author_id, action="restore", at=at
    )
    return revision
