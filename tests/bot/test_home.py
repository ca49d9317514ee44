"""The App Home content on a fixed data set and `now`, and its Block Kit against a golden file."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.core.models import Incident
from bot.loop.home_content import home_content, postmortems_owed_by
from bot.slack import blocks, home_view
from tests.factories import add_action_item, add_incident
from tests.golden import assert_golden

NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
ALICE, BOB = "U0ALICE", "U0BOB"


def data_set(session: Session) -> dict[str, Incident]:
    published = add_incident(
        session,
        at=NOW - timedelta(days=3),
        title="Checkout <!channel> 500s",
        ack=60,
        response=600,
        resolve=1800,
        document=3600,
        channel_id="C0CHECKOUT",
    )
    published.number = 1234
    add_action_item(session, published, text="Alert on pool saturation", owner=ALICE, due=date(2026, 11, 30))
    add_action_item(session, published, text="Write the runbook", owner=ALICE)
    add_action_item(session, published, text="Done already", owner=ALICE, completed_at=NOW)
    add_action_item(session, published, text="Bob's", owner=BOB)
    drafted = add_incident(  # a draft Alice owns
        session, at=NOW - timedelta(days=1), title="Search stale", service="search", resolve=900, owner=ALICE
    )
    unstarted = add_incident(  # resolved, never started: Alice responded first, so it is hers
        session, at=NOW - timedelta(hours=30), title="Payments slow", service="payments", response=120,
        resolve=600, responder=ALICE,
    )  # fmt: skip
    add_incident(session, at=NOW - timedelta(hours=2), title="Not resolved", responder=ALICE, response=30)
    add_incident(session, at=NOW - timedelta(days=2), title="Bob's draft", resolve=60, owner=BOB)
    session.commit()
    return {"published": published, "drafted": drafted, "unstarted": unstarted}


def test_owed_postmortems_are_the_unpublished_ones_the_person_is_nudged_about(session: Session) -> None:
    incidents = data_set(session)
    owed = postmortems_owed_by(session=session, user_id=ALICE)
    assert [(o.incident_id, o.status) for o in owed] == [
        (incidents["unstarted"].id, "not started"),
        (incidents["drafted"].id, "draft"),
    ]
    assert [o.title for o in postmortems_owed_by(session=session, user_id=BOB)] == ["Bob's draft"]


def test_home_view_matches_golden_and_fits_slack(session: Session) -> None:
    data_set(session)
    content = home_content(session=session, user_id=ALICE, now=NOW, tz=BERLIN, response_target_minutes=15)
    assert [item.text for item in content.action_items] == ["Alert on pool saturation", "Write the runbook"]
    assert dict(content.kpis)["Incidents"] == "5"
    view = home_view.app_home(content, tz=BERLIN, target_minutes=15)
    ids = {item.id for item in content.action_items}
    buttons = [
        b["accessory"]
        for b in view["blocks"]
        if b.get("accessory", {}).get("action_id") == "mark_action_done"
    ]
    assert {int(b["value"]) for b in buttons} == ids
    assert "&lt;!channel&gt;" in str(view) and "<!channel>" not in str(view)
    assert_golden("app_home.json", view)


def test_long_lists_are_cut_to_slacks_100_blocks(session: Session) -> None:
    incident = add_incident(session, at=NOW - timedelta(days=1), resolve=60, document=60)
    for n in range(120):
        add_action_item(session, incident, text=f"Item {n}", owner=ALICE)
        add_incident(session, at=NOW - timedelta(hours=5), resolve=60, responder=ALICE, response=10)
    session.commit()
    content = home_content(session=session, user_id=ALICE, now=NOW, tz=BERLIN, response_target_minutes=15)
    view = home_view.app_home(content, tz=BERLIN, target_minutes=15)
    assert len(view["blocks"]) <= blocks.MAX_MODAL_BLOCKS
    assert "…and 80 more" in str(view) and "…and 100 more." in str(view)
