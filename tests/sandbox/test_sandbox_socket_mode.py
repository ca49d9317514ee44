"""Socket Mode: apps.connections.open, hello, envelopes and acks, with slack_sdk and Bolt clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot.devtools.sandbox import SlackSandbox

from .conftest import FakeBot
from .test_sandbox_views import postmortem_modal


def hang_up(sb: SlackSandbox, client: SocketModeClient) -> None:
    """Close a client quickly: its receiver waits up to 3 s on recv unless the server hangs up first."""
    client.auto_reconnect_enabled = False
    sb.disconnect_socket_mode()
    # Let the client notice first: slack_sdk's Connection.disconnect() checks `sock is not None` and
    # then closes it without holding a lock, so closing while its receiver thread does the same can
    # raise AttributeError (seen here, intermittently).
    sb.wait_for(lambda: not client.is_connected(), timeout=3)
    client.close()


@pytest.fixture
def socket_sb(sb: SlackSandbox) -> SlackSandbox:
    sb.bot_url = None  # everything must come over the socket
    return sb


def test_connections_open_needs_the_app_token(socket_sb: SlackSandbox) -> None:
    app_client = WebClient(base_url=socket_sb.api_url)
    url = app_client.apps_connections_open(app_token="xapp-sandbox")["url"]
    assert url.startswith("ws://127.0.0.1:") and "ticket=" in url
    with pytest.raises(SlackApiError, match="invalid_auth"):
        app_client.apps_connections_open(app_token="xapp-wrong")


def test_builtin_socket_mode_client_round_trip(socket_sb: SlackSandbox, fake_bot: FakeBot) -> None:
    received: list[SocketModeRequest] = []
    client = SocketModeClient(app_token="xapp-sandbox", web_client=WebClient(base_url=socket_sb.api_url))

    def on_request(client: SocketModeClient, request: SocketModeRequest) -> None:
        received.append(request)
        payload = {"text": "pong"} if request.type == "slash_commands" else None
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=payload))

    client.socket_mode_request_listeners.append(on_request)
    client.connect()
    try:
        socket_sb.wait_for(lambda: socket_sb.socket_mode_connections == 1, timeout=3)
        channel = socket_sb.create_channel("inc-1")
        delivery = socket_sb.slash_command("U0ALICE", channel, "/postmortem", "help")
        assert (delivery.transport, delivery.status, delivery.json) == ("socket_mode", 200, {"text": "pong"})
        assert received[-1].type == "slash_commands" and received[-1].payload["text"] == "help"
        assert [e["text"] for e in socket_sb.ephemerals(channel, "U0ALICE")] == ["pong"]
        socket_sb.join("U0BOT", channel)
        socket_sb.post_message("U0ALICE", channel, "over the socket")
        event_envelope = next(r for r in reversed(received) if r.type == "events_api")
        assert event_envelope.payload["event"]["text"] == "over the socket"
        assert fake_bot.received == []  # nothing went over HTTP

        # Slack asks clients to reconnect from time to time; slack_sdk's client does so by itself.
        socket_sb.disconnect_socket_mode("refresh_requested")
        socket_sb.wait_for(lambda: len(socket_sb.calls_to("apps.connections.open")) == 2, timeout=3)
        socket_sb.wait_for(lambda: socket_sb.socket_mode_connections == 1, timeout=3)
        assert socket_sb.slash_command("U0ALICE", channel, "/postmortem").json == {"text": "pong"}
    finally:
        hang_up(socket_sb, client)


def test_bolt_socket_mode_handler_answers_view_submission_with_errors(socket_sb: SlackSandbox) -> None:
    web = WebClient(base_url=socket_sb.api_url, token="xoxb-sandbox")
    app = App(client=web, signing_secret="unused-over-socket-mode")

    @app.command("/postmortem")
    def open_modal(ack, body, client) -> None:  # type: ignore[no-untyped-def]
        ack()
        client.views_open(trigger_id=body["trigger_id"], view=postmortem_modal())

    @app.view("postmortem")
    def submit(ack, view) -> None:  # type: ignore[no-untyped-def]
        cause = view["state"]["values"]["root_cause"]["value"]["value"]
        if len(cause) < 10:
            ack(response_action="errors", errors={"root_cause": "Tell us more."})
        else:
            ack()

    handler = SocketModeHandler(app, app_token="xapp-sandbox")
    handler.connect()
    try:
        socket_sb.wait_for(lambda: socket_sb.socket_mode_connections == 1, timeout=3)
        channel = socket_sb.create_channel("inc-1")
        socket_sb.slash_command("U0ALICE", channel, "/postmortem")
        view = socket_sb.wait_for(lambda: socket_sb.open_view_for("U0ALICE"), timeout=3)
        socket_sb.fill_view(view["id"], {"root_cause": {"value": "disk"}, "severity": {"value": "sev2"}})
        delivery = socket_sb.submit_view("U0ALICE", view["id"])
        assert delivery.transport == "socket_mode"
        assert delivery.json == {"response_action": "errors", "errors": {"root_cause": "Tell us more."}}
        assert socket_sb.view_errors == {view["id"]: {"root_cause": "Tell us more."}}

        socket_sb.fill_view(view["id"], {"root_cause": {"value": "a cron job filled the disk"}})
        assert socket_sb.submit_view("U0ALICE", view["id"]).ok
        assert socket_sb.views == {}
    finally:
        hang_up(socket_sb, handler.client)


@pytest.fixture
def no_bot(sb: SlackSandbox) -> Iterator[SlackSandbox]:
    sb.bot_url = None
    yield sb


def test_without_bot_url_or_socket_nothing_is_delivered(no_bot: SlackSandbox) -> None:
    channel = no_bot.create_channel("inc-1")
    delivery = no_bot.slash_command("U0ALICE", channel)
    assert delivery.status == 0 and delivery.error and "no_bot_url" in delivery.error
