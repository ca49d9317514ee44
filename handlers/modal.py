"""Opening and re-rendering the post-mortem modal, shared by the command, the prompt button and the
modal's own buttons."""

from __future__ import annotations

from datetime import datetime

from slack_sdk import WebClient
from sqlmodel import Session

from bot import blocks
from bot.app import Runtime
from bot.clock import utcnow
from bot.db import read_scope, session_scope
from bot.incidents import get_incident
from bot.notices import enqueue_publication
from bot.postmortems import (
    PostmortemDraft,
    SaveResult,
    draft_of,
    postmortem_for,
    save_postmortem,
    saved_due_dates,
    start_postmortem,
    validate,
)
from handlers.participants import require_participant


def check_editor(
    *, runtime: Runtime, client: WebClient, user_id: str, incident_id: int, what: str = "edit its post-mortem"
) -> None:
    """Refuse (a UserError the person sees) anyone who is neither in the incident's channel nor an admin,
    before anything is stored."""
    with read_scope(runtime.engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
        channel_id = incident.channel_id
    require_participant(runtime=runtime, client=client, user_id=user_id, channel_id=channel_id, what=what)


def open_postmortem_modal(
    *, runtime: Runtime, client: WebClient, trigger_id: str, incident_id: int, user_id: str
) -> None:
    """Open the modal for an incident, pre-filled with its draft. Slack's trigger_id expires 3 s after it
    was issued, so this runs first, before anything slow (the member lookup is usually cached). Only the
    first opening writes (the empty draft); every later one is a read that does not queue behind writers."""
    check_editor(runtime=runtime, client=client, user_id=user_id, incident_id=incident_id)
    with read_scope(runtime.engine) as session:
        content = _modal_content(session, incident_id=incident_id, user_id=user_id, create=False)
    if content is None:
        with session_scope(runtime.engine) as session:
            content = _modal_content(session, incident_id=incident_id, user_id=user_id, create=True)
    assert content is not None
    client.views_open(trigger_id=trigger_id, view=blocks.postmortem_modal(content))


def _modal_content(
    session: Session, *, incident_id: int, user_id: str, create: bool
) -> blocks.ModalContent | None:
    """The modal for the incident's draft; None when there is no draft yet and `create` is False."""
    incident = get_incident(session=session, incident_id=incident_id)
    if create:
        postmortem = start_postmortem(session=session, incident=incident, owner_id=user_id, at=utcnow())
    else:
        postmortem = postmortem_for(session=session, incident=incident)
        if postmortem is None:
            return None
    return blocks.ModalContent(
        incident_id=incident_id,
        incident_title=incident.title,
        draft=draft_of(session=session, incident=incident, postmortem=postmortem),
        channel_is_private=incident.channel_is_private,
        status_note=f"Revision {postmortem.revision} · {postmortem.status}" if postmortem.revision else None,
    )


def rerender(
    *,
    runtime: Runtime,
    client: WebClient,
    view: dict,
    draft: PostmortemDraft,
    extra_rows: int,
    status_note: str | None,
) -> None:
    """Show the modal again with what was typed (Slack keeps typed values whose block_id is unchanged)."""
    incident_id = blocks.modal_metadata(view)["incident_id"]
    with read_scope(runtime.engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
    content = blocks.ModalContent(
        incident_id=incident_id,
        incident_title=incident.title,
        draft=draft,
        channel_is_private=incident.channel_is_private,
        extra_rows=extra_rows,
        status_note=status_note,
    )
    client.views_update(view_id=view["id"], hash=view.get("hash"), view=blocks.postmortem_modal(content))


def validate_modal(
    *, runtime: Runtime, incident_id: int, draft: PostmortemDraft, publishing: bool, now: datetime
) -> dict[str, str]:
    """The service's field errors for what was typed, judged on the team's day (TIMEZONE) and against the
    due dates already saved (an item that has become overdue is not an error)."""
    with read_scope(runtime.engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
        saved = saved_due_dates(
            session=session, postmortem=postmortem_for(session=session, incident=incident)
        )
    today = now.astimezone(runtime.settings.tz).date()
    return validate(draft, publishing=publishing, today=today, saved_due_dates=saved)


def save_from_modal(
    *, runtime: Runtime, incident_id: int, draft: PostmortemDraft, user_id: str, publish: bool, now: datetime
) -> SaveResult:
    """Save what was typed as a new revision; publishing also enqueues the summary, the confirmation and
    the document, in the same transaction (callers validate first, to answer with inline errors)."""
    with session_scope(runtime.engine) as session:
        incident = get_incident(session=session, incident_id=incident_id)
        result = save_postmortem(
            session=session,
            incident=incident,
            draft=draft,
            author_id=user_id,
            publish=publish,
            at=now,
            tz=runtime.settings.tz,
        )
        if publish:
            enqueue_publication(
                session=session, incident=incident, result=result, settings=runtime.settings, at=now
            )
    return result
