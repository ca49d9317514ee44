"""The floors the bot is measured against, each on the same server as the bot (waitress, 16 threads).

- `bolt`: a bare Bolt app whose only listener acks `/postmortem`; sync `App`,
  `process_before_response=True`, Bolt's own WSGI adapter. What any Bolt app on this server costs.
- `pagerduty`: a bare WSGI endpoint that reads the body and checks `X-PagerDuty-Signature` (HMAC-SHA256,
  `hmac.compare_digest`) and answers 202. What any signed webhook on this server costs.

Run as `python -m benchmarks.floors bolt|pagerduty PORT`; serves until killed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
from collections.abc import Callable, Iterable
from typing import Any

from waitress.server import create_server

from bot.devtools.stack import PAGERDUTY_SECRET, SIGNING_SECRET


def bare_bolt() -> Callable[..., Iterable[bytes]]:
    from slack_bolt import App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_bolt.authorization import AuthorizeResult

    def authorize(**_: Any) -> AuthorizeResult:
        # What a single-workspace app knows after its first auth.test (the bot caches the same answer):
        # no Web API call per request, and none to the real Slack from this machine.
        return AuthorizeResult(
            enterprise_id=None,
            team_id="T0SANDBOX",
            bot_token="xoxb-floor",
            bot_user_id="U0BOT",
            bot_id="B0BOT",
        )

    app = App(signing_secret=SIGNING_SECRET, authorize=authorize, process_before_response=True)

    @app.command("/postmortem")
    def ack_only(ack: Any) -> None:
        ack()

    return SlackRequestHandler(app)


def bare_pagerduty() -> Callable[..., Iterable[bytes]]:
    secret = PAGERDUTY_SECRET.encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        expected = "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        offered = [s.strip() for s in environ.get("HTTP_X_PAGERDUTY_SIGNATURE", "").split(",")]
        valid = any(hmac.compare_digest(expected, s) for s in offered)
        status = "202 Accepted" if valid else "401 Unauthorized"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    return app


def main() -> int:
    kind, port = sys.argv[1], int(sys.argv[2])
    logging.basicConfig(level=logging.WARNING)
    app = {"bolt": bare_bolt, "pagerduty": bare_pagerduty}[kind]()
    create_server(app, host="127.0.0.1", port=port, threads=16, ident="floor").run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
