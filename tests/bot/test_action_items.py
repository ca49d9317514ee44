"""Action items after publication: who may close one, closing twice, and someone's open items."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import Session

from bot.domain.action_items import (
    ActionItemError,
    ActionItemInput,
    action_items_of,
    complete_action_item,
    open_items_for,
)
from bot.domain.postmortems import save_postmortem
from tests.bot.test_postmortems import complete_draft, make_incident
from tests.conftest import NOW


def published_items(session: Session):  # type: ignore[no-untyped-def]
    incident = make_incident(session)
    draft = complete_draft(
        action_items=[
            ActionItemInput("Alert on pool saturation", "U0ALICE", date(2026, 12, 1)),
            ActionItemInput("Load test before Black Friday", "U0ALICE", None),
            ActionItemInput("Pool size in the runbook", "U0BOB", date(2026, 11, 30)),
        ]
    )
    result = save_postmortem(
        session=session,
        incident=incident,
        draft=draft,
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=ZoneInfo("UTC"),
    )
    return action_items_of(session=session, postmortem=result.postmortem)


def test_owner_or_participant_may_close_others_are_refused(session: Session) -> None:
    alert, load_test, runbook = published_items(session)
    with pytest.raises(
        ActionItemError, match="Only its owner <@U0ALICE>, someone in the incident's channel or a post"
    ):
        complete_action_item(session=session, item=alert, user_id="U0EVE", participants={"U0BOB"}, at=NOW)
    assert alert.status == "open"
    assert complete_action_item(session=session, item=alert, user_id="U0ALICE", participants=(), at=NOW)
    later = NOW + timedelta(hours=1)
    assert complete_action_item(
        session=session, item=load_test, user_id="U0BOB", participants={"U0BOB"}, at=later
    )
    assert not complete_action_item(session=session, item=alert, user_id="U0ALICE", participants=(), at=later)
    assert (alert.status, alert.completed_by, alert.completed_at) == ("done", "U0ALICE", NOW)
    # A POSTMORTEM_ADMINS user may close any item, in the channel or not.
    assert complete_action_item(
        session=session, item=runbook, user_id="U0ADMIN", participants=(), admins=["U0ADMIN"], at=later
    )
    assert (load_test.completed_by, load_test.completed_at) == ("U0BOB", later)


def test_open_items_are_mine_only_soonest_first(session: Session) -> None:
    alert, _, _ = published_items(session)
    assert [i.text for i in open_items_for(session=session, owner_id="U0ALICE")] == [
        "Alert on pool saturation",
        "Load test before Black Friday",  # no due date: last
    ]
    complete_action_item(session=session, item=alert, user_id="U0ALICE", participants=(), at=NOW)
    [only] = open_items_for(session=session, owner_id="U0ALICE")
    assert (only.text, only.incident_ref, only.channel_id) == (
        "Load test before Black Friday",
        "D-1",
        "C0INC",
    )
    assert [i.text for i in open_items_for(session=session, owner_id="U0BOB")] == ["Pool size in the runbook"]
