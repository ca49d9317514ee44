"""The post-mortem modal: building it from a draft, and reading a submission back into one.

A modal holds at most 100 blocks and 3,000 characters of private_metadata (Slack refuses more).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from bot.core.rendering import escape_mrkdwn
from bot.domain.action_items import ActionItemInput
from bot.domain.postmortems import SEVERITIES, PostmortemDraft
from bot.slack.blocks import (
    DIVIDER,
    MAX_ACTION_ITEM_ROWS,
    MAX_PLAIN_INPUT,
    SEVERITY_LABELS,
    Action,
    Block,
    Callback,
    button,
    header,
    mrkdwn,
    plain,
    row_block_id,
    section,
)


@dataclass
class ModalContent:
    """What the post-mortem modal shows: the saved draft, or what was typed (on re-render)."""

    incident_id: int
    incident_title: str
    draft: PostmortemDraft
    channel_is_private: bool = False
    # One empty row is always offered, so adding the first item needs no click.
    extra_rows: int = 1
    status_note: str | None = None


def _text_input(
    block_id: str, label: str, value: str, *, multiline: bool, optional: bool, placeholder: str
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": Action.INPUT,
        "multiline": multiline,
        "max_length": MAX_PLAIN_INPUT,
        "placeholder": plain(placeholder, 150),
    }
    if value:
        element["initial_value"] = value[:MAX_PLAIN_INPUT]
    return {
        "type": "input",
        "block_id": block_id,
        "label": plain(label),
        "optional": optional,
        "element": element,
    }


def postmortem_modal(content: ModalContent) -> dict[str, Any]:
    """The post-mortem modal. Required fields are enforced by Slack's client and again on the server."""
    draft = content.draft
    blocks: list[dict[str, Any]] = [
        section(f"*{escape_mrkdwn(content.incident_title, 300)}*"),
        _text_input(
            Block.SUMMARY,
            "Summary",
            draft.summary,
            multiline=True,
            optional=False,
            placeholder="What happened, in two or three sentences",
        ),
        _text_input(
            Block.IMPACT,
            "Impact",
            draft.impact,
            multiline=True,
            optional=True,
            placeholder="Who was affected, how, and for how long",
        ),
        _text_input(
            Block.ROOT_CAUSE,
            "Root cause",
            draft.root_cause,
            multiline=True,
            optional=False,
            placeholder="Why it happened",
        ),
        _text_input(
            Block.RESOLUTION,
            "Resolution",
            draft.resolution,
            multiline=True,
            optional=False,
            placeholder="What fixed it",
        ),
        _severity_input(draft.severity),
        _text_input(
            Block.SERVICES,
            "Affected services",
            draft.services_text,
            multiline=False,
            optional=True,
            placeholder="checkout, payments-api",
        ),
        _text_input(
            Block.RESOLUTION_MINUTES,
            "Resolution time (minutes)",
            draft.resolution_minutes_text,
            multiline=False,
            optional=True,
            placeholder="Derived from the incident when known",
        ),
    ]
    if content.channel_is_private:
        blocks.append(_share_publicly_input(draft.share_publicly))
    blocks.append(header("Action items"))
    rows = draft.action_items + [ActionItemInput() for _ in range(content.extra_rows)]
    rows, not_shown = rows[:MAX_ACTION_ITEM_ROWS], rows[MAX_ACTION_ITEM_ROWS:]
    for index, item in enumerate(rows):
        blocks.extend(_action_item_row(index, item))
    buttons = [button("Save draft", Action.SAVE_DRAFT)]
    if len(rows) < MAX_ACTION_ITEM_ROWS:
        buttons.insert(0, button("Add action item", Action.ADD_ACTION_ITEM))
    blocks.append({"type": "actions", "block_id": Block.MODAL_ACTIONS, "elements": buttons})
    if content.status_note:
        blocks.append(
            {"type": "context", "block_id": Block.DRAFT_STATUS, "elements": [mrkdwn(content.status_note)]}
        )
    # Which saved item each row edits, and the saved items there was no room for (kept on save).
    metadata = json.dumps(
        {
            "incident_id": content.incident_id,
            "revision": draft.base_revision,
            "rows": len(rows),
            "item_ids": [item.item_id for item in rows],
            "hidden_item_ids": [item.item_id for item in not_shown if item.item_id is not None]
            + list(draft.hidden_item_ids),
        }
    )
    return {
        "type": "modal",
        "callback_id": Callback.POSTMORTEM_MODAL,
        "title": plain("Post-mortem"),
        "submit": plain("Publish"),
        "close": plain("Cancel"),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def _severity_input(severity: str | None) -> dict[str, Any]:
    options = [{"text": plain(SEVERITY_LABELS[s]), "value": s} for s in SEVERITIES]
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": Action.SEVERITY_SELECT,
        "placeholder": plain("Choose a severity"),
        "options": options,
    }
    if severity in SEVERITY_LABELS:
        element["initial_option"] = options[SEVERITIES.index(severity)]
    return {
        "type": "input",
        "block_id": Block.SEVERITY,
        "label": plain("Severity"),
        "optional": False,
        "element": element,
    }


def _share_publicly_input(checked: bool) -> dict[str, Any]:
    option = {
        "text": plain("Post the summary in the public post-mortems channel"),
        "description": plain("This incident is in a private channel; by default no details leave it."),
        "value": "share",
    }
    element: dict[str, Any] = {"type": "checkboxes", "action_id": Action.SHARE_CHECKBOX, "options": [option]}
    if checked:
        element["initial_options"] = [option]
    return {
        "type": "input",
        "block_id": Block.SHARE_PUBLICLY,
        "label": plain("Visibility"),
        "optional": True,
        "element": element,
    }


def _action_item_row(index: int, item: ActionItemInput) -> list[dict[str, Any]]:
    text_input = _text_input(
        row_block_id(Block.ACTION_TEXT, index),
        f"Action item {index + 1}",
        item.text,
        multiline=False,
        optional=True,
        placeholder="What will be done",
    )
    owner: dict[str, Any] = {
        "type": "users_select",
        "action_id": Action.OWNER_SELECT,
        "placeholder": plain("Owner"),
    }
    if item.owner_id:
        owner["initial_user"] = item.owner_id
    due: dict[str, Any] = {
        "type": "datepicker",
        "action_id": Action.DUE_PICKER,
        "placeholder": plain("Due date (optional)"),
    }
    if item.due_date:
        due["initial_date"] = item.due_date.isoformat()
    return [
        DIVIDER,
        text_input,
        {
            "type": "input",
            "block_id": row_block_id(Block.ACTION_OWNER, index),
            "label": plain("Owner"),
            "optional": True,
            "element": owner,
        },
        {
            "type": "input",
            "block_id": row_block_id(Block.ACTION_DUE, index),
            "label": plain("Due date"),
            "optional": True,
            "element": due,
        },
    ]


def modal_metadata(view: dict[str, Any]) -> dict[str, Any]:
    metadata = json.loads(view.get("private_metadata") or "{}")
    if not isinstance(metadata, dict):
        raise ValueError(f"the view's private_metadata is not a JSON object: {metadata!r}")
    return metadata


def read_modal(view: dict[str, Any]) -> PostmortemDraft:
    """What the person typed, from the view state of a submission or of a block action in the modal."""
    values: dict[str, dict[str, Any]] = view.get("state", {}).get("values", {})

    def element(block_id: str) -> dict[str, Any]:
        return next(iter(values.get(block_id, {}).values()), {})

    def text(block_id: str) -> str:
        return element(block_id).get("value") or ""

    severity = (element(Block.SEVERITY).get("selected_option") or {}).get("value")
    shared = element(Block.SHARE_PUBLICLY).get("selected_options") or []
    metadata = modal_metadata(view)
    rows = metadata.get("rows", 0)
    item_ids = metadata.get("item_ids") or [None] * rows
    items = []
    for row in range(rows):
        due = element(row_block_id(Block.ACTION_DUE, row)).get("selected_date")
        items.append(
            ActionItemInput(
                text=text(row_block_id(Block.ACTION_TEXT, row)),
                owner_id=element(row_block_id(Block.ACTION_OWNER, row)).get("selected_user"),
                due_date=date.fromisoformat(due) if due else None,
                item_id=item_ids[row] if row < len(item_ids) else None,
            )
        )
    return PostmortemDraft(
        summary=text(Block.SUMMARY),
        impact=text(Block.IMPACT),
        root_cause=text(Block.ROOT_CAUSE),
        resolution=text(Block.RESOLUTION),
        severity=severity,
        services_text=text(Block.SERVICES),
        resolution_minutes_text=text(Block.RESOLUTION_MINUTES),
        share_publicly=any(option.get("value") == "share" for option in shared),
        action_items=items,
        hidden_item_ids=tuple(metadata.get("hidden_item_ids") or ()),
        base_revision=metadata.get("revision"),
    )


def submission_key(view: dict[str, Any], action: str) -> str:
    """One submission of the form: its view, what it asks ("save" or "publish") and every value typed. A
    delivery Slack repeats has the same key; any change in the form gives a new one."""
    values = json.dumps(view.get("state", {}).get("values", {}), sort_keys=True)
    return hashlib.sha256(f"{view.get('id')}\n{action}\n{values}".encode()).hexdigest()


_ROW_FIELDS = {"text": Block.ACTION_TEXT, "owner": Block.ACTION_OWNER, "due": Block.ACTION_DUE}


def modal_errors(errors: dict[str, str]) -> dict[str, str]:
    """Map the service's field errors ("root_cause", "action_items.2.owner") to the modal's block ids."""
    mapped: dict[str, str] = {}
    for name, message in errors.items():
        if name.startswith("action_items."):
            _, row, part = name.split(".")
            mapped[row_block_id(_ROW_FIELDS[part], int(row))] = message
        else:
            mapped[Block(name)] = message
    return mapped
