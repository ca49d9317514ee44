"""Slack text escaped exactly once and cut only between characters a reader sees; people looked up once."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.errors import SlackApiError

from bot.core.config import Settings
from bot.core.models import TimelineEntry
from bot.core.rendering import escape_mrkdwn, truncate_mrkdwn, unescape_mrkdwn
from bot.domain.document import Person
from bot.slack.messages import summary_message
from bot.slack.notices import timeline_line
from bot.slack.people import KNOWN_SECONDS, UNKNOWN_SECONDS, PeopleDirectory

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
SUFFIX = "…"
CASES = settings(deadline=None, database=None, derandomize=os.environ.get("CI") == "true")


@CASES
@given(text=st.text(alphabet="a&<>é😀 ", max_size=40), limit=st.integers(min_value=1, max_value=60))
def test_escaped_text_is_cut_between_visible_characters(text: str, limit: int) -> None:
    full = escape_mrkdwn(text)
    cut = escape_mrkdwn(text, limit)
    assert len(cut) <= max(limit, len(SUFFIX))
    if cut == full:
        return
    kept = cut.removesuffix(SUFFIX)
    assert full.startswith(kept)
    assert text.startswith(unescape_mrkdwn(kept))  # whole characters: no `&l` or `&am` left behind
    assert len(kept) > limit - len(SUFFIX) - len("&amp;")  # and no more was dropped than one entity


def test_mentions_and_links_are_kept_whole_or_dropped_whole() -> None:
    assert truncate_mrkdwn("ab <@U0ALICE> cd", 9) == "ab …"
    assert truncate_mrkdwn("ab <@U0ALICE> cd", 14) == "ab <@U0ALICE>…"
    assert truncate_mrkdwn("a &lt;&amp;b", 7) == "a &lt;…"
    assert truncate_mrkdwn("a &lt;&amp;b", 6) == "a …"


def entry(kind: str, text: str, author: str | None = None) -> TimelineEntry:
    return TimelineEntry(
        incident_id=1, source_key="k", kind=kind, occurred_at=NOW, author=author, text=text, created_at=NOW
    )


def test_a_pinned_message_is_not_escaped_again_and_pings_nobody() -> None:
    settings_ = Settings(_env_file=None)
    # As Slack sends it: `<b>` typed arrives as `&lt;b&gt;`, a mention and a broadcast as markup.
    pinned = entry(
        "message", "&lt;b&gt;bold&lt;/b&gt; for <@U0BOB> <!channel> <!subteam^S1|@oncall>", "<@U0ALICE>"
    )
    line = timeline_line(pinned, settings_)
    assert line.endswith(": &lt;b&gt;bold&lt;/b&gt; for <@U0BOB> @channel @oncall")
    assert "<@U0ALICE>:" in line and "&amp;" not in line and "<!" not in line
    # PagerDuty's text is plain: escaped once, by us.
    assert timeline_line(entry("annotated", "<b> & <!here>", "Ops <x>"), settings_).endswith(
        " Ops &lt;x&gt;: &lt;b&gt; &amp; &lt;!here&gt;"
    )
    # Cut long: never inside an entity or a mention.
    long = entry("message", "&lt;" * 200 + " <@U0BOB>")
    cut = timeline_line(long, settings_).split(": ", 1)[1]
    assert cut.endswith("&lt;…") and len(cut) <= 300


def test_long_action_items_keep_their_owner_and_point_to_the_document() -> None:
    items = [("<&>" * 1500, f"U0OWNER{n}", date(2027, 1, 1), False) for n in range(20)]
    _, blocks = summary_message(
        title="t",
        incident_ref="#1",
        body="b",
        fallback="f",
        severity=None,
        services=[],
        resolution_time="1 min",
        channel_id=None,
        action_items=items,
        footer="x",
    )
    rows = [b["text"]["text"] for b in blocks if b.get("type") == "section" and "U0OWNER" in str(b)]
    assert len(rows) == 20
    for n, row in enumerate(rows):
        assert len(row) <= 3000
        assert row.endswith(f"… (the whole item is in the document) (<@U0OWNER{n}>, due 2027-01-01)")
        kept = row.split(" ", 1)[1].split("…")[0]
        assert ("<&>" * 1500).startswith(unescape_mrkdwn(kept))  # cut after a whole entity


class FakeClient:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def users_info(self, *, user: str) -> dict[str, Any]:
        self.calls.append(user)
        if user != "U0ALICE":
            raise SlackApiError("user_not_found", {"ok": False, "error": "user_not_found"})
        return {
            "ok": True,
            "user": {
                "id": "U0ALICE",
                "team_id": "T1",
                "name": "alice",
                "real_name": "Alice Smith",
                "profile": {"display_name": "", "real_name": "Alice Smith"},
            },
        }


def test_people_are_asked_once_per_hour_and_unknown_ones_briefly_remembered() -> None:
    client, now = FakeClient(), [0.0]
    people = PeopleDirectory(client, clock=lambda: now[0])  # type: ignore[arg-type]
    assert people.lookup("U0ALICE") == Person("U0ALICE", "Alice Smith", "T1")
    assert people.lookup("U0GONE") is None
    assert people.lookup("U0ALICE") and people.lookup("U0GONE") is None
    assert client.calls == ["U0ALICE", "U0GONE"]
    now[0] = UNKNOWN_SECONDS + 1
    people.lookup("U0ALICE"), people.lookup("U0GONE")
    assert client.calls == ["U0ALICE", "U0GONE", "U0GONE"]
    now[0] = KNOWN_SECONDS + 1
    people.lookup("U0ALICE")
    assert client.calls[-1] == "U0ALICE" and len(client.calls) == 4
