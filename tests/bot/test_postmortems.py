"""The post-mortem service on real databases (SQLite and PostgreSQL), with a fixed `now`."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from bot.core.models import ActionItem, Incident, Postmortem, PostmortemRevision
from bot.domain import postmortems
from bot.domain.action_items import ActionItemInput, action_items_of
from bot.domain.document import render_document
from bot.domain.incidents import declare_incident, resolve_incident
from bot.domain.postmortems import (
    PostmortemDraft,
    PostmortemError,
    draft_of,
    restore_revision,
    revisions_of,
    save_postmortem,
    start_postmortem,
    validate,
)
from tests.conftest import NOW

UTC = ZoneInfo("UTC")


def complete_draft(**overrides: object) -> PostmortemDraft:
    values: dict = {
        "summary": "Checkout returned 500s",
        "impact": "12% of orders failed for 20 minutes",
        "root_cause": "A connection pool of 5 under Black Friday load",
        "resolution": "Raised the pool to 50 and restarted",
        "severity": "SEV2",
        "services_text": "checkout, payments-api, checkout",
        "resolution_minutes_text": "20",
        "action_items": [ActionItemInput("Alert on pool saturation", "U0ALICE", date(2026, 12, 1))],
    }
    values.update(overrides)
    return PostmortemDraft(**values)


def make_incident(session: Session) -> Incident:
    incident = declare_incident(
        session=session,
        title="Checkout is down",
        channel_id="C0INC",
        channel_name="inc-checkout",
        channel_is_private=False,
        declared_by="U0BOB",
        at=NOW - timedelta(minutes=30),
    )
    resolve_incident(incident=incident, at=NOW - timedelta(minutes=5))
    return incident


def test_publishing_needs_the_essentials_but_a_draft_does_not() -> None:
    empty = PostmortemDraft()
    assert validate(empty, publishing=False, today=NOW.date()) == {}
    errors = validate(empty, publishing=True, today=NOW.date())
    assert set(errors) == {"summary", "root_cause", "resolution", "severity"}
    assert validate(complete_draft(), publishing=True, today=NOW.date()) == {}


def test_whitespace_is_not_a_root_cause() -> None:
    errors = validate(complete_draft(root_cause="  \n "), publishing=True, today=NOW.date())
    assert errors == {"root_cause": "Root cause is needed to publish."}


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (ActionItemInput("", "U0ALICE", None), {"action_items.0.text"}),
        (ActionItemInput("Fix it", None, None), {"action_items.0.owner"}),
        (ActionItemInput("Fix it", "U0ALICE", date(2026, 11, 1)), {"action_items.0.due"}),
        (ActionItemInput("Fix it", "U0ALICE", None), set()),
        (ActionItemInput("", None, None), set()),
    ],
)
def test_action_item_rules(item: ActionItemInput, expected: set[str]) -> None:
    errors = validate(complete_draft(action_items=[item]), publishing=True, today=NOW.date())
    assert set(errors) == expected


def test_resolution_minutes_must_be_whole_minutes() -> None:
    errors = validate(complete_draft(resolution_minutes_text="about 20"), publishing=True, today=NOW.date())
    assert set(errors) == {"resolution_minutes"}


def test_services_are_split_trimmed_and_deduplicated() -> None:
    assert complete_draft().services == ["checkout", "payments-api"]


def test_publish_records_instant_revision_and_document(session: Session) -> None:
    incident = make_incident(session)
    result = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(),
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=UTC,
    )
    session.commit()
    assert result.first_publication
    assert incident.postmortem_published_at == NOW
    assert incident.seconds_to_document == 5 * 60
    assert result.revision.number == 1 and result.revision.action == "publish"
    assert "root_cause" in result.revision.changed_fields
    document = render_document(session=session, incident=incident, postmortem=result.postmortem, tz=UTC)
    assert "# Post-mortem: Checkout is down" in document
    assert "- [ ] Alert on pool saturation (owner: @U0ALICE, due 2026-12-01)" in document
    assert "| Resolution time | 20 min |" in document


def test_republishing_keeps_first_instant_and_records_changed_fields(session: Session) -> None:
    incident = make_incident(session)
    first = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(),
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=UTC,
    )
    later = NOW + timedelta(hours=1)
    # As the modal does: the saved draft (its rows carry their item ids) with one field edited.
    saved = draft_of(session=session, incident=incident, postmortem=first.postmortem)
    result = save_postmortem(
        session=session,
        incident=incident,
        draft=replace(saved, summary="Edited"),
        author_id="U0ALICE",
        publish=True,
        at=later,
        tz=UTC,
    )
    session.commit()
    assert not result.first_publication
    assert result.postmortem.published_at == NOW
    assert incident.postmortem_published_at == NOW
    assert result.revision.changed_fields == ["summary"]
    assert result.revision.author_id == "U0ALICE"
    assert [r.number for r in revisions_of(session=session, postmortem=result.postmortem)] == [1, 2]


def test_action_items_keep_identity_across_edits(session: Session) -> None:
    incident = make_incident(session)
    first = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(),
        author_id="U0BOB",
        publish=False,
        at=NOW,
        tz=UTC,
    )
    item_id = action_items_of(session=session, postmortem=first.postmortem)[0].id
    two = [
        ActionItemInput("Alert on pool saturation!", "U0ALICE", None, item_id=item_id),
        ActionItemInput("Load test", "U0BOB"),
    ]
    save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=two),
        author_id="U0BOB",
        publish=False,
        at=NOW,
        tz=UTC,
    )
    items = action_items_of(session=session, postmortem=first.postmortem)
    assert items[0].id == item_id
    assert [(i.text, i.position) for i in items] == [("Alert on pool saturation!", 0), ("Load test", 1)]
    save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=[]),
        author_id="U0BOB",
        publish=False,
        at=NOW,
        tz=UTC,
    )
    session.commit()
    assert session.exec(select(ActionItem)).all() == []


def test_restore_brings_back_an_old_revision_as_a_new_one(session: Session) -> None:
    incident = make_incident(session)
    save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(),
        author_id="U0BOB",
        publish=False,
        at=NOW,
        tz=UTC,
    )
    edited = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(summary="Wrong", action_items=[]),
        author_id="U0CAROL",
        publish=False,
        at=NOW,
        tz=UTC,
    )
    revision = restore_revision(
        session=session,
        incident=incident,
        postmortem=edited.postmortem,
        number=1,
        author_id="U0BOB",
        at=NOW,
    )
    session.commit()
    assert revision.number == 3 and revision.action == "restore"
    assert set(revision.changed_fields) == {"summary", "action_items"}
    restored = draft_of(session=session, incident=incident, postmortem=edited.postmortem)
    assert restored.summary == "Checkout returned 500s"
    assert [i.text for i in restored.action_items] == ["Alert on pool saturation"]
    with pytest.raises(PostmortemError):
        restore_revision(
            session=session,
            incident=incident,
            postmortem=edited.postmortem,
            number=99,
            author_id="U0BOB",
            at=NOW,
        )
    assert len(session.exec(select(PostmortemRevision)).all()) == 3


def test_draft_derives_resolution_time_from_the_incident(session: Session) -> None:
    incident = make_incident(session)
    save_postmortem(
        session=session,
        incident=incident,
        draft=PostmortemDraft(summary="x"),
        author_id="U0BOB",
        publish=False,
        at=NOW,
        tz=UTC,
    )
    draft = draft_of(
        session=session,
        incident=incident,
        postmortem=save_postmortem(
            session=session,
            incident=incident,
            draft=PostmortemDraft(),
            author_id="U0BOB",
            publish=False,
            at=NOW,
            tz=UTC,
        ).postmortem,
    )
    assert draft.resolution_minutes_text == "25"


def test_invalid_draft_is_refused_by_the_service_too(session: Session) -> None:
    incident = make_incident(session)
    with pytest.raises(PostmortemError, match="Root cause"):
        save_postmortem(
            session=session,
            incident=incident,
            draft=complete_draft(root_cause=""),
            author_id="U0BOB",
            publish=True,
            at=NOW,
            tz=UTC,
        )


def test_an_item_due_today_is_not_past_in_the_teams_time_zone(session: Session) -> None:
    """21:30 in New York is already tomorrow in UTC; an item due "today" there is not in the past."""
    new_york = ZoneInfo("America/New_York")
    incident = make_incident(session)
    evening = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # 21:30 on the 23rd in New York
    item = ActionItemInput("Alert on pool saturation", "U0ALICE", date(2026, 11, 23))
    result = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=[item]),
        author_id="U0BOB",
        publish=True,
        at=evening,
        tz=new_york,
    )
    assert result.revision.number == 1


def test_deleting_a_done_item_does_not_mark_the_next_one_done(session: Session) -> None:
    incident = make_incident(session)
    items = [ActionItemInput("A", "U0ALICE"), ActionItemInput("B", "U0BOB")]
    first = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=items),
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=UTC,
    )
    done = action_items_of(session=session, postmortem=first.postmortem)[0]
    done.status, done.completed_at, done.completed_by = "done", NOW, "U0ALICE"
    save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=items[1:]),
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=UTC,
    )
    session.commit()
    assert [
        (i.text, i.status, i.completed_at)
        for i in action_items_of(session=session, postmortem=first.postmortem)
    ] == [("B", "open", None)]


def test_an_item_that_became_overdue_does_not_block_editing(session: Session) -> None:
    incident = make_incident(session)
    item = ActionItemInput("Alert on pool saturation", "U0ALICE", date(2026, 11, 30))
    first = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=[item]),
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=UTC,
    )
    item = replace(item, item_id=first.item_ids[0])  # the same item, as the modal sends it back
    weeks_later = NOW + timedelta(days=21)
    result = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(summary="Typo fixed", action_items=[item]),
        author_id="U0BOB",
        publish=True,
        at=weeks_later,
        tz=UTC,
    )
    assert result.revision.changed_fields == ["summary"]
    late = ActionItemInput("A new item, already late", "U0BOB", date(2026, 12, 1))
    with pytest.raises(PostmortemError, match="past"):
        save_postmortem(
            session=session,
            incident=incident,
            draft=complete_draft(action_items=[item, late]),
            author_id="U0BOB",
            publish=True,
            at=weeks_later,
            tz=UTC,
        )


def test_items_keep_their_identity_by_id_and_unshown_items_are_kept(session: Session) -> None:
    incident = make_incident(session)
    names = ["A", "B", "C"]
    first = save_postmortem(
        session=session,
        incident=incident,
        draft=complete_draft(action_items=[ActionItemInput(n, "U0BOB") for n in names]),
        author_id="U0BOB",
        publish=True,
        at=NOW,
        tz=UTC,
    )
    a_id, b_id, c_id = first.item_ids
    done = session.get(ActionItem, b_id)
    done.status, done.completed_at, done.completed_by = "done", NOW, "U0BOB"
    # The editor showed A and B only (C did not fit): B reworded and moved first, A deleted, one new item.
    edited = complete_draft(
        action_items=[ActionItemInput("B, reworded", "U0BOB", item_id=b_id), ActionItemInput("D", "U0BOB")],
        hidden_item_ids=(c_id,),
    )
    second = save_postmortem(
        session=session, incident=incident, draft=edited, author_id="U0BOB", publish=True, at=NOW, tz=UTC
    )
    session.commit()
    rows = action_items_of(session=session, postmortem=second.postmortem)
    assert [(r.id, r.text, r.status, r.position) for r in rows] == [
        (b_id, "B, reworded", "done", 0),
        (second.item_ids[1], "D", "open", 1),
        (c_id, "C", "open", 2),
    ]
    assert a_id not in second.item_ids and session.get(ActionItem, a_id) is None

    # Restoring revision 1 brings A back as a new item; B and C are the same items, B still done.
    restore_revision(
        session=session,
        incident=incident,
        postmortem=second.postmortem,
        number=1,
        author_id="U0BOB",
        at=NOW,
    )
    session.commit()
    rows = action_items_of(session=session, postmortem=second.postmortem)
    assert [(r.text, r.status) for r in rows] == [("A", "open"), ("B", "done"), ("C", "open")]
    assert [r.id for r in rows][1:] == [b_id, c_id] and rows[0].id != a_id


def test_two_first_openings_at_once_give_one_draft(
    session: Session, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B1's open loop on PostgreSQL: two `/postmortem` in the same instant both found no draft and the
    second insert failed the command. The second opening now reads the first's draft."""
    incident = make_incident(session)
    session.commit()
    with Session(engine) as first:
        mine = start_postmortem(session=first, incident=incident, owner_id="U0ALICE", at=NOW)
        first.commit()
        mine_id = mine.id
    # The second opening looked before the first committed: it found no draft.
    lookups: list[str] = []
    real = postmortems.postmortem_for

    def looked_early(**kwargs: Any) -> Postmortem | None:
        lookups.append("early" if not lookups else "again")
        return None if len(lookups) == 1 else real(**kwargs)

    monkeypatch.setattr(postmortems, "postmortem_for", looked_early)
    theirs = start_postmortem(session=session, incident=incident, owner_id="U0BOB", at=NOW)
    session.commit()
    assert (theirs.id, theirs.owner_id) == (mine_id, "U0ALICE")
    assert lookups == ["early", "again"]
    assert len(session.exec(select(Postmortem)).all()) == 1
