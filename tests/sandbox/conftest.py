"""Fixtures for the sandbox's own tests: a started sandbox, a real WebClient, and a tiny bot.

The "bot" here is a signature-checking HTTP receiver, not our Bolt app: these tests pin down what the
sandbox sends and accepts, independent of the handlers built on top of it.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier

from bot.devtools.sandbox import ManualClock, SlackSandbox

SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-sandbox"


@dataclass
class Received:
    """One request the fake bot received."""

    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def payload(self) -> Any:
        """The parsed payload: the JSON event, the slash command fields, or the interaction."""
        if self.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(self.body)
        form = dict(urllib.parse.parse_qsl(self.body.decode()))
        return json.loads(form["payload"]) if "payload" in form else form


Responder = Callable[[Received], tuple[int, str]]


@dataclass
class FakeBot:
    """Receives the sandbox's deliveries, checks their signature, answers with `responder`."""

    url: str
    received: list[Received] = field(default_factory=list)
    responder: Responder = lambda request: (200, "")

    def answer_json(self, payload: dict[str, Any]) -> None:
        self.responder = lambda request: (200, json.dumps(payload))


def error_of(call, **kwargs) -> str:  # type: ignore[no-untyped-def]
    """The Slack error name a Web API call fails with (the test fails if it succeeds)."""
    with pytest.raises(SlackApiError) as excinfo:
        call(**kwargs)
    return excinfo.value.response["error"]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake_bot() -> Iterator[FakeBot]:
    verifier = SignatureVerifier(SECRET)
    holder: dict[str, FakeBot] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = dict(self.headers)
            # The sandbox's clock may be a ManualClock moved forward; verify the HMAC, not freshness.
            verified = verifier.is_valid(
                body, headers.get("X-Slack-Request-Timestamp", ""), headers.get("X-Slack-Signature", "")
            )
            request = Received(headers, body, verified)
            bot = holder["bot"]
            bot.received.append(request)
            status, text = (401, "bad signature") if not verified else bot.responder(request)
            raw = text.encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if text.startswith("{") else "text/plain")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sandbox stopped waiting (a timeout test)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    holder["bot"] = FakeBot(url=f"http://127.0.0.1:{server.server_address[1]}/slack/events")
    yield holder["bot"]
    server.shutdown()
    server.server_close()


@pytest.fixture
def sb(clock: ManualClock, fake_bot: FakeBot) -> Iterator[SlackSandbox]:
    sandbox = SlackSandbox(signing_secret=SECRET, bot_token=BOT_TOKEN, bot_url=fake_bot.url, clock=clock)
    with sandbox:
        yield sandbox


@pytest.fixture
def client(sb: SlackSandbox) -> WebClient:
    return WebClient(base_url=sb.api_url, token=BOT_TOKEN, timeout=5)


@pytest.fixture
def channel(sb: SlackSandbox, client: WebClient) -> str:
    """A public channel with the demo humans, joined by the bot."""
    channel_id = sb.create_channel("inc-1")
    client.conversations_join(channel=channel_id)
    return channel_id
