"""With SLACK_APP_TOKEN set, Slack traffic arrives over Socket Mode: the sandbox hands out a local
WebSocket URL from apps.connections.open and delivers envelopes over it, and the bot acks them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.devtools.stack import LocalStack
from bot.slack.blocks import Action, Block
from tests.scenarios.conftest import ALICE, BOB, assert_manifest_covers, declare


@pytest.fixture
def socket_stack(tmp_path) -> Iterator[LocalStack]:  # type: ignore[no-untyped-def]
    with LocalStack(f"sqlite:///{tmp_path / 'bot.core.db'}", socket_mode=True) as stack:
        stack.sandbox.wait_for(lambda: stack.sandbox.socket_mode_connections, timeout=10)
        yield stack
        assert_manifest_covers(stack.sandbox.calls)


def test_the_loop_works_over_socket_mode(socket_stack: LocalStack) -> None:
    sandbox = socket_stack.sandbox
    assert sandbox.bot_url is None  # nothing can come over HTTP
    assert sandbox.calls_to("apps.connections.open")[0]["ok"]
    channel = declare(sandbox)
    sandbox.post_message(ALICE, channel, "on it")
    sandbox.slash_command(BOB, channel)
    view = sandbox.open_view_for(BOB)
    assert view is not None
    sandbox.fill_view(
        view["id"],
        {
            Block.SUMMARY: {Action.INPUT: "s"},
            Block.RESOLUTION: {Action.INPUT: "r"},
            Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV3"},
        },
    )
    refused = sandbox.submit_view(BOB, view["id"], client_validation=False)
    assert refused.json["response_action"] == "errors"  # the ack payload carries the errors over the socket
    sandbox.fill_view(view["id"], {Block.ROOT_CAUSE: {Action.INPUT: "rc"}})
    assert sandbox.submit_view(BOB, view["id"]).status == 200
    sandbox.wait_for_message(sandbox.channel_id("postmortems"), lambda m: "Post-mortem" in m.get("text", ""))


def test_http_slack_route_is_off_in_socket_mode(socket_stack: LocalStack) -> None:
    import urllib.error
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(f"{socket_stack.bot_url}/slack/events", data=b"{}"))
    assert info.value.code == 404
