"""Content at and over Slack's limits, Unicode and injection, over HTTP: the sandbox refuses every call
Slack would refuse (section text over 3,000, more than 50 blocks...), so "no failed call" proves the bot
cut or paged the content instead of getting a Slack error."""

from __future__ import annotations

import json
from datetime import date
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.core.clock import utcnow
from bot.core.db import make_engine
from bot.core.models import Incident
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import LocalStack
from bot.domain.action_items import ActionItemInput
from bot.domain.postmortems import PostmortemDraft, save_postmortem
from bot.flows.postmortems import publish_saved
from bot.slack.blocks import Action, Block
from tests.markdown import plain_text, raw_html
from tests.scenarios.conftest import ALICE, BOB, declare
from tests.scenarios.test_postmortem_loop import open_modal, summaries

INJECTION = "<!channel> <script>alert(1)</script> *bold* &amp; <@U0CAROL> 😀 漢字 é\u200b "


def exactly(length: int, seed: str = INJECTION) -> str:
    return (seed * (length // len(seed) + 1))[:length]


def failed_calls(sandbox: SlackSandbox) -> list[dict]:
    return [c for c in sandbox.calls if not c["ok"]]


def mrkdwn_of(message: dict) -> list[str]:
    """The message's fallback text and every mrkdwn text in its blocks: what Slack parses for mentions."""
    found = [message.get("text", "")]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message.get("blocks"))
    return found


def the_document(sandbox: SlackSandbox) -> str:
    [document] = sandbox.wait_for(
        lambda: [f for f in sandbox.files.values() if f["name"].endswith(".md") and f["content"]]
    )
    return document["content"].decode()


def test_fields_at_their_maximum_with_unicode_and_injection_round_trip(sandbox: SlackSandbox) -> None:
    channel = declare(sandbox, title=exactly(300))
    view_id = open_modal(sandbox, channel)
    for _ in range(4):
        sandbox.view_action(BOB, view_id, Action.ADD_ACTION_ITEM, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(lambda: "action_text_4" in {b.get("block_id") for b in sandbox.views[view_id]["blocks"]})
    texts = {name: exactly(3000, f"{name}: {INJECTION}") for name in ("summary", "impact", "root_cause")}
    values = {
        Block.SUMMARY: {Action.INPUT: texts["summary"]},
        Block.IMPACT: {Action.INPUT: texts["impact"]},
        Block.ROOT_CAUSE: {Action.INPUT: texts["root_cause"]},
        Block.RESOLUTION: {Action.INPUT: exactly(3000)},
        Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV1"},
        Block.SERVICES: {Action.INPUT: "checkout, 😀-api, <!here>"},
    }
    for row in range(5):
        values[f"action_text_{row}"] = {Action.INPUT: exactly(3000, f"item {row} {INJECTION}")}
        values[f"action_owner_{row}"] = {Action.OWNER_SELECT: ALICE}
    sandbox.fill_view(view_id, values)
    sandbox.view_action(BOB, view_id, Action.SAVE_DRAFT, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(lambda: "Draft saved" in json.dumps(sandbox.views[view_id]["blocks"]))
    submitted = sandbox.submit_view(BOB, view_id)
    assert submitted.status == 200 and submitted.error is None, submitted.body

    [summary] = sandbox.wait_for(lambda: summaries(sandbox))
    sandbox.wait_for_message(channel, lambda m: "Post-mortem published" in m.get("text", ""))
    markdown = the_document(sandbox)
    assert failed_calls(sandbox) == []
    rendered = "\n".join(mrkdwn_of(summary))  # plain_text (the header) is never parsed for mentions
    assert "<!channel>" not in rendered and "<!here>" not in rendered and "<script>" not in rendered
    assert "<@U0CAROL>" not in rendered  # typed text mentions nobody
    assert "&lt;!channel&gt; &lt;script&gt;" in rendered and "&amp;amp;" in rendered and "😀 漢字" in rendered
    assert "Cut short here; the full document is in the thread" in rendered
    # The document keeps every character as typed (nothing cut, nothing escaped twice) and none of it
    # becomes markup: read by a CommonMark parser, the text is what was typed.
    assert raw_html(markdown) == []
    read = plain_text(markdown)
    for text in texts.values():
        assert text.strip() in read  # saved without surrounding blanks
    assert exactly(3000, f"item 4 {INJECTION}").strip() in read


def test_sixty_action_items_and_a_3000_character_root_cause_publish_without_a_slack_error(
    stack: LocalStack,
) -> None:
    sandbox = stack.sandbox
    declare(sandbox)
    root_cause = exactly(3000, "pool exhausted <!channel> 😀 ")
    draft = PostmortemDraft(
        summary=exactly(3000, "summary "),
        impact=exactly(3000, "impact "),
        root_cause=root_cause,
        resolution=exactly(3000, "resolution "),
        severity="SEV2",
        services_text="checkout",
        action_items=[
            ActionItemInput(f"Action item number {n}: {exactly(200)}", ALICE, date(2027, 1, 1))
            for n in range(60)
        ],
    )
    engine = make_engine(stack.database_url)
    with Session(engine, expire_on_commit=False) as session:
        incident = session.exec(select(Incident)).one()
        now = utcnow()
        result = save_postmortem(
            session=session,
            incident=incident,
            draft=draft,
            author_id=BOB,
            publish=True,
            at=now,
            tz=ZoneInfo("UTC"),
        )
        publish_saved(
            session,
            incident,
            result,
            settings=stack.server.settings,
            people=stack.server.runtime.people.lookup,
            at=now,
        )
        session.commit()
    engine.dispose()
    stack.server.runtime.outbox.wake()

    [summary] = sandbox.wait_for(lambda: summaries(sandbox))
    markdown = the_document(sandbox)
    assert failed_calls(sandbox) == []
    assert len(summary["blocks"]) <= 50
    rendered = json.dumps(summary["blocks"], ensure_ascii=False)
    assert "…and 18 more action items in the document." in rendered
    assert "Cut short here; the full document is in the thread" in rendered
    assert root_cause.strip() in plain_text(markdown) and "Action item number 59" in markdown
