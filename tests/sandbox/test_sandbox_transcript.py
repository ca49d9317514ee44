"""The readable transcript, the JSON snapshot and the live-update hook."""

from __future__ import annotations

import json

from slack_sdk import WebClient

from bot.devtools.sandbox import ManualClock, SlackSandbox


def test_transcript_renders_blocks_threads_files_edits_and_reactions(
    sb: SlackSandbox, client: WebClient, clock: ManualClock
) -> None:
    clock._now = 1_790_000_000.0  # 2026-09-21 14:13:20 UTC: fixed so the times are predictable
    channel = sb.create_channel("postmortems")
    client.conversations_join(channel=channel)
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "INC-7: Disk full"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "Root cause: cron in <#" + channel + ">"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "*Severity*\nsev2"},
                {"type": "mrkdwn", "text": "*MTTR* 42 min"},
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "by <@U0ALICE>"}]},
    ]
    ts = client.chat_postMessage(channel=channel, text="INC-7 summary", blocks=blocks)["ts"]
    clock.advance(60)
    sb.post_message("U0BOB", channel, "thanks &amp; well done", thread_ts=ts)
    client.chat_update(channel=channel, ts=ts, text="INC-7 summary", blocks=blocks)
    sb.add_reaction("U0CAROL", channel, ts, "tada")
    client.files_upload_v2(channel=channel, content="# INC-7", filename="inc-7.md", title="INC-7")

    assert sb.transcript("postmortems") == "\n".join(
        [
            "#postmortems",
            "  14:13:20 postmortem-bot: @postmortem-bot has joined the channel",
            "  14:13:20 postmortem-bot (edited): == INC-7: Disk full ==",
            "                                    Root cause: cron in #postmortems",
            "                                    *Severity* sev2 | *MTTR* 42 min",
            "                                    by @alice",
            "                                    :tada: 1",
            "      | 14:14:20 bob: thanks & well done",
            '  14:14:20 postmortem-bot: [file: inc-7.md "INC-7"]',
        ]
    )
    assert "16:13:20" in sb.transcript("postmortems", tz="Europe/Berlin")


def test_snapshot_is_json_and_subscribers_hear_changes(
    sb: SlackSandbox, client: WebClient, channel: str
) -> None:
    events: list[dict] = []
    unsubscribe = sb.subscribe(events.append)
    ts = client.chat_postMessage(channel=channel, text="hello")["ts"]
    sb.add_reaction("U0ALICE", channel, ts, "eyes")
    client.files_upload_v2(channel=channel, content="x", filename="x.txt")
    trigger = sb.slash_command("U0ALICE", channel, "/postmortem").trigger_id
    view = {"type": "modal", "title": {"type": "plain_text", "text": "T"}, "blocks": [{"type": "divider"}]}
    view_id = client.views_open(trigger_id=trigger, view=view)["view"]["id"]
    unsubscribe()
    heard = len(events)
    client.chat_postMessage(channel=channel, text="unheard")
    assert len(events) == heard

    kinds = [e["type"] for e in events]
    for kind in ("message_posted", "reaction_added", "file_shared", "view_opened"):
        assert kind in kinds
    assert {"type": "message_posted", "channel": channel, "ts": ts}.items() <= events[0].items()

    snapshot = json.loads(json.dumps(sb.snapshot()))
    assert snapshot["team"]["bot_user_id"] == "U0BOT"
    assert [m["text"] for m in snapshot["messages"][channel] if m.get("bot_id")][:1] == ["hello"]
    assert snapshot["view_stacks"] == {"U0ALICE": [view_id]}
    assert {c["name"] for c in snapshot["channels"]} >= {"inc-1"}
    assert all("content" not in f for f in snapshot["files"].values())
