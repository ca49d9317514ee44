"""Every Markdown document the bot writes, read by a CommonMark parser (markdown-it-py, GFM tables): the
outline is the bot's, whatever people typed; no raw HTML; people by name, never as raw Slack markup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.core.models import Incident, TimelineEntry
from bot.core.rendering import markdown_text, slack_markdown
from bot.domain.document import Person, render_document
from bot.loop.export import export_postmortems
from tests.factories import add_action_item, add_incident, postmortem_of
from tests.golden import GOLDEN_DIR
from tests.markdown import SLACK_MARKUP, outline, plain_text, raw_html, tokens

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
PEOPLE = {"U0ALICE": Person("U0ALICE", "Alice Smith", "T0TEAM")}
OUTLINE = ["Summary", "Impact", "Root cause", "Resolution", "Timeline", "Action items"]

# What people type: each line of these would be structure if it reached the document as is.
ADVERSARIAL = [
    "# Not a heading",
    "Root cause\n===",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "<!channel> pool exhausted",
    "<script>alert(1)</script>",
    "<div>\n\n*html block*\n\n</div>",
    "    indented code",
    "```\nfenced\n```",
    "> a quote\n- a list\n1. an ordered list\n+ plus\n***",
    "a [link](javascript:alert(1)) and ![img](x.png) and &amp; &copy; and <@U0ALICE>",
    "two trailing spaces  \nthen a line ending in a backslash\\\nthen more",
]
# A pinned multi-line message as Slack sends it: mrkdwn, `<` `>` `&` escaped by Slack, real mentions.
PINNED = (
    "<@U0ALICE> found it:\n# Heading in a pin\n| x | y |\n|---|---|\n&lt;script&gt;alert(1)&lt;/script&gt;"
    "\n<!channel> see <https://status.example.com|status> in <#C0OPS|ops> &amp; <!subteam^S1|@oncall>"
)


def people(user_id: str) -> Person | None:
    return PEOPLE.get(user_id)


def adversarial_incident(session: Session, typed: str) -> Incident:
    incident = add_incident(
        session, at=NOW - timedelta(days=1), title=f"# {typed}", resolve=600, document=600
    )
    postmortem = postmortem_of(session, incident)
    postmortem.summary = postmortem.impact = postmortem.root_cause = postmortem.resolution = typed
    postmortem.severity, postmortem.services = "SEV1", [typed, "| pay |"]
    add_action_item(session, incident, text=typed, owner="U0ALICE")
    add_action_item(session, incident, text=typed, owner="U0UNKNOWN")
    for number, (kind, author, text) in enumerate(
        [("message", "<@U0ALICE>", PINNED), ("message", "<@U0NOBODY>", typed), ("annotated", typed, typed)]
    ):
        session.add(
            TimelineEntry(
                incident_id=incident.id,  # type: ignore[arg-type]
                source_key=f"test:{incident.id}:{number}",
                kind=kind,
                occurred_at=NOW + timedelta(minutes=number),
                author=author,
                text=text,
                permalink="https://example.slack.com/archives/C1/p1)<x>",
                created_at=NOW,
            )
        )
    session.commit()
    return incident


@pytest.mark.parametrize("typed", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_typed_text_never_makes_structure_and_reads_as_typed(session: Session, typed: str) -> None:
    incident = adversarial_incident(session, typed)
    document = render_document(
        session=session, incident=incident, postmortem=postmortem_of(session, incident), tz=UTC, people=people
    )
    found = tokens(document)
    assert outline(document) == [(1, f"Post-mortem: # {' '.join(typed.split())}"), *((2, h) for h in OUTLINE)]
    assert raw_html(document) == []
    assert [t.type for t in found].count("table_open") == 1  # the bot's own table of timings only
    assert not {"blockquote_open", "code_block", "fence", "hr", "ordered_list_open"} & {t.type for t in found}
    assert [t.type for t in found].count("bullet_list_open") == 2  # the timeline and the action items
    assert [t.type for t in found].count("list_item_open") == 5  # three entries, two items
    read = plain_text(document)
    # Typed fields read exactly as typed, line by line (surrounding blanks aside).
    for line in typed.splitlines():
        assert line.strip() in read
    # People by name, their Slack id in the link; an unknown one by id; no raw Slack markup from pins.
    links = [c.attrs["href"] for t in found for c in t.children or [] if c.type == "link_open"]
    assert "slack://user?team=T0TEAM&id=U0ALICE" in links
    assert "@Alice Smith found it: # Heading in a pin | x | y |" in read
    assert (
        "<script>alert(1)</script> @channel see status (https://status.example.com) in #ops & @oncall" in read
    )
    assert "owner: @U0UNKNOWN" in read and "@U0NOBODY:" in read
    pinned = read[read.index("found it") : read.index("@oncall")]
    assert SLACK_MARKUP.findall(pinned) == []


def test_every_exported_file_and_the_golden_index_keep_their_outline(
    session: Session, tmp_path: Path
) -> None:
    for typed in ADVERSARIAL:
        adversarial_incident(session, typed)
    result = export_postmortems(
        session=session, out=tmp_path, now=NOW, tz=UTC, response_target_minutes=15, people=people
    )
    *documents, index = result.files
    assert len(documents) == len(ADVERSARIAL)
    for path in documents:
        markdown = path.read_text()
        assert raw_html(markdown) == []
        assert [text for level, text in outline(markdown) if level == 2] == OUTLINE
    golden = (GOLDEN_DIR / "export_index.md").read_text().replace("<id>", "7")  # the golden's placeholder
    for markdown in (index.read_text(), golden):
        assert raw_html(markdown) == []
        assert outline(markdown) == [(1, "Post-mortems"), (2, "KPIs"), (2, "Post-mortems")]
    listing = tokens(index.read_text())
    # Two tables only: the KPIs (a header and 12 rows) and the listing (a header and a row per file).
    assert [t.type for t in listing].count("table_open") == 2
    assert [t.type for t in listing].count("tr_open") == 1 + 12 + 1 + len(ADVERSARIAL)


@pytest.mark.parametrize("typed", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_a_pinned_message_or_a_field_alone_is_one_paragraph_of_its_text(typed: str) -> None:
    for markdown in (markdown_text(typed), slack_markdown(typed, lambda u: f"@{u}", inline=True)):
        found = tokens(markdown)
        assert {t.type for t in found} <= {"paragraph_open", "paragraph_close", "inline"}
        assert raw_html(markdown) == []
