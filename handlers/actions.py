"""Buttons: in the post-mortem modal (add an action item, save a draft) and in messages (open the modal)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot import blocks
from bot.action_items import complete_action_item
from bot.app import runtime_of
from bot.clock import utcnow
from bot.db import read_scope, session_scope
from bot.errors import UserError
from bot.models import ActionItem, Incident
from bot.notices import refresh_summary
from bot.postmortems import postmortem_for, render_document
from bot.reminders import snooze
from bot.rendering import format_instant
from handlers.home import publish_home
from handlers.modal import check_editor, open_postmortem_modal, rerender, save_from_modal, validate_modal
from handlers.participants import channel_members


def handle_add_action_item(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """One more action item row, keeping everything typed so far."""
    ack()
    view = body["view"]
    draft = blocks.read_modal(view)
    rerender(
        runtime=runtime_of(context), client=client, view=view, draft=draft, extra_rows=1, status_note=None
    )


def handle_save_draft(ack: Ack, body: dict[str, Any], client: WebClient, context: BoltContext) -> None:
    """Save without publishing. The modal stays open and says what was saved, or what is wrong."""
    ack()
    runtime = runtime_of(context)
    view = body["view"]
    incident_id = blocks.modal_metadata(view)["incident_id"]
    check_editor(runtime=runtime, client=client, user_id=body["user"]["id"], incident_id=incident_id)
    draft = blocks.read_modal(view)
    now = utcnow()
    errors = validate_modal(runtime=runtime, incident_id=incident_id, draft=draft, publishing=False, now=now)
    if errors:
        note = ":warning: Not saved: " + " ".join(errors.values())
    else:
        result = save_from_modal(
            runtime=runtime,
            incident_id=incident_id,
            draft=draft,
            user_id=body["user"]["id"],
            publish=False,
            now=now,
        )
        # The rows now edit the items just saved: a later save or publish from this modal updates them.
        for item, item_id in zip(draft.filled_action_items(), result.item_ids, strict=False):
            item.item_id = item_id
        saved_at = format_instant(now, runtime.settings.tz, "%H:%M %Z")
        note = f":floppy_disk: Draft saved at {saved_at} (revision {result.revision.number})."
    rerender(runtime=runtime, client=client, view=view, draft=draft, extra_rows=0, status_note=note)


def handle_open_postmortem(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """The "Write the post-mortem" button on a message; its value is the incident id."""
    open_postmortem_modal(
        runtime=runtime_of(context),
        client=client,
        trigger_id=body["trigger_id"],
        incident_id=int(action["value"]),
        user_id=body["user"]["id"],
    )
    ack()


def handle_snooze_nudge(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """The snooze button on a reminder: no nudges about that thing for a day."""
    ack()
    runtime = runtime_of(context)
    user_id = body["user"]["id"]
    with session_scope(runtime.engine) as session:
        until = snooze(session=session, target=action["value"], user_id=user_id, at=utcnow())
    channel = (body.get("channel") or {}).get("id")
    if channel:
        shown = format_instant(until, runtime.settings.tz, "%a %d %b %H:%M %Z")
        client.chat_postEphemeral(channel=channel, user=user_id, text=f":zzz: Snoozed until {shown}.")


def handle_mark_action_done(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """ "Mark done" on the #postmortems summary: the owner or an incident participant closes the item and
    the summary is updated in place."""
    ack()
    runtime = runtime_of(context)
    user_id = body["user"]["id"]
    item_id = int(action["value"])
    with read_scope(runtime.engine) as session:
        item = session.get(ActionItem, item_id)
        if item is None:
            raise UserError("That action item no longer exists (the post-mortem was edited).")
        incident = session.get(Incident, item.incident_id)
        owner, channel = item.owner_id, incident.channel_id if incident else None
    admins = runtime.settings.postmortem_admins
    participants: frozenset[str] = frozenset()
    if channel and owner != user_id and user_id not in admins:
        participants = runtime.participants.members_seen_by(
            channel, user_id, lambda c: channel_members(client, c)
        )
    now = utcnow()
    with session_scope(runtime.engine) as session:
        item = session.get(ActionItem, item_id)
        incident = session.get(Incident, item.incident_id) if item else None
        postmortem = postmortem_for(session=session, incident=incident) if incident else None
        if item is None or incident is None or postmortem is None:
            raise UserError("That action item no longer exists (the post-mortem was edited).")
        if complete_action_item(
            session=session, item=item, user_id=user_id, participants=participants, admins=admins, at=now
        ):
            postmortem.document = render_document(
                session=session, incident=incident, postmortem=postmortem, tz=runtime.settings.tz
            )
            refresh_summary(
                session=session,
                incident=incident,
                postmortem=postmortem,
                settings=runtime.settings,
                reason=f"action:{item.id}:done",
                at=now,
            )
    runtime.outbox.wake()
    if (body.get("view") or {}).get("type") == "home":
        # Clicked in the App Home tab: show the list without the item.
        publish_home(runtime=runtime, client=client, user_id=user_id)


def register(app: App) -> None:
    app.action(blocks.Action.ADD_ACTION_ITEM)(handle_add_action_item)
    app.action(blocks.Action.SAVE_DRAFT)(handle_save_draft)
    app.action(blocks.Action.OPEN_POSTMORTEM)(handle_open_postmortem)
    app.action(blocks.Action.SNOOZE_NUDGE)(handle_snooze_nudge)
    app.action(blocks.Action.MARK_ACTION_DONE)(handle_mark_action_done)
