"""Scenario fixtures: the bot served over real HTTP against the Slack sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.devtools.sandbox import SlackSandbox
from bot.devtools.stack import LocalStack

ALICE, BOB, CAROL = "U0ALICE", "U0BOB", "U0CAROL"


# The bot scopes each Web API method needs (a method with no scope maps to an empty set). A scenario that
# makes the bot call a method missing here fails: add the method with its scopes from Slack's docs, and
# declare them in manifest.yml.
METHOD_SCOPES: dict[str, set[str]] = {
    "auth.test": set(),
    "apps.connections.open": set(),  # the app-level token's connections:write, not a bot scope
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "chat.getPermalink": set(),
    "conversations.info": {"channels:read", "groups:read"},
    "conversations.list": {"channels:read", "groups:read"},
    "conversations.members": {"channels:read", "groups:read"},
    # im:history: the outbox reads a nudge's DM to find a post whose answer was lost (bot/slack/outbox.py).
    "conversations.history": {"channels:history", "groups:history", "im:history"},
    "conversations.open": {"im:write"},
    "conversations.replies": {"channels:history", "groups:history"},
    "conversations.join": {"channels:join"},
    # groups:write is needed only to create private channels; the bot creates public incident channels.
    "conversations.create": {"channels:manage"},
    # The bot invites into public channels only (pagerduty_notices.enqueue_invitations): no groups:write.
    "conversations.invite": {"channels:manage"},
    "files.getUploadURLExternal": {"files:write"},
    "files.completeUploadExternal": {"files:write"},
    "users.info": {"users:read", "users:read.email"},  # the owner's e-mail, for the Jira assignee
    "users.lookupByEmail": {"users:read", "users:read.email"},
    "views.open": set(),
    "views.update": set(),
    "views.push": set(),
    "views.publish": set(),
}
MANIFEST = yaml.safe_load((Path(__file__).resolve().parents[2] / "manifest.yml").read_text())


def assert_manifest_covers(calls: list[dict]) -> None:
    declared = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    for method in sorted({call["method"] for call in calls}):
        assert method in METHOD_SCOPES, f"the bot called {method}: add it to METHOD_SCOPES and manifest.yml"
        missing = METHOD_SCOPES[method] - declared
        assert not missing, f"the bot called {method}, which needs {sorted(missing)} in manifest.yml"


@pytest.fixture
def stack(database_url: str) -> Iterator[LocalStack]:
    with LocalStack(database_url) as running:
        yield running
        assert_manifest_covers(running.sandbox.calls)


@pytest.fixture
def pagerduty_stack(database_url: str) -> Iterator[LocalStack]:
    """The stack, with the secrets of the published PagerDuty fixtures (../shared/fixtures)."""
    from tests.shared_fixtures import pagerduty_vectors

    secrets = sorted({v.secret for v in pagerduty_vectors()})
    with LocalStack(database_url, pagerduty_webhook_secrets=secrets) as running:
        yield running
        assert_manifest_covers(running.sandbox.calls)


@pytest.fixture
def sandbox(stack: LocalStack) -> SlackSandbox:
    return stack.sandbox


def declare(
    sandbox: SlackSandbox, name: str = "inc-checkout", title: str = "Checkout is down", private: bool = False
) -> str:
    """A channel with an incident declared in it; returns the channel id once the card is posted."""
    channel = sandbox.create_channel(name, is_private=private, members=[ALICE, BOB, CAROL, "U0BOT"])
    delivery = sandbox.slash_command(BOB, channel, text=f"new {title}")
    assert delivery.status == 200, delivery.body
    sandbox.wait_for_message(channel, lambda m: "Incident" in m.get("text", ""))
    return channel
