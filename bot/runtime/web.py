"""HTTP routes, as one small WSGI app served by waitress (a production server with a thread pool).

Bolt's sync handler runs on waitress's threads; it must never run inside an asyncio loop (that
blocks the loop and drops throughput to ~89 req/s: docs/architecture.md, "Runtime model").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from slack_bolt import App
from slack_bolt.request import BoltRequest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from waitress.server import BaseWSGIServer, create_server

from bot.core.db import read_scope
from bot.domain.deliveries import backlog
from bot.domain.pagerduty import SOURCE as PAGERDUTY
from bot.loop.metrics import MetricsSnapshot, degraded
from bot.runtime.ingest import IngestWriter
from bot.runtime.slack_health import SlackHealth
from bot.slack.outbox import depth
from bot.trackers.links import tracker_backlog

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Slack and PagerDuty payloads are far smaller; refuse anything larger.


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_response(status: int, payload: dict[str, Any]) -> Response:
    return Response(status, json.dumps(payload).encode())


Route = Callable[[dict[str, Any], bytes], Response]
_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Router:
    """Exact-path routes. Handlers get the WSGI environ and the raw body (signatures are computed on it)."""

    def __init__(self) -> None:
        self._routes: dict[str, dict[str, Route]] = {}

    def add(self, method: str, path: str, route: Route) -> None:
        self._routes.setdefault(path, {})[method] = route

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        length = _content_length(environ)
        if length is None:
            return _send(start_response, json_response(400, {"error": "invalid Content-Length"}))
        if length > MAX_BODY_BYTES:
            return _send(start_response, json_response(413, {"error": f"body over {MAX_BODY_BYTES} bytes"}))
        methods = self._routes.get(path)
        if methods is None:
            return _send(start_response, json_response(404, {"error": f"no route {path}"}))
        route = methods.get(method)
        if route is None:
            return _send(start_response, json_response(405, {"error": f"{method} not allowed on {path}"}))
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            response = route(environ, body)
        except Exception:
            log.exception("route %s %s failed", method, path)
            response = json_response(500, {"error": "internal error"})
        return _send(start_response, response)


def _content_length(environ: dict[str, Any]) -> int | None:
    raw = (environ.get("CONTENT_LENGTH") or "0").strip()
    # ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() then refuses.
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _send(start_response: Callable[..., Any], response: Response) -> Iterable[bytes]:
    reason = _REASONS.get(response.status, "")
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *response.headers,
    ]
    start_response(f"{response.status} {reason}", headers)
    return [response.body]


def request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")
    }
    headers["content-type"] = environ.get("CONTENT_TYPE", "")
    return headers


SLACK_TIMESTAMP_WINDOW_SECONDS = 5 * 60  # Slack: refuse requests whose timestamp is over 5 minutes off


def slack_signature_valid(
    body: bytes, headers: dict[str, str], secret: str, *, now: float | None = None
) -> bool:
    """Slack's v0 signature over the raw bytes, within the 5-minute window. Unlike slack_sdk's verifier it
    never raises: a non-numeric timestamp, a non-ASCII signature or a body that is not UTF-8 is just
    invalid (a request it cannot verify gets 401, never a 500)."""
    timestamp = headers.get("x-slack-request-timestamp", "").strip()
    signature = headers.get("x-slack-signature", "")
    if not secret or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > SLACK_TIMESTAMP_WINDOW_SECONDS:
        return False
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    expected = ("v0=" + digest.hexdigest()).encode()
    return hmac.compare_digest(expected, signature.encode("utf-8", errors="replace"))


# Bolt reads these without checking their type (e.g. `"callback_id" in body["view"]`), so a signed body
# with another shape would make Bolt itself raise: such a body is refused with 400 before it gets there.
_OBJECTS = ("event", "view", "container", "message", "state")  # when present, an object (never null)
_OBJECTS_OR_NULL = ("team", "enterprise")  # Slack sends "enterprise": null
_OBJECTS_OR_IDS = ("user", "channel")


# Fields Slack always sends with the events the bot listens to; the listeners rely on them.
_EVENT_REQUIRES: dict[object, tuple[str, ...]] = {
    "message": ("channel", "ts"),
    "reaction_added": ("user", "item"),
    "app_home_opened": ("user",),
}
_SLACK_TS = re.compile(r"^\d{1,12}(\.\d{1,9})?$")
# Events whose `channel` is the channel object ({id, name, created}) rather than its id.
_EVENT_CHANNEL_OBJECTS = {"channel_rename", "group_rename"}


def slack_shape_problem(body: object) -> str | None:
    """Why `body` is not shaped like anything Slack sends, or None."""
    if not isinstance(body, dict):
        return "not an object"
    for name in _OBJECTS:
        if name in body and not isinstance(body[name], dict):
            return f"{name} is not an object"
    for name in _OBJECTS_OR_NULL:
        if body.get(name) is not None and not isinstance(body[name], dict):
            return f"{name} is not an object"
    for name in _OBJECTS_OR_IDS:
        if body.get(name) is not None and not isinstance(body[name], dict | str):
            return f"{name} is neither an object nor an id"
    for name in ("type", "command", "callback_id", "trigger_id", "response_url"):
        if body.get(name) is not None and not isinstance(body[name], str):
            return f"{name} is not a string"
    actions = body.get("actions")
    if "actions" in body and not (
        isinstance(actions, list) and actions and all(isinstance(a, dict) for a in actions)
    ):
        return "actions is not a list of objects"
    event = body.get("event") or {}
    if event.get("type") in _EVENT_CHANNEL_OBJECTS:
        channel = event.get("channel")
        if not (isinstance(channel, dict) and isinstance(channel.get("id"), str)):
            return f"{event['type']} event without a channel object"
        if not isinstance(channel.get("name"), str):
            return f"{event['type']} event without the channel's name"
        event = {k: v for k, v in event.items() if k != "channel"}
    for name in ("type", "subtype", "channel", "user", "ts", "text", "tab", "reaction"):
        if event.get(name) is not None and not isinstance(event[name], str):
            return f"event.{name} is not a string"
    if event.get("item") is not None and not isinstance(event["item"], dict):
        return "event.item is not an object"
    for name in _EVENT_REQUIRES.get(event.get("type"), ()):
        if not event.get(name):
            return f"{event['type']} event without {name}"
    item = event.get("item") or {}
    for where, ts in (("event.ts", event.get("ts")), ("event.item.ts", item.get("ts"))):
        if ts is not None and not _SLACK_TS.match(str(ts)):
            return f"{where} is not a Slack timestamp"
    if event.get("type") == "reaction_added" and not (
        isinstance(item.get("channel"), str) and item.get("ts")
    ):
        return "reaction_added event without item.channel and item.ts"
    return None


def slack_events(bolt_app: App, signing_secret: str) -> Route:
    """Slack's events, commands and interactions, dispatched to Bolt on this server thread.

    The signature is checked on the raw bytes before anything is parsed, so whatever an unsigned sender
    posts gets 401; a signed body that is not what Slack sends (not UTF-8, not JSON or form-encoded, not
    an object) gets 400. Slack does not retry 4xx. Bolt checks the signature again (defence in depth).
    """

    def route(environ: dict[str, Any], body: bytes) -> Response:
        headers = request_headers(environ)
        if not slack_signature_valid(body, headers, signing_secret):
            return json_response(401, {"error": "invalid signature"})
        try:
            request = BoltRequest(
                body=body.decode("utf-8"), query=environ.get("QUERY_STRING", ""), headers={**headers}
            )
            problem = slack_shape_problem(request.body)
        except (ValueError, TypeError, AttributeError, RecursionError):
            problem = "not JSON or form-encoded"  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        if problem:
            return json_response(400, {"error": f"not a Slack payload: {problem}"})
        answer = bolt_app.dispatch(request)
        content_type = (answer.headers.get("content-type") or ["text/plain;charset=utf-8"])[0]
        return Response(answer.status, (answer.body or "").encode(), content_type)

    return route


def health(engine: Engine, slack: SlackHealth) -> Route:
    """What works and what does not: the database, Slack, the outbox, the inbound backlog and the tracker
    work. 200 with "ok" or "degraded" (something needs a look, or Slack is unreachable and messages wait);
    503 "down" when the database cannot be read (nothing can be stored)."""

    def route(_environ: dict[str, Any], _body: bytes) -> Response:
        try:
            with read_scope(engine) as session:
                counts = depth(session)
                inbound = backlog(session, source=PAGERDUTY)
                trackers = tracker_backlog(session)
        except SQLAlchemyError as exc:
            database = {"status": "unreachable", "error": _first_line(exc)}
            return json_response(503, {"status": "down", "database": database, "slack": slack.state()})
        return json_response(
            200,
            {
                "status": "degraded" if degraded(counts, inbound, trackers) or not slack.up else "ok",
                "database": {"status": "ok"},
                "slack": slack.state(),
                "outbox": counts,
                "inbound": inbound,
                "trackers": trackers,
            },
        )

    return route


def ready(engine: Engine, ingest: IngestWriter) -> Route:
    """`GET /readyz` for a load balancer: 200 while this replica can store a webhook (its database
    answers and its ingest writer runs), 503 otherwise, so traffic goes to a replica that can."""

    def route(_environ: dict[str, Any], _body: bytes) -> Response:
        if not ingest.running:
            return json_response(503, {"ready": False, "reason": "the ingest writer is not running"})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return json_response(503, {"ready": False, "reason": f"database: {_first_line(exc)}"})
        return json_response(200, {"ready": True})

    return route


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's own message, without the SQL or the parameters SQLAlchemy appends."""
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def metrics(snapshot: MetricsSnapshot) -> Route:
    """Prometheus' scrape: the last refresh's exposition, no database query (see bot/loop/metrics.py)."""

    def route(_environ: dict[str, Any], _body: bytes) -> Response:
        return Response(200, snapshot.exposition(), CONTENT_TYPE_LATEST)

    return route


def make_server(app: Router, host: str, port: int, threads: int = 16) -> BaseWSGIServer:
    """A waitress server; `.run()` serves until `.close()`. `port=0` picks a free port (`.effective_port`)."""
    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        max_request_body_size=MAX_BODY_BYTES,
        ident="postmortem-bot",
        clear_untrusted_proxy_headers=True,
    )
    # waitress returns a MultiSocketServer only for several `listen` addresses; one host is one socket.
    if not isinstance(server, BaseWSGIServer):
        raise TypeError(f"expected one listening socket for {host}:{port}, got {type(server).__name__}")
    return server
