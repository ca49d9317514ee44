"""Post-mortem flows: open the form, save a draft, publish, restore a revision. Each checks that the
person may edit first (bot/flows/access.py), then saves and posts in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from sqlmodel import Session, select

from bot.core.config import Settings
from bot.core.errors import UserError
from bot.core.models import ActionItem, Incident, Postmortem
from bot.domain.channels import record_channel
from bot.domain.document import PeopleLookup, render_document
from bot.domain.incidents import get_incident, incident_for_channel
from bot.domain.postmortems import (
    PostmortemDraft,
    SaveResult,
    StaleRevision,
    draft_of,
    postmortem_for,
    restore_revision,
    save_postmortem,
    saved_due_dates,
    start_postmortem,
    validate,
)
from bot.flows.access import check_editor, require_editor
from bot.flows.context import Runtime
from bot.slack.channels import current_privacy
from bot.slack.modal_view import ModalContent, postmortem_modal
from bot.slack.notices import enqueue_document, enqueue_incident_card, enqueue_publication, refresh_summary
from bot.trackers.links import owe_close_of_removed, owe_sync


def republish(
    runtime: Runtime,
    session: Session,
    incident: Incident,
    postmortem: Postmortem,
    *,
    reason: str,
    at: datetime,
) -> bool:
    """The rule for every change to a published post-mortem (an item done, a restore): its document is
    rendered again and its summary updated in place. Nothing happens to one not published yet (False)."""
    if postmortem.published_at is None:
        return False
    settings = runtime.settings
    postmortem.document = render_document(
        session=session,
        incident=incident,
        postmortem=postmortem,
        tz=settings.tz,
        people=runtime.people.lookup,
    )
    refresh_summary(
        session=session, incident=incident, postmortem=postmortem, settings=settings, reason=reason, at=at
    )
    return True


def open_form(
    runtime: Runtime, client: WebClient, *, incident_id: int, user_id: str, at: datetime
) -> dict[str, Any]:
    """The modal for an incident, pre-filled with its draft. Slack's trigger_id expires 3 s after it was
    issued, so the caller opens this view before anything slow. Only the first opening writes (the empty
    draft); every later one is a read that does not queue behind writers. The access check and the draft
    share that read (one transaction: B1's profile showed a read per step)."""
    with runtime.read() as session:
        incident = get_incident(session=session, incident_id=incident_id)
        content = _modal_content(session, incident_id=incident_id, user_id=user_id, at=None)
    check_editor(runtime, client, user_id=user_id, incident=incident)
    if content is None:
        with runtime.change() as session:
            content = _modal_content(session, incident_id=incident_id, user_id=user_id, at=at)
    assert content is not None
    return postmortem_modal(content)


def _modal_content(
    session: Session, *, incident_id: int, user_id: str, at: datetime | None
) -> ModalContent | None:
    """The modal for the incident's draft; with `at`, the draft is started if there is none yet."""
    incident = get_incident(session=session, incident_id=incident_id)
    postmortem: Postmortem | None
    if at is not None:
        postmortem = start_postmortem(session=session, incident=incident, owner_id=user_id, at=at)
    else:
        postmortem = postmortem_for(session=session, incident=incident)
    if postmortem is None:
        return None
    return ModalContent(
        incident_id=incident_id,
        incident_title=incident.title,
        draft=draft_of(session=session, incident=incident, postmortem=postmortem),
        channel_is_private=incident.channel_is_private,
        status_note=f"Revision {postmortem.revision} · {postmortem.status}" if postmortem.revision else None,
    )


def form_again(
    runtime: Runtime, *, incident_id: int, draft: PostmortemDraft, extra_rows: int, status_note: str | None
) -> dict[str, Any]:
    """The modal shown again with what was typed (Slack keeps typed values whose block_id is unchanged)."""
    with runtime.read() as session:
        incident = get_incident(session=session, incident_id=incident_id)
    return postmortem_modal(
        ModalContent(
            incident_id=incident_id,
            incident_title=incident.title,
            draft=draft,
            channel_is_private=incident.channel_is_private,
            extra_rows=extra_rows,
            status_note=status_note,
        )
    )


def field_errors(
    runtime: Runtime, *, incident_id: int, draft: PostmortemDraft, publishing: bool, at: datetime
) -> dict[str, str]:
    """The field errors for what was typed, judged on the team's day (TIMEZONE) and against the due dates
    already saved (an item that has become overdue is not an error)."""
    with runtime.read() as session:
        incident = get_incident(session=session, incident_id=incident_id)
        saved = saved_due_dates(
            session=session, postmortem=postmortem_for(session=session, incident=incident)
        )
    today = at.astimezone(runtime.settings.tz).date()
    return validate(draft, publishing=publishing, today=today, saved_due_dates=saved)


def save(
    runtime: Runtime,
    client: WebClient,
    *,
    incident_id: int,
    draft: PostmortemDraft,
    user_id: str,
    publish: bool,
    at: datetime,
    submission_key: str | None = None,
) -> dict[str, str] | SaveResult:
    """Save what was typed as a new revision: the field errors if it does not validate or was opened on an
    older revision (nothing saved), else the result. Publishing also renders the document and posts the
    summary, the confirmation and the document, in the same transaction. A submission delivered twice
    (same `submission_key`) is saved and posted once."""
    require_editor(
        runtime,
        client,
        user_id=user_id,
        incident_id=incident_id,
        what="publish" if publish else "edit its post-mortem",
    )
    errors = field_errors(runtime, incident_id=incident_id, draft=draft, publishing=publish, at=at)
    if errors:
        return errors
    settings = runtime.settings
    # What is shown publicly follows the channel as it is now, not as it was when the incident began.
    privacy = channel_privacy_now(runtime, client, incident_id=incident_id) if publish else None
    try:
        with runtime.change() as session:
            incident = get_incident(session=session, incident_id=incident_id)
            if privacy is not None and incident.channel_id and privacy != incident.channel_is_private:
                record_channel(session, incident.channel_id, at=at, is_private=privacy)
            saved = postmortem_for(session=session, incident=incident)
            reviewing = saved is not None and saved.needs_review_since is not None
            result = save_postmortem(
                session=session,
                incident=incident,
                draft=draft,
                author_id=user_id,
                publish=publish,
                at=at,
                tz=settings.tz,
                submission_key=submission_key,
            )
            if publish and not result.duplicate:
                publish_saved(
                    session, incident, result, settings=settings, people=runtime.people.lookup, at=at
                )
                if reviewing:  # the card no longer asks for the review
                    reason = f"reviewed:{result.revision.number}"
                    enqueue_incident_card(
                        session=session, incident=incident, settings=settings, at=at, reason=reason
                    )
    except StaleRevision as stale:
        return stale.errors
    return result


def channel_privacy_now(runtime: Runtime, client: WebClient, *, incident_id: int) -> bool | None:
    """Whether the incident's channel is private now (conversations.info; one the bot cannot see is);
    None when it has no channel or Slack could not be asked."""
    with runtime.read() as session:
        channel_id = get_incident(session=session, incident_id=incident_id).channel_id
    return current_privacy(client, channel_id) if channel_id else None


def publish_saved(
    session: Session,
    incident: Incident,
    result: SaveResult,
    *,
    settings: Settings,
    people: PeopleLookup,
    at: datetime,
) -> None:
    """What a publish posts, once its revision is saved: the document rendered, then the summary, the
    threaded confirmation and the document in Slack."""
    result.postmortem.document = render_document(
        session=session, incident=incident, postmortem=result.postmortem, tz=settings.tz, people=people
    )
    enqueue_publication(session=session, incident=incident, result=result, settings=settings, at=at)
    owe_items_sync(session, result.postmortem, settings=settings, at=at)


def owe_items_sync(session: Session, postmortem: Postmortem, *, settings: Settings, at: datetime) -> None:
    """Every item of a published post-mortem gets its issue in the tracker, created or brought up to date,
    and the issue of an item deleted from it is closed (by the tracker worker, after this commits)."""
    if settings.action_item_tracker is None:
        return
    items = session.exec(select(ActionItem).where(ActionItem.postmortem_id == postmortem.id))
    owe_sync(session, items, tracker=settings.action_item_tracker, at=at)
    owe_close_of_removed(session, at=at)


def channel_postmortem(session: Session, channel_id: str) -> tuple[Incident, Postmortem]:
    """The channel's incident and its saved post-mortem, or a UserError saying there is none yet."""
    incident = incident_for_channel(session=session, channel_id=channel_id)
    postmortem = postmortem_for(session=session, incident=incident) if incident else None
    if incident is None or postmortem is None or postmortem.revision == 0:
        raise UserError("This channel has no saved post-mortem yet. Run `/postmortem` to start one.")
    return incident, postmortem


def restore(
    runtime: Runtime, client: WebClient, *, channel_id: str, number: int, user_id: str, at: datetime
) -> int:
    """`/postmortem restore <n>`: revision n saved again as a new revision (history is never rewritten);
    a published post-mortem's summary follows, and its new document is posted in the incident's thread.
    Returns the new revision's number."""
    with runtime.read() as session:
        incident, _ = channel_postmortem(session, channel_id)
    require_editor(
        runtime, client, user_id=user_id, incident_id=incident.id or 0, what="restore its post-mortem"
    )
    with runtime.change() as session:
        incident, postmortem = channel_postmortem(session, channel_id)
        revision = restore_revision(
            session=session, incident=incident, postmortem=postmortem, number=number, author_id=user_id, at=at
        )
        if republish(
            runtime,
            session,
            incident,
            postmortem,
            reason=f"r{revision.number}",
            at=at,
        ):
            enqueue_document(
                session=session, incident=incident, postmortem=postmortem, settings=runtime.settings, at=at
            )
        if postmortem.published_at is not None:
            owe_items_sync(session, postmortem, settings=runtime.settings, at=at)
        return revision.number
