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

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot.core.errors import UserError
from bot.core.models import ActionItem, Incident, Postmortem, PostmortemRevision, PostmortemStatus
from bot.core.rows import id_of
from bot.domain.action_items import ActionItemInput, action_items_of, replace_action_items
from bot.domain.incidents import refresh_durations

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")
TEXT_FIELDS = ("summary", "impact", "root_cause", "resolution")
REQUIRED_TO_PUBLISH = {"summary": "Summary", "root_cause": "Root cause", "resolution": "Resolution"}
MAX_TEXT = 3000
FIELD_LABELS = {
    "summary": "the summary",
    "impact": "the impact",
    "root_cause": "the root cause",
    "resolution": "the resolution",
    "severity": "the severity",
    "services": "the services",
    "resolution_minutes": "the resolution time",
    "share_publicly": "the visibility",
    "action_items": "the action items",
}


class PostmortemError(UserError):
    """A user-facing problem with a post-mortem request."""


class StaleRevision(PostmortemError):
    """The editor was opened on an older revision than the saved one: saving would overwrite changes the
    person never saw. Nothing is saved; `errors` says who changed what, keyed by field name."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


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
    # The revision the editor was opened on (None: unknown, e.g. a form opened before forms carried it).
    # A save over a newer revision is refused (`save_postmortem`), so no one overwrites unseen changes.
    base_revision: int | None = None

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
    """The incident's post-mortem, created as an empty draft owned by the first person to open it (of two
    at once, the second insert's unique violation rolls back its savepoint and reads the first's draft)."""
    postmortem = postmortem_for(session=session, incident=incident)
    if postmortem is None:
        postmortem = Postmortem(incident_id=id_of(incident), owner_id=owner_id, created_at=at, updated_at=at)
        try:
            with session.begin_nested():
                session.add(postmortem)
        except IntegrityError:
            postmortem = postmortem_for(session=session, incident=incident)
            assert postmortem is not None
    return postmortem


def postmortem_for(*, session: Session, incident: Incident) -> Postmortem | None:
    return session.exec(select(Postmortem).where(Postmortem.incident_id == incident.id)).first()


def draft_of(*, session: Session, incident: Incident, postmortem: Postmortem) -> PostmortemDraft:
    """What the modal shows: the saved content, with the resolution time derived when none was saved."""
    minutes = postmortem.resolution_minutes
    if minutes is None and incident.seconds_to_resolve is not None:
        minutes = round(incident.seconds_to_resolve / 60)
    return PostmortemDraft(
        base_revision=postmortem.revision,
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
    # The submission had been applied already (delivered twice): nothing new was saved or is owed.
    duplicate: bool = False


def save_postmortem(
    *,
    session: Session,
    incident: Incident,
    draft: PostmortemDraft,
    author_id: str,
    publish: bool,
    at: datetime,
    tz: ZoneInfo,
    submission_key: str | None = None,
) -> SaveResult:
    """Save the draft as a new revision; with `publish`, also mark it published (first time: the instant).

    A submission whose `submission_key` was saved before (the same form and values, delivered twice) is
    applied once: the revision it made is returned with `duplicate`. Raises StaleRevision when the draft
    was opened on an older revision, and PostmortemError when it does not validate (callers validate first
    to show inline errors).
    """
    postmortem = start_postmortem(session=session, incident=incident, owner_id=author_id, at=at)
    # Two replicas saving one post-mortem at once must not both write revision n+1 (PostgreSQL; SQLite's
    # writers are already serialised).
    session.refresh(postmortem, with_for_update=True)
    if submission_key is not None:
        done = session.exec(
            select(PostmortemRevision).where(
                PostmortemRevision.postmortem_id == postmortem.id,
                PostmortemRevision.submission_key == submission_key,
            )
        ).first()
        if done is not None:
            return SaveResult(postmortem=postmortem, revision=done, first_publication=False, duplicate=True)
    stale = _changes_since(session=session, postmortem=postmortem, base=draft.base_revision)
    if stale:
        raise StaleRevision(stale)
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
    replace_action_items(
        session=session,
        postmortem=postmortem,
        items=draft.filled_action_items(),
        keep=draft.hidden_item_ids,
        at=at,
    )

    first_publication = False
    if publish:
        first_publication = postmortem.published_at is None
        reviewed = postmortem.needs_review_since is not None  # published again after its incident reopened
        postmortem.status = PostmortemStatus.PUBLISHED
        postmortem.published_by = author_id
        postmortem.needs_review_since = None
        if first_publication:
            postmortem.published_at = at
        if first_publication or reviewed:
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
        submission_key=submission_key,
    )
    return SaveResult(
        postmortem=postmortem,
        revision=revision,
        first_publication=first_publication,
        item_ids=[id_of(item) for item in action_items_of(session=session, postmortem=postmortem)],
    )


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


def _changes_since(*, session: Session, postmortem: Postmortem, base: int | None) -> dict[str, str]:
    """Why a save over revision `base` would overwrite unseen changes: who changed which fields since, as
    one error under the form's first field (empty when `base` is the newest or unknown)."""
    if base is None or postmortem.revision <= base:
        return {}
    newer = session.exec(
        select(PostmortemRevision).where(
            PostmortemRevision.postmortem_id == postmortem.id, col(PostmortemRevision.number) > base
        )
    ).all()
    authors = ", ".join(dict.fromkeys(f"<@{r.author_id}>" for r in newer))
    fields = dict.fromkeys(name for r in newer for name in r.changed_fields) or {"nothing": None}
    changed = ", ".join(FIELD_LABELS.get(name, name) for name in fields)
    return {
        "summary": (
            f"Not saved: {authors} changed {changed} after you opened this form (now revision "
            f"{postmortem.revision}). Copy what you typed, close the form and run /postmortem to reload."
        )
    }


def _record_revision(
    *,
    session: Session,
    postmortem: Postmortem,
    before: dict[str, Any],
    author_id: str,
    action: str,
    at: datetime,
    submission_key: str | None = None,
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
        submission_key=submission_key,
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
    for name in (*TEXT_FIELDS, "severity", "services", "resolution_minutes", "share_publicly"):
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
    replace_action_items(session=session, postmortem=postmortem, items=items, at=at)
    revision = _record_revision(
        session=session, postmortem=postmortem, before=before, author_id=author_id, action="restore", at=at
    )
    return revision
