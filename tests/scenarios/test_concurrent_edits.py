"""Two people editing one post-mortem, over HTTP against the sandbox: a form opened on an older revision is
refused with an inline error naming who changed what (nothing of either person's is lost), and one
submission delivered twice is one revision, one set of posts."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.core.models import ActionItem, OutboxMessage, Postmortem, PostmortemRevision
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action, Block
from tests.scenarios.conftest import ALICE, BOB
from tests.scenarios.test_incident_channels import FILLED, query, summaries, triggered_channel
from tests.scenarios.test_pagerduty_webhook import post, signed


@pytest.fixture
def stack(pagerduty_stack: LocalStack) -> LocalStack:
    return pagerduty_stack


def resolved_incident(stack: LocalStack) -> tuple[str, str]:
    """The channel of a resolved incident, with alice and bob in it, and the ts of its post-mortem prompt."""
    channel = triggered_channel(stack, ALICE, BOB)
    assert post(stack, *signed("resolved"))[0] == 202
    prompt = stack.sandbox.wait_for_message(channel, lambda m: "resolved after" in m["text"])
    return channel, prompt["ts"]


def open_modal(stack: LocalStack, user: str, channel: str, prompt_ts: str) -> dict:
    sandbox = stack.sandbox
    assert sandbox.click_button(user, channel, prompt_ts, Action.OPEN_POSTMORTEM).status == 200
    view = sandbox.open_view_for(user)
    assert view is not None, "the prompt's button opened no modal"
    return view


def items(stack: LocalStack) -> list[tuple[int, str, str]]:
    rows = query(stack, select(ActionItem).order_by(ActionItem.position))  # type: ignore[arg-type]
    return [(row.id, row.text, row.status) for row in rows]


def saved(stack: LocalStack) -> tuple[Postmortem, list[PostmortemRevision]]:
    [postmortem] = query(stack, select(Postmortem))
    return postmortem, query(stack, select(PostmortemRevision).order_by(PostmortemRevision.number))  # type: ignore[arg-type]


def test_a_form_opened_before_someone_else_published_is_refused_and_loses_nothing(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    alices = open_modal(stack, ALICE, channel, prompt_ts)  # opened first, on revision 0
    bobs = open_modal(stack, BOB, channel, prompt_ts)

    sandbox.fill_view(bobs["id"], FILLED)
    assert sandbox.submit_view(BOB, bobs["id"]).status == 200
    summary = sandbox.wait_for_message("postmortems", lambda m: m["text"].startswith("Post-mortem published"))
    [(bobs_item, _, _)] = items(stack)
    postmortems = sandbox.channel_id("postmortems")
    sandbox.click_button(BOB, postmortems, summary["ts"], Action.MARK_ACTION_DONE, value=str(bobs_item))
    sandbox.wait_for(lambda: items(stack)[0][2] == "done", message="bob's item was not marked done")

    alice_typed = {**FILLED, Block.ROOT_CAUSE: {Action.INPUT: "Alice's root cause"}}
    sandbox.fill_view(alices["id"], alice_typed)
    assert sandbox.submit_view(ALICE, alices["id"]).status == 200

    # Refused inline, under the first field, naming bob and what he changed; alice's form stays open with
    # everything she typed.
    error = sandbox.view_errors[alices["id"]][Block.SUMMARY]
    assert error.startswith("Not saved: <@U0BOB> changed the summary, the root cause")
    assert "the action items" in error and "/postmortem" in error
    still_open = sandbox.open_view_for(ALICE)
    assert still_open is not None and still_open["id"] == alices["id"]
    typed = still_open["state"]["values"][Block.ROOT_CAUSE][Action.INPUT]["value"]
    assert typed == "Alice's root cause"
    # Bob's work is intact: his root cause, his item (still done, same id), one revision, one summary.
    postmortem, revisions = saved(stack)
    assert postmortem.root_cause == "A test alert with no threshold"
    assert [r.author_id for r in revisions] == [BOB]
    assert items(stack) == [(bobs_item, "Give the test alert a threshold", "done")]
    assert len(summaries(sandbox)) == 1

    # Reloading shows bob's version; alice's change on top of it is saved, and bob's item keeps its status.
    sandbox.close_view(ALICE, alices["id"])
    reloaded = open_modal(stack, ALICE, channel, prompt_ts)
    sandbox.fill_view(reloaded["id"], {Block.ROOT_CAUSE: {Action.INPUT: "Alice's root cause"}})
    assert sandbox.submit_view(ALICE, reloaded["id"]).status == 200
    sandbox.wait_for(lambda: saved(stack)[0].root_cause == "Alice's root cause", message="alice's save lost")
    assert items(stack) == [(bobs_item, "Give the test alert a threshold", "done")]
    assert [r.author_id for r in saved(stack)[1]] == [BOB, ALICE]


def test_saving_a_draft_then_publishing_from_the_same_form_is_not_a_conflict(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    view = open_modal(stack, BOB, channel, prompt_ts)
    sandbox.fill_view(view["id"], FILLED)
    assert sandbox.view_action(BOB, view["id"], Action.SAVE_DRAFT).status == 200
    sandbox.wait_for(lambda: len(saved(stack)[1]) == 1, message="the draft was not saved")
    view = sandbox.open_view_for(BOB)
    assert view is not None
    assert sandbox.submit_view(BOB, view["id"]).status == 200
    assert view["id"] not in sandbox.view_errors
    sandbox.wait_for(lambda: len(saved(stack)[1]) == 2, message="the publish was not saved")
    assert [r.action for r in saved(stack)[1]] == ["save", "publish"]


def test_one_submission_delivered_twice_is_one_revision_and_one_set_of_posts(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel, prompt_ts = resolved_incident(stack)
    view = open_modal(stack, BOB, channel, prompt_ts)
    sandbox.fill_view(view["id"], FILLED)

    delivery = sandbox.submit_view(BOB, view["id"], copies=2)
    assert delivery.status == 200 and delivery.error is None, delivery.body
    assert sandbox.open_view_for(BOB) is None  # the second answer closes the form too: no error shown

    # Both deliveries were answered before submit_view returned: what they saved and queued is final.
    postmortem, revisions = saved(stack)
    assert postmortem.revision == 1 and [r.action for r in revisions] == ["publish"]
    assert len(items(stack)) == 1
    owed = sorted(row.key.split(":")[0] for row in query(stack, select(OutboxMessage)))
    assert owed.count("published") == 1 and owed.count("document") == 1
    sandbox.wait_for(lambda: len(sandbox.files) == 1, message="the document was not uploaded")
    assert len(summaries(sandbox)) == 1
