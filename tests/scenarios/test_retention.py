"""What the bot keeps of what people write, over HTTP: the first response's instant and author, and the
messages people put on the timeline (which follow Slack's edits and deletions); never the conversation.
`postmortem-bot purge` removes the records of Slack events."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, select

from bot.cli import main
from bot.core.clock import utcnow
from bot.core.db import make_engine
from bot.core.models import InboundDelivery, Incident, Postmortem, TimelineEntry
from bot.devtools.stack import LocalStack
from tests.scenarios.conftest import ALICE, BOB, declare
from tests.scenarios.test_incident_channels import query
from tests.scenarios.test_postmortem_loop import FILLED, publish, summaries

SECRET_WORDS = ("the-root-password-is-hunter2", "private aside about a colleague")


def everything_stored(stack: LocalStack) -> str:
    rows = query(stack, select(InboundDelivery)) + query(stack, select(TimelineEntry))
    return " ".join(str(row.model_dump()) for row in rows)


def test_only_the_first_response_and_chosen_timeline_entries_are_kept(stack: LocalStack) -> None:
    sandbox = stack.sandbox
    channel = declare(sandbox)
    sandbox.post_message(ALICE, channel, f"Looking. {SECRET_WORDS[0]}")
    sandbox.post_message(BOB, channel, SECRET_WORDS[1])
    pinned = sandbox.post_message(BOB, channel, "Rolled back the deploy at 14:02")
    assert sandbox.add_reaction(ALICE, channel, pinned, "pushpin") is not None
    sandbox.wait_for(lambda: query(stack, select(TimelineEntry)), message="the pin was not captured")

    [incident] = query(stack, select(Incident))
    assert incident.first_responder == ALICE and incident.first_response_at is not None
    stored = everything_stored(stack)
    assert "Rolled back the deploy at 14:02" in stored  # chosen for the timeline
    for words in SECRET_WORDS:
        assert words not in stored

    # The timeline follows Slack: an edit replaces the text, a deletion removes the entry.
    sandbox.edit_message(BOB, channel, pinned, "Rolled back the deploy at 14:03")
    sandbox.wait_for(
        lambda: [e.text for e in query(stack, select(TimelineEntry))] == ["Rolled back the deploy at 14:03"],
        message="the edit was not followed",
    )
    sandbox.delete_message(BOB, channel, pinned)
    sandbox.wait_for(lambda: not query(stack, select(TimelineEntry)), message="the deletion was not followed")
    assert "14:0" not in everything_stored(stack)


def test_purge_removes_the_records_of_slack_events_older_than_its_days(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox = stack.sandbox
    channel = declare(sandbox)
    sandbox.post_message(ALICE, channel, "Looking")
    sandbox.wait_for(
        lambda: [d for d in query(stack, select(InboundDelivery)) if d.source == "slack"],
        message="the first response's event was not recorded",
    )
    monkeypatch.setenv("DATABASE_URL", stack.database_url)
    assert main(["purge", "--days", "1"]) == 0
    assert "Removed 0 record(s)" in capsys.readouterr().out

    engine = make_engine(stack.database_url)
    try:
        with Session(engine) as session:
            session.execute(update(InboundDelivery).values(received_at=utcnow() - timedelta(days=2)))
            session.commit()
    finally:
        engine.dispose()
    assert main(["purge", "--days", "1"]) == 0
    assert "Removed 1 record(s)" in capsys.readouterr().out
    assert [d for d in query(stack, select(InboundDelivery)) if d.source == "slack"] == []
    assert main(["purge", "--days", "0"]) == 2  # a fresh event must still dedupe Slack's retries


def test_a_published_post_mortem_follows_the_edit_and_deletion_of_a_timeline_message(
    stack: LocalStack,
) -> None:
    """The stored entry follows Slack, and so do the published document and the summary: a deleted
    message leaves neither behind."""
    sandbox = stack.sandbox
    channel = declare(sandbox)
    pinned = sandbox.post_message(BOB, channel, "Rolled back the deploy at 14:02")
    assert sandbox.add_reaction(ALICE, channel, pinned, "pushpin") is not None
    sandbox.wait_for(lambda: query(stack, select(TimelineEntry)), message="the pin was not captured")
    publish(sandbox, channel, BOB, FILLED)
    sandbox.wait_for(lambda: "14:02" in json.dumps(summaries(sandbox)), message="no summary with the pin")

    def document() -> str:
        [postmortem] = query(stack, select(Postmortem))
        return postmortem.document or ""

    sandbox.edit_message(BOB, channel, pinned, "Rolled back the deploy at 14:03")
    sandbox.wait_for(
        lambda: "14:03" in json.dumps(summaries(sandbox)), message="the summary kept the old text"
    )
    assert "14:03" in document() and "14:02" not in document()
    sandbox.delete_message(BOB, channel, pinned)
    sandbox.wait_for(lambda: "14:03" not in document(), message="the document kept a deleted message")
    sandbox.wait_for(lambda: "14:0" not in json.dumps(summaries(sandbox)), message="the summary kept it")
    assert len(summaries(sandbox)) == 1  # updated in place
