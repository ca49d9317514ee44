"""Buttons: in the post-mortem modal (add an action item, save a draft) and in messages (open the modal,
snooze a reminder, mark an action item done)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.core.clock import utcnow
from bot.core.rendering import format_instant
from bot.flows import action_items, incidents, lookups, postmortems
from bot.flows.context import Runtime
from bot.slack import blocks, modal_view


def handle_add_action_item(ack: Ack, body: dict[str, Any], client: WebClient, runtime: Runtime) -> None:
    """One more action item row, keeping everything typed so far."""
    ack()
    view = body["view"]
    again = postmortems.form_again(
        runtime,
        incident_id=modal_view.modal_metadata(view)["incident_id"],
        draft=modal_view.read_modal(view),
        extra_rows=1,
        status_note=None,
    )
    client.views_update(view_id=view["id"], hash=view.get("hash"), view=again)


def handle_save_draft(ack: Ack, body: dict[str, Any], client: WebClient, runtime: Runtime) -> None:
    """Save without publishing. The modal stays open and says what was saved, or what is wrong."""
    ack()
    view = body["view"]
    incident_id = modal_view.modal_metadata(view)["incident_id"]
    draft = modal_view.read_modal(view)
    now = utcnow()
    result = postmortems.save(
        runtime,
        client,
        incident_id=incident_id,
        draft=draft,
        user_id=body["user"]["id"],
        publish=False,
        at=now,
        submission_key=modal_view.submission_key(view, "save"),
    )
    if isinstance(result, dict):
        note = ":warning: Not saved: " + " ".join(result.values())
    else:
        # The rows now edit the items just saved: a later save or publish from this modal updates them.
        for item, item_id in zip(draft.filled_action_items(), result.item_ids, strict=False):
            item.item_id = item_id
        draft.base_revision = result.revision.number
        saved_at = format_instant(now, runtime.settings.tz, "%H:%M %Z")
        note = f":floppy_disk: Draft saved at {saved_at} (revision {result.revision.number})."
    again = postmortems.form_again(
        runtime, incident_id=incident_id, draft=draft, extra_rows=0, status_note=note
    )
    client.views_update(view_id=view["id"], hash=view.get("hash"), view=again)


def handle_open_postmortem(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, runtime: Runtime
) -> None:
    """The "Write the post-mortem" button on a message; its value is the incident id."""
    view = postmortems.open_form(
        runtime, client, incident_id=int(action["value"]), user_id=body["user"]["id"], at=utcnow()
    )
    client.views_open(trigger_id=body["trigger_id"], view=view)
    ack()


def handle_snooze_nudge(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, runtime: Runtime
) -> None:
    """The snooze button on a reminder: no nudges about that thing for a day."""
    ack()
    user_id = body["user"]["id"]
    until = action_items.snooze_reminder(runtime, target=action["value"], user_id=user_id, at=utcnow())
    channel = (body.get("channel") or {}).get("id")
    if channel:
        shown = format_instant(until, runtime.settings.tz, "%a %d %b %H:%M %Z")
        client.chat_postEphemeral(channel=channel, user=user_id, text=f":zzz: Snoozed until {shown}.")


def handle_mark_action_done(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, runtime: Runtime
) -> None:
    """ "Mark done" on the #postmortems summary or in App Home: the owner, an incident participant or an
    admin closes the item, and the summary is updated in place."""
    ack()
    user_id = body["user"]["id"]
    action_items.mark_done(runtime, client, item_id=int(action["value"]), user_id=user_id, at=utcnow())
    if (body.get("view") or {}).get("type") == "home":
        # Clicked in the App Home tab: show the list without the item.
        client.views_publish(user_id=user_id, view=lookups.home_view(runtime, user_id, utcnow()))


def handle_open_channel(ack: Ack, body: dict[str, Any], action: dict[str, Any], runtime: Runtime) -> None:
    """ "Open a channel" on an incident listed in TRIAGE_CHANNEL."""
    ack()
    incidents.open_channel_on_request(
        runtime, incident_id=int(action["value"]), user_id=body["user"]["id"], at=utcnow()
    )


def register(app: App) -> None:
    app.action(blocks.Action.ADD_ACTION_ITEM)(handle_add_action_item)
    app.action(blocks.Action.SAVE_DRAFT)(handle_save_draft)
    app.action(blocks.Action.OPEN_POSTMORTEM)(handle_open_postmortem)
    app.action(blocks.Action.SNOOZE_NUDGE)(handle_snooze_nudge)
    app.action(blocks.Action.MARK_ACTION_DONE)(handle_mark_action_done)
    app.action(blocks.Action.OPEN_CHANNEL)(handle_open_channel)
