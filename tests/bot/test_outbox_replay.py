"""Parked outbox rows have a way out: `postmortem-bot outbox list|retry|drop`. A replayed channel row still
gives its incident the channel, then the card and the write-up prompt, once and in that order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from bot.cli import main
from bot.core.config import load_settings
from bot.core.db import session_scope
from bot.core.models import Incident, OutboxMessage, OutboxStatus
from bot.devtools.sandbox import SlackSandbox
from bot.runtime.server import build_process, create_wsgi_app
from tests.bot.test_outbox import BOT_TOKEN, call_wsgi
from tests.bot.test_processor import processor, store
from tests.conftest import NOW
from tests.faults.ledger import pagerduty_body


@pytest.fixture
def sandbox() -> Iterator[SlackSandbox]:
    with SlackSandbox(bot_token=BOT_TOKEN) as sb:
        yield sb


def statuses(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {row.key: row.status for row in session.exec(select(OutboxMessage))}


def park(engine: Engine, key: str) -> int:
    """The state the issue found after a long Slack outage: the channel row parked by an earlier version."""
    with session_scope(engine) as session:
        session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.key) == key)
            .values(status=OutboxStatus.PARKED, attempts=8, last_error="gave up after 8 attempts: URLError")
        )
        return session.exec(select(OutboxMessage.id).where(OutboxMessage.key == key)).one()


def test_a_replayed_channel_row_brings_the_channel_then_card_then_prompt_once(
    engine: Engine,
    database_url: str,
    sandbox: SlackSandbox,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store(
        engine,
        pagerduty_body("QREPLAY", 77, "triggered", minutes=0),
        pagerduty_body("QREPLAY", 77, "resolved", minutes=30),
    )
    processor(engine).run_once(NOW)
    row_id = park(engine, "channel:1")
    monkeypatch.setenv("DATABASE_URL", database_url)

    assert main(["outbox", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"{row_id}\t" in listed and "channel:1" in listed and "gave up after 8 attempts" in listed
    assert "1 parked row(s)" in listed

    assert main(["outbox", "retry", str(row_id)]) == 0
    assert "1 row(s) pending again" in capsys.readouterr().out
    settings = load_settings(
        database_url=database_url, slack_bot_token=BOT_TOKEN, slack_api_url=sandbox.api_url
    )
    process = build_process(settings)
    try:
        while process.outbox.run_once():
            pass
        status, body = call_wsgi(create_wsgi_app(process, None), "GET", "/healthz")
    finally:
        process.runtime.engine.dispose()
    assert status == 200 and '"status": "ok"' in body

    with Session(engine) as session:
        incident = session.exec(select(Incident)).one()
    assert incident.channel_id is not None
    assert [call["method"] for call in sandbox.calls if call["ok"]][:1] == ["conversations.create"]
    posted = [m["text"] for m in sandbox.messages(incident.channel_id)]
    assert len(posted) == 2 and "Load test incident 77" in posted[0] and "post-mortem" in posted[1].lower()
    assert set(statuses(engine).values()) == {OutboxStatus.SENT}

    assert main(["outbox", "retry", str(row_id)]) == 1  # not parked any more: nothing replayed twice
    assert "0 row(s) pending again" in capsys.readouterr().out


def test_dropped_rows_are_kept_as_dropped_and_the_commands_refuse_without_ids(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store(engine, pagerduty_body("QDROP", 78, "triggered", minutes=0))
    processor(engine).run_once(NOW)
    park(engine, "channel:1")
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["outbox", "drop"]) == 2
    assert "give the row ids" in capsys.readouterr().err
    assert main(["outbox", "drop", "--all"]) == 0
    assert statuses(engine) == {"channel:1": OutboxStatus.DROPPED}
    assert main(["outbox", "list"]) == 0
    assert "0 parked row(s)" in capsys.readouterr().out
