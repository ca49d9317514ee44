"""`/postmortem runbooks` over HTTP: the report from the bot's clone of the docs repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from bot.devtools.stack import LocalStack
from bot.loop.runbooks import check_runbooks
from tests.bot.test_runbooks import NOW, runbook_settings, seed

BOB = "U0BOB"


def test_the_runbooks_command_answers_from_the_last_fetch(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("handlers.commands.utcnow", lambda: NOW)  # the report's 90 days end at NOW
    with LocalStack(database_url, **runbook_settings(tmp_path)) as stack:
        sandbox = stack.sandbox
        lobby = sandbox.create_channel("lobby", members=[BOB, "U0BOT"])
        assert stack.server is not None and stack.server.runtime is not None
        runtime = stack.server.runtime

        # Before the first fetch the command says so (it never fetches: Slack wants an answer in 3 s).
        answer = sandbox.slash_command(BOB, lobby, text="runbooks").json["text"]
        assert "has not fetched the docs repository yet" in answer

        with Session(runtime.engine) as session:
            seed(session)
            check_runbooks(session=session, settings=runtime.settings, now=NOW)  # fetches, like the job
        answer = sandbox.slash_command(BOB, lobby, text="runbooks").json["text"]
        assert answer.startswith("*Runbook check*: 4 runbooks, 3 stale, 1 services with incidents")
        assert "• ledger: 2 incidents" in answer and "*Up to date*: search" in answer


def test_the_runbooks_command_says_what_is_missing(database_url: str) -> None:
    with LocalStack(database_url) as stack:
        lobby = stack.sandbox.create_channel("lobby", members=[BOB, "U0BOT"])
        answer = stack.sandbox.slash_command(BOB, lobby, text="runbooks").json["text"]
        assert "needs `DOCS_REPO` and `RUNBOOKS`" in answer
