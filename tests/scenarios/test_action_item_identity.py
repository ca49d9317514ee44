"""Action items keep their identity through edits of the post-mortem, over HTTP: the modal carries each
row's item id, so rewording a done item keeps it done and deleting a row moves nobody's status."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.core.models import ActionItem
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action
from tests.scenarios.conftest import ALICE, BOB
from tests.scenarios.test_incident_channels import FILLED, query, summaries, triggered_channel
from tests.scenarios.test_pagerduty_webhook import post, signed


@pytest.fixture
def stack(pagerduty_stack: LocalStack) -> LocalStack:
    return pagerduty_stack


def open_modal(stack: LocalStack, channel: str, prompt_ts: str) -> dict:
    sandbox = stack.sandbox
    assert sandbox.click_button(BOB, channel, prompt_ts, Action.OPEN_POSTMORTEM).status == 200
    view = sandbox.open_view_for(BOB)
    assert view is not None, "the prompt's button opened no modal"
    return view


def items(stack: LocalStack) -> list[tuple[int, str, str]]:
    rows = query(stack, select(ActionItem).order_by(ActionItem.position))  # type: ignore[arg-type]
    return [(row.id, row.text, row.status) for row in rows]


def test_a_reworded_done_item_stays_done_and_deleting_a_row_moves_no_status(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = triggered_channel(stack, ALICE, BOB)
    assert post(stack, *signed("resolved"))[0] == 202
    prompt = sandbox.wait_for_message(channel, lambda m: "resolved after" in m["text"])

    view = open_modal(stack, channel, prompt["ts"])
    sandbox.fill_view(view["id"], FILLED)
    assert sandbox.view_action(BOB, view["id"], Action.ADD_ACTION_ITEM).status == 200
    view = sandbox.open_view_for(BOB)
    sandbox.fill_view(
        view["id"],
        {"action_text_1": {Action.INPUT: "Page on error rate"}, "action_owner_1": {Action.OWNER_SELECT: BOB}},
    )
    # Save draft, then Publish from the same modal: the rows now edit the saved items, not new copies.
    assert sandbox.view_action(BOB, view["id"], Action.SAVE_DRAFT).status == 200
    [(first_id, _, _), (second_id, _, _)] = items(stack)
    assert sandbox.submit_view(BOB, view["id"]).status == 200
    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    assert [row[0] for row in items(stack)] == [first_id, second_id]

    postmortems = sandbox.channel_id("postmortems")
    sandbox.click_button(BOB, postmortems, summary["ts"], Action.MARK_ACTION_DONE, value=str(first_id))
    sandbox.wait_for(lambda: items(stack)[0][2] == "done", message="the first item was not marked done")

    # Reword the done item: it is the same item, still done.
    view = open_modal(stack, channel, prompt["ts"])
    sandbox.fill_view(view["id"], {"action_text_0": {Action.INPUT: "Give the test alert a sane threshold"}})
    assert sandbox.submit_view(BOB, view["id"]).status == 200
    sandbox.wait_for(lambda: items(stack)[0][1] == "Give the test alert a sane threshold")
    assert items(stack) == [
        (first_id, "Give the test alert a sane threshold", "done"),
        (second_id, "Page on error rate", "open"),
    ]

    # Delete the first row: the second item keeps its id and stays open (it does not inherit "done").
    view = open_modal(stack, channel, prompt["ts"])
    sandbox.fill_view(
        view["id"], {"action_text_0": {Action.INPUT: ""}, "action_owner_0": {Action.OWNER_SELECT: None}}
    )
    assert sandbox.submit_view(BOB, view["id"]).status == 200
    sandbox.wait_for(lambda: len(items(stack)) == 1, message="the cleared row was not deleted")
    assert items(stack) == [(second_id, "Page on error rate", "open")]
    assert len(summaries(sandbox)) == 1  # the one summary, updated in place
