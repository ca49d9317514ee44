"""Block Kit: the modal and the summary stay within Slack's limits, read back what was typed, and match
their golden files. Limits are checked with the sandbox's validator, the same one Slack calls meet."""

from __future__ import annotations

import json
from datetime import date

from bot.core.rendering import escape_mrkdwn
from bot.devtools.sandbox.block_checks import validate_message_blocks, validate_view
from bot.domain.action_items import ActionItemInput
from bot.domain.owners import Owner, OwnerKind
from bot.domain.postmortems import PostmortemDraft
from bot.slack import blocks, messages, modal_view
from tests.golden import assert_golden

DRAFT = PostmortemDraft(
    summary="Checkout returned 500s",
    impact="",
    root_cause="Pool of 5 <!channel>",
    resolution="Raised the pool",
    severity="SEV2",
    services_text="checkout",
    resolution_minutes_text="20",
    action_items=[ActionItemInput("Alert on saturation", "U0ALICE", date(2026, 12, 1))],
)


def modal(draft: PostmortemDraft = DRAFT, **extra: object) -> dict:
    content = modal_view.ModalContent(incident_id=7, incident_title="Checkout is down", draft=draft, **extra)
    return modal_view.postmortem_modal(content)


def state_of(view: dict) -> dict:
    """The `state.values` Slack would send for a view whose inputs hold their initial values."""
    values: dict = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        value: dict = {"type": element["type"]}
        if "initial_value" in element:
            value["value"] = element["initial_value"]
        if "initial_option" in element:
            value["selected_option"] = element["initial_option"]
        if "initial_user" in element:
            value["selected_user"] = element["initial_user"]
        if "initial_date" in element:
            value["selected_date"] = element["initial_date"]
        if "initial_options" in element:
            value["selected_options"] = element["initial_options"]
        values[block["block_id"]] = {element["action_id"]: value}
    return {**view, "state": {"values": values}}


def test_modal_matches_golden_and_slacks_limits() -> None:
    view = modal()
    assert validate_view(view) == []
    assert_golden("postmortem_modal.json", view)


def test_modal_reads_back_what_it_shows() -> None:
    read = modal_view.read_modal(state_of(modal()))
    assert read.action_items[0] == DRAFT.action_items[0]
    assert read.action_items[1] == ActionItemInput()  # the spare empty row
    read.action_items = read.filled_action_items()
    assert read == DRAFT


def test_private_incident_offers_public_sharing_unchecked_by_default() -> None:
    view = modal(channel_is_private=True)
    share = next(b for b in view["blocks"] if b.get("block_id") == blocks.Block.SHARE_PUBLICLY)
    assert "initial_options" not in share["element"]
    assert modal_view.read_modal(state_of(view)).share_publicly is False
    checked = modal(PostmortemDraft(share_publicly=True), channel_is_private=True)
    assert modal_view.read_modal(state_of(checked)).share_publicly is True


def test_many_action_items_stay_under_the_modal_block_limit() -> None:
    many = PostmortemDraft(action_items=[ActionItemInput(f"item {i}", "U0BOB") for i in range(60)])
    view = modal(many)
    assert validate_view(view) == []
    assert len(view["blocks"]) <= blocks.MAX_MODAL_BLOCKS
    add_buttons = [
        e
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == blocks.Action.ADD_ACTION_ITEM
    ]
    assert add_buttons == []  # full: no button that would break the limit


def test_errors_map_to_block_ids() -> None:
    mapped = modal_view.modal_errors(
        {"root_cause": "needed", "action_items.2.owner": "owner", "action_items.0.due": "d"}
    )
    assert mapped == {"root_cause": "needed", "action_owner_2": "owner", "action_due_0": "d"}
    view_block_ids = {
        b.get("block_id") for b in modal(PostmortemDraft(action_items=[ActionItemInput()] * 3))["blocks"]
    }
    assert set(mapped) <= view_block_ids


def summary(body: str = "*Summary*\nok", items: int = 1) -> tuple[str, list[dict]]:
    return messages.summary_message(
        title="Checkout is down",
        incident_ref="#42",
        body=body,
        fallback="Post-mortem published",
        severity="SEV2",
        services=["checkout", "<!here>"],
        resolution_time="20 min",
        channel_id="C0INC",
        action_items=[(f"Item {i} <@U0BOSS>", "U0ALICE", date(2026, 12, 1), i == 0) for i in range(items)],
        footer="Published by <@U0BOB>",
        owner=Owner(OwnerKind.TEAM, "Payments <ops>", "https://acme.pagerduty.com/teams/PTEAM01"),
    )


def test_summary_matches_golden_and_escapes_user_text() -> None:
    text, message = summary()
    assert validate_message_blocks(message) == []
    dumped = str(message)
    assert "<!here>" not in dumped and "&lt;!here&gt;" in dumped
    assert "<@U0BOSS>" not in dumped
    owner = "<https://acme.pagerduty.com/teams/PTEAM01|Payments &lt;ops&gt;> (PagerDuty team)"
    assert {"type": "mrkdwn", "text": f"*Owner*\n{owner}"} in message[1]["fields"]
    assert_golden("postmortem_summary_blocks.json", {"text": text, "blocks": message})


def test_summary_with_long_body_and_sixty_items_stays_within_limits() -> None:
    long_body = escape_mrkdwn("x" * 5000)
    _, message = summary(body=long_body, items=60)
    assert validate_message_blocks(message) == []
    assert len(message) <= blocks.MAX_MESSAGE_BLOCKS
    assert "full document is in the thread" in str(message)
    assert "more action items in the document" in str(message)


def test_summary_with_timeline_and_mark_done_buttons_matches_golden() -> None:
    text, message = messages.summary_message(
        title="Checkout is down",
        incident_ref="#37",
        body="*Summary*\nok",
        fallback="Post-mortem published",
        severity="SEV2",
        services=["checkout"],
        resolution_time="2 min",
        channel_id="C0INC",
        action_items=[
            ("Done already", "U0ALICE", None, True),
            ("Still open", "U0BOB", date(2026, 12, 1), False),
        ],
        action_item_ids=[7, 8],
        timeline=[
            "• *2026-11-23 14:00* <@U0ALICE>: Pool exhausted &lt;!here&gt; <https://x.slack.com/p1|link>"
        ],
        footer="Published by <@U0BOB>",
    )
    assert validate_message_blocks(message) == []
    buttons = [b["accessory"] for b in message if "accessory" in b]
    assert [(b["action_id"], b["value"]) for b in buttons] == [(blocks.Action.MARK_ACTION_DONE, "8")]
    assert_golden("postmortem_summary_timeline_blocks.json", {"text": text, "blocks": message})


def test_resolve_prompt_carries_the_incident_id_on_its_button() -> None:
    text, message = messages.resolve_prompt(incident_id=42, incident_ref="#37", minutes=1)
    assert validate_message_blocks(message) == []
    assert "resolved after 1 minute." in text
    [button] = message[1]["elements"]
    assert (button["action_id"], button["value"]) == (blocks.Action.OPEN_POSTMORTEM, "42")


def test_rows_carry_their_item_ids_and_items_beyond_the_last_row_are_kept() -> None:
    saved = [ActionItemInput(f"item {i}", "U0BOB", item_id=100 + i) for i in range(25)]
    view = modal(PostmortemDraft(action_items=saved, hidden_item_ids=(7,)))
    read = modal_view.read_modal(state_of(view))
    assert [item.item_id for item in read.action_items] == [
        100 + i for i in range(blocks.MAX_ACTION_ITEM_ROWS)
    ]
    assert read.hidden_item_ids == (120, 121, 122, 123, 124, 7)
    # A modal opened before rows carried ids reads as new rows, never as someone else's item.
    legacy = state_of(modal(PostmortemDraft(action_items=saved[:2])))
    legacy["private_metadata"] = json.dumps({"incident_id": 1, "rows": 2})
    assert [item.item_id for item in modal_view.read_modal(legacy).action_items] == [None, None]


def test_a_block_type_that_is_not_a_string_is_reported_not_raised() -> None:
    # An unhashable `type` (a list or an object) used to reach a frozenset lookup and raise TypeError.
    assert validate_message_blocks([{"type": ["section"]}]) == [
        "unsupported block type: ['section'] [json-pointer:/blocks/0/type]"
    ]
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": [{"type": {"a": 1}}]}
    assert any("/view/blocks/0/type" in problem for problem in validate_view(view))


def test_a_card_with_more_than_ten_fields_keeps_them_all_in_a_second_section() -> None:
    # Service, owner, four timings, urgency, priority, reopened, assigned, post-mortem: 11 fields, one more
    # than a section may hold.
    fields = [(f"Field {n}", f"value {n}") for n in range(11)]
    _text, card = messages.incident_card(
        title="Checkout is down", incident_ref="#7", status="triggered", fields=fields, link=None
    )
    assert validate_message_blocks(card) == []
    shown = [f["text"] for block in card if block["type"] == "section" for f in block.get("fields", [])]
    assert shown == [f"*Field {n}*\nvalue {n}" for n in range(11)]
    assert [len(block["fields"]) for block in card if "fields" in block] == [10, 1]
