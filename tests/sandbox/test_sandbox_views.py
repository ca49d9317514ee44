"""Modals: trigger_id rules, fill/submit shapes, and what Slack does with the bot's answer."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient

from bot.devtools.sandbox import ManualClock, SlackSandbox

from .conftest import FakeBot, error_of


def postmortem_modal(**overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": "postmortem",
        "private_metadata": '{"incident": 7}',
        "title": {"type": "plain_text", "text": "Post-mortem"},
        "submit": {"type": "plain_text", "text": "Publish"},
        "blocks": [
            {
                "type": "input",
                "block_id": "summary",
                "label": {"type": "plain_text", "text": "Summary"},
                "element": {"type": "plain_text_input", "action_id": "value", "initial_value": "Disk full"},
            },
            {
                "type": "input",
                "block_id": "root_cause",
                "label": {"type": "plain_text", "text": "Root cause"},
                "element": {"type": "plain_text_input", "action_id": "value", "multiline": True},
            },
            {
                "type": "input",
                "block_id": "severity",
                "label": {"type": "plain_text", "text": "Severity"},
                "element": {
                    "type": "static_select",
                    "action_id": "value",
                    "options": [
                        {"text": {"type": "plain_text", "text": s}, "value": s}
                        for s in ("sev1", "sev2", "sev3")
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "owner",
                "optional": True,
                "label": {"type": "plain_text", "text": "Owner"},
                "element": {"type": "users_select", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "due",
                "optional": True,
                "label": {"type": "plain_text", "text": "Due"},
                "element": {"type": "datepicker", "action_id": "value"},
            },
            {
                "type": "input",
                "block_id": "services",
                "optional": True,
                "label": {"type": "plain_text", "text": "Services"},
                "element": {
                    "type": "checkboxes",
                    "action_id": "value",
                    "options": [
                        {"text": {"type": "plain_text", "text": s}, "value": s} for s in ("api", "db")
                    ],
                },
            },
            {
                "type": "actions",
                "block_id": "more",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "add_item",
                        "text": {"type": "plain_text", "text": "Add"},
                        "value": "add",
                    }
                ],
            },
        ],
    }
    view.update(overrides)
    return view


def open_modal(sb: SlackSandbox, client: WebClient, channel: str, user: str = "U0ALICE") -> str:
    trigger = sb.slash_command(user, channel, "/postmortem").trigger_id
    return client.views_open(trigger_id=trigger, view=postmortem_modal())["view"]["id"]


def test_trigger_id_is_single_use_and_expires_after_3_seconds(
    sb: SlackSandbox, client: WebClient, channel: str, clock: ManualClock
) -> None:
    view = postmortem_modal()
    assert error_of(client.views_open, trigger_id="123.456.nope", view=view) == "invalid_trigger_id"

    fresh = sb.slash_command("U0ALICE", channel, "/postmortem").trigger_id
    clock.advance(2.9)
    assert client.views_open(trigger_id=fresh, view=view)["ok"]
    assert error_of(client.views_open, trigger_id=fresh, view=view) == "exchanged_trigger_id"

    stale = sb.slash_command("U0ALICE", channel, "/postmortem").trigger_id
    clock.advance(3.1)
    assert error_of(client.views_open, trigger_id=stale, view=view) == "expired_trigger_id"


def test_open_view_has_slack_shape_and_seeded_state(
    sb: SlackSandbox, client: WebClient, channel: str
) -> None:
    view_id = open_modal(sb, client, channel)
    view = sb.views[view_id]
    assert sb.view_owner(view_id) == "U0ALICE" and sb.open_view_for("U0ALICE")["id"] == view_id
    assert (view["callback_id"], view["private_metadata"], view["root_view_id"]) == (
        "postmortem",
        '{"incident": 7}',
        view_id,
    )
    assert view["state"]["values"]["summary"] == {"value": {"type": "plain_text_input", "value": "Disk full"}}
    assert view["state"]["values"]["services"]["value"] == {"type": "checkboxes", "selected_options": []}


def test_fill_and_submit_send_state_values_in_slacks_shape(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    view_id = open_modal(sb, client, channel)
    sb.fill_view(
        view_id,
        {
            "root_cause": {"value": "A cron job filled /var"},
            "severity": {"value": "sev2"},
            "owner": {"value": "U0BOB"},
            "due": {"value": "2026-12-01"},
            "services": {"value": ["api", "db"]},
        },
    )
    delivery = sb.submit_view("U0ALICE", view_id)
    assert delivery.ok
    payload = fake_bot.received[-1].payload
    assert payload["type"] == "view_submission" and payload["user"]["id"] == "U0ALICE"
    assert payload["view"]["callback_id"] == "postmortem" and payload["trigger_id"]
    values = payload["view"]["state"]["values"]
    assert values["summary"]["value"] == {"type": "plain_text_input", "value": "Disk full"}
    assert values["root_cause"]["value"] == {"type": "plain_text_input", "value": "A cron job filled /var"}
    assert values["severity"]["value"] == {
        "type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": "sev2"}, "value": "sev2"},
    }
    assert values["owner"]["value"] == {"type": "users_select", "selected_user": "U0BOB"}
    assert values["due"]["value"] == {"type": "datepicker", "selected_date": "2026-12-01"}
    assert [o["value"] for o in values["services"]["value"]["selected_options"]] == ["api", "db"]
    # An empty answer closes the modal.
    assert sb.views == {}


def test_fill_rejects_what_a_person_could_not_choose(
    sb: SlackSandbox, client: WebClient, channel: str
) -> None:
    view_id = open_modal(sb, client, channel)
    with pytest.raises(ValueError, match="sev9"):
        sb.fill_view(view_id, {"severity": {"value": "sev9"}})
    with pytest.raises(KeyError, match="nope"):
        sb.fill_view(view_id, {"nope": {"value": "x"}})


def test_required_inputs_are_enforced_client_side(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    view_id = open_modal(sb, client, channel)
    delivery = sb.submit_view("U0ALICE", view_id)
    assert (delivery.status, delivery.error) == (0, "client_validation")
    assert set(sb.view_errors[view_id]) == {"root_cause", "severity"}
    assert all(r.payload.get("type") != "view_submission" for r in fake_bot.received)
    # The bot may still be tested against an incomplete submission on purpose.
    assert sb.submit_view("U0ALICE", view_id, client_validation=False).ok


def test_errors_answer_keeps_the_view_open_with_inline_errors(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    view_id = open_modal(sb, client, channel)
    sb.fill_view(view_id, {"root_cause": {"value": "?"}, "severity": {"value": "sev1"}})
    fake_bot.answer_json({"response_action": "errors", "errors": {"root_cause": "Say what broke."}})
    delivery = sb.submit_view("U0ALICE", view_id)
    assert delivery.ok and delivery.json["response_action"] == "errors"
    assert sb.view_errors == {view_id: {"root_cause": "Say what broke."}}
    assert (
        sb.views[view_id]["state"]["values"]["root_cause"]["value"]["value"] == "?"
    )  # nothing typed is lost

    # Slack refuses errors keyed by anything but an input block.
    fake_bot.answer_json({"response_action": "errors", "errors": {"more": "not an input"}})
    delivery = sb.submit_view("U0ALICE", view_id)
    assert delivery.error and "more" in delivery.error
    assert view_id in sb.views


def test_update_and_push_answers(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    view_id = open_modal(sb, client, channel)
    sb.fill_view(view_id, {"root_cause": {"value": "typed"}, "severity": {"value": "sev1"}})
    fake_bot.answer_json(
        {
            "response_action": "update",
            "view": postmortem_modal(title={"type": "plain_text", "text": "Updated"}),
        }
    )
    assert sb.submit_view("U0ALICE", view_id).ok
    assert sb.views[view_id]["title"]["text"] == "Updated"

    fake_bot.answer_json(
        {"response_action": "push", "view": postmortem_modal(title={"type": "plain_text", "text": "Pushed"})}
    )
    assert sb.submit_view("U0ALICE", view_id).ok
    pushed = sb.open_view_for("U0ALICE")
    assert pushed["title"]["text"] == "Pushed" and pushed["previous_view_id"] == view_id

    fake_bot.answer_json({"response_action": "clear"})
    assert sb.submit_view("U0ALICE", pushed["id"], client_validation=False).ok
    assert sb.views == {}


def test_views_update_keeps_typed_values_for_unchanged_block_ids(
    sb: SlackSandbox, client: WebClient, channel: str
) -> None:
    view_id = open_modal(sb, client, channel)
    sb.fill_view(view_id, {"root_cause": {"value": "typed by alice"}})
    view = postmortem_modal()
    view["blocks"][0]["element"]["initial_value"] = "ignored: block_id unchanged"
    view["blocks"][2]["block_id"] = "severity_v2"
    current_hash = sb.views[view_id]["hash"]
    assert error_of(client.views_update, view_id=view_id, view=view, hash="1.stale") == "hash_conflict"
    client.views_update(view_id=view_id, view=view, hash=current_hash)
    values = sb.views[view_id]["state"]["values"]
    assert values["root_cause"]["value"]["value"] == "typed by alice"
    assert values["summary"]["value"]["value"] == "Disk full"
    assert "severity" not in values and values["severity_v2"]["value"]["selected_option"] is None
    assert error_of(client.views_update, view_id="V9999", view=view) == "not_found"


def test_views_update_by_external_id(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    trigger = sb.slash_command("U0ALICE", channel, "/postmortem").trigger_id
    client.views_open(trigger_id=trigger, view=postmortem_modal(external_id="pm-7"))
    updated = client.views_update(
        external_id="pm-7", view=postmortem_modal(external_id="pm-7", callback_id="x")
    )
    assert updated["view"]["callback_id"] == "x"


def test_view_action_sends_block_actions_with_the_view_and_push_needs_its_trigger(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    view_id = open_modal(sb, client, channel)
    delivery = sb.view_action("U0ALICE", view_id, "add_item")
    payload = fake_bot.received[-1].payload
    assert payload["type"] == "block_actions" and payload["container"] == {"type": "view", "view_id": view_id}
    assert payload["actions"][0]["action_id"] == "add_item" and payload["actions"][0]["value"] == "add"
    assert payload["view"]["id"] == view_id and "state" in payload["view"]
    small = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Item"},
        "blocks": [{"type": "divider"}],
    }
    pushed = client.views_push(trigger_id=delivery.trigger_id, view=small)["view"]
    assert pushed["root_view_id"] == view_id
    assert error_of(client.views_push, trigger_id=delivery.trigger_id, view=small) == "exchanged_trigger_id"


def test_views_publish_app_home(sb: SlackSandbox, client: WebClient, fake_bot: FakeBot) -> None:
    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Hi*"}}]}
    client.views_publish(user_id="U0ALICE", view=home)
    assert sb.app_home("U0ALICE")["blocks"][0]["text"]["text"] == "*Hi*"
    assert error_of(client.views_publish, user_id="U0ALICE", view=postmortem_modal()) == "invalid_arguments"
    sb.open_app_home("U0ALICE")
    event = fake_bot.received[-1].payload["event"]
    assert event["type"] == "app_home_opened" and event["view"]["type"] == "home"


def test_close_view_notifies_when_asked(
    sb: SlackSandbox, client: WebClient, channel: str, fake_bot: FakeBot
) -> None:
    trigger = sb.slash_command("U0ALICE", channel, "/postmortem").trigger_id
    view_id = client.views_open(trigger_id=trigger, view=postmortem_modal(notify_on_close=True))["view"]["id"]
    assert sb.close_view("U0ALICE", view_id).ok
    assert fake_bot.received[-1].payload["type"] == "view_closed" and sb.views == {}
