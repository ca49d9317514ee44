"""App Home over HTTP: opening the tab publishes the person's items, what they owe and the team's KPIs;
"Mark done" there closes the item and republishes the tab."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from bot.core.clock import utcnow
from bot.core.db import make_engine
from bot.core.models import ActionItem, ActionItemStatus
from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action, Block, Callback, row_block_id
from tests.factories import add_action_item, add_incident
from tests.scenarios.conftest import ALICE, BOB


def buttons(view: dict, action_id: str) -> list[str]:
    return [
        b["accessory"]["value"]
        for b in view["blocks"]
        if b.get("accessory", {}).get("action_id") == action_id
    ]


def test_home_tab_lists_my_items_and_mark_done_republishes_it(
    stack: LocalStack, sandbox: SlackSandbox
) -> None:
    now = utcnow()
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        incident = add_incident(
            session, at=now - timedelta(days=2), ack=60, response=300, resolve=1200, document=600
        )
        mine = add_action_item(session, incident, text="Alert on pool saturation", owner=ALICE)
        add_action_item(session, incident, text="Bob's item", owner=BOB)
        owed = add_incident(
            session, at=now - timedelta(days=1), title="Search stale", resolve=60, owner=ALICE
        )
        session.commit()
        mine_id, owed_id = mine.id, owed.id

    assert sandbox.app_home(ALICE) is None
    assert sandbox.open_app_home(ALICE).status == 200
    home = sandbox.app_home(ALICE)
    assert home is not None and home["callback_id"] == Callback.APP_HOME
    assert buttons(home, Action.MARK_ACTION_DONE) == [str(mine_id)]
    assert buttons(home, Action.OPEN_POSTMORTEM) == [str(owed_id)]
    kpis = next(b for b in home["blocks"] if b.get("block_id") == Block.HOME_KPIS)
    assert "*Incidents:* 2" in kpis["text"]["text"]

    delivery = sandbox.view_action(
        ALICE, home["id"], Action.MARK_ACTION_DONE, block_id=row_block_id(Block.HOME_ITEM, mine_id)
    )
    assert delivery.status == 200, delivery.body
    with Session(engine) as session:
        item = session.get(ActionItem, mine_id)
        assert (item.status, item.completed_by) == (ActionItemStatus.DONE, ALICE)
    republished = sandbox.app_home(ALICE)
    assert republished["id"] == home["id"]
    assert buttons(republished, Action.MARK_ACTION_DONE) == []
    assert "No open action items" in str(republished["blocks"])
    assert len(sandbox.calls_to("views.publish")) == 2
    engine.dispose()
