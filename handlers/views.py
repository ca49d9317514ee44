"""Submissions of the post-mortem modal."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from bot import blocks
from bot.app import runtime_of
from bot.clock import utcnow
from handlers.modal import check_editor, save_from_modal, validate_modal


def handle_postmortem_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Publish. Invalid fields answer `response_action: errors` so the modal stays open with what was
    typed and the message under the offending input."""
    runtime = runtime_of(context)
    incident_id = blocks.modal_metadata(view)["incident_id"]
    check_editor(
        runtime=runtime, client=client, user_id=body["user"]["id"], incident_id=incident_id, what="publish"
    )
    now = utcnow()
    draft = blocks.read_modal(view)
    errors = validate_modal(runtime=runtime, incident_id=incident_id, draft=draft, publishing=True, now=now)
    if errors:
        ack(response_action="errors", errors=blocks.modal_errors(errors))
        return
    save_from_modal(
        runtime=runtime,
        incident_id=incident_id,
        draft=draft,
        user_id=body["user"]["id"],
        publish=True,
        now=now,
    )
    runtime.outbox.wake()
    ack()


def register(app: App) -> None:
    app.view(blocks.Callback.POSTMORTEM_MODAL)(handle_postmortem_submission)
