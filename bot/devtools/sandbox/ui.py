"""The sandbox as a Slack-like web page: a JSON API, Server-Sent Events and the static page in ``static/``.

``postmortem-bot demo`` serves it (default http://127.0.0.1:3000). The page reads the whole workspace from
``GET /api/state`` (``SlackSandbox.snapshot()``) and re-reads it whenever ``GET /api/events`` (an SSE
stream fed by ``SlackSandbox.subscribe``) says something changed. Everything a person does on the page
goes through the sandbox's sender methods, so the bot receives exactly what Slack would send it: signed
slash commands, messages, reactions, block actions and view submissions. The PagerDuty controls send
signed V3 webhooks (``PagerDutyControls``, through ``pagerduty.PagerDutySender``); the clock controls run
the scheduled jobs now.

Only a local page: it binds 127.0.0.1, and every POST must be ``application/json`` (a cross-site form
cannot send that without a CORS preflight, which this server never grants).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import select
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bot.core.clock import utcnow
from bot.core.rendering import escape_mrkdwn

from .pagerduty_sender import FakeIncident, PagerDutySender
from .sandbox import SlackSandbox
from .state import DEMO_HUMANS, Delivery, SlackError

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page loads nothing from elsewhere and runs no inline script: message text can never become code.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
TEXT_FILE_TYPES = ("text/", "application/json")
KEEPALIVE_SECONDS = 15.0
MAX_BODY = 256 * 1024
MENTION = re.compile(r"(?<![\w@])@([a-z0-9._-]+)")


class PageError(Exception):
    """A request the page should not have made; answered 400 with the message."""


@dataclass(frozen=True)
class ClockJob:
    """A scheduled job the page can run now: `run()` returns what it did, for a person to read."""

    label: str
    run: Callable[[], str]


class PagerDutyControls:
    """The page's PagerDuty: made-up incidents, each event a signed V3 delivery sent to the bot."""

    FIRST_NUMBER = 101  # clear of the demo's #42 and the fixtures' #37

    def __init__(self, sender: PagerDutySender) -> None:
        self.sender = sender
        self._lock = threading.Lock()
        self._incidents: dict[str, tuple[FakeIncident, str]] = {}  # id -> (incident, status)

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [
                {
                    "id": i.id,
                    "number": i.number,
                    "title": i.title,
                    "service": i.service_name,
                    "status": status,
                }
                for i, status in self._incidents.values()
            ]

    def trigger(self, title: str, service: str) -> dict[str, Any]:
        service = service.strip() or "checkout"
        with self._lock:
            incident = FakeIncident(
                number=self.FIRST_NUMBER + len(self._incidents),
                title=(title.strip() or "Untitled incident")[:255],
                service_id="P" + "".join(c for c in service.upper() if c.isalnum())[:12],
                service_name=service[:255],
                created_at=utcnow(),
            )
            self._incidents[incident.id] = (incident, "triggered")
        return self._send(incident, "triggered")

    def move(self, incident_id: str, action: str) -> dict[str, Any]:
        """`action` is "acknowledge" or "resolve"."""
        status = {"acknowledge": "acknowledged", "resolve": "resolved"}[action]
        with self._lock:
            if incident_id not in self._incidents:
                raise KeyError(f"no incident {incident_id!r} on this page")
            incident, _ = self._incidents[incident_id]
            self._incidents[incident_id] = (incident, status)
        return self._send(incident, status)

    def _send(self, incident: FakeIncident, status: str) -> dict[str, Any]:
        event_type = f"incident.{status}"
        code, body = self.sender.send(incident, event_type, at=utcnow())
        return {"event_type": event_type, "status": code, "body": body}


class SandboxPage:
    """Serves the page for `sandbox`; `pagerduty` and `jobs` enable the PagerDuty and clock controls."""

    def __init__(
        self,
        sandbox: SlackSandbox,
        *,
        pagerduty: PagerDutyControls | None = None,
        jobs: dict[str, ClockJob] | None = None,
        commands: tuple[str, ...] = ("/postmortem",),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.sandbox = sandbox
        self.pagerduty = pagerduty
        self.jobs = dict(jobs or {})
        self.commands = commands
        self.host = host
        self.port = port
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._listeners: set[queue.Queue[dict[str, Any]]] = set()
        self._listeners_lock = threading.Lock()
        self._unsubscribe: Callable[[], None] | None = None

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> SandboxPage:
        """Serve in a background thread (idempotent); returns self."""
        if self._http is not None:
            return self
        self._stopping.clear()
        self._http = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._unsubscribe = self.sandbox.subscribe(self.publish)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-page", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def __enter__(self) -> SandboxPage:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # live events ----------------------------------------------------------------------------

    def publish(self, event: dict[str, Any]) -> None:
        """Send `event` to every open event stream (called on the sandbox's threads: only a put)."""
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener.put(event)

    def _listen(self) -> queue.Queue[dict[str, Any]]:
        listener: queue.Queue[dict[str, Any]] = queue.Queue()
        with self._listeners_lock:
            self._listeners.add(listener)
        return listener

    def _forget(self, listener: queue.Queue[dict[str, Any]]) -> None:
        with self._listeners_lock:
            self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        """How many event streams are open (pages looking at the sandbox)."""
        with self._listeners_lock:
            return len(self._listeners)

    # the JSON API -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the page shows: the workspace snapshot, the people to act as, and the controls."""
        return {
            "workspace": self.sandbox.snapshot(),
            "people": [{"id": u.id, "name": u.name, "real_name": u.real_name} for u in DEMO_HUMANS],
            "commands": list(self.commands),
            "pagerduty": None if self.pagerduty is None else self.pagerduty.listing(),
            "jobs": [{"name": name, "label": job.label} for name, job in self.jobs.items()],
        }

    def act(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run one page action (`POST /api/<action>`); raises PageError for a request that cannot be done."""
        # Every `_do_<action>` method takes the request's arguments and answers with a JSON object.
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, f"_do_{action.replace('/', '_')}", None
        )
        if handler is None:
            raise PageError(f"unknown action {action!r}")
        try:
            return handler(args)
        except SlackError as exc:
            raise PageError(exc.code) from exc
        except (KeyError, ValueError, PermissionError) as exc:
            raise PageError(exc.args[0] if exc.args else str(exc)) from exc

    def _user(self, args: dict[str, Any]) -> str:
        user = _arg(args, "user")
        if user not in {u.id for u in DEMO_HUMANS}:
            raise PageError(f"act as one of {[u.id for u in DEMO_HUMANS]}, not {user!r}")
        return user

    def _do_send(self, args: dict[str, Any]) -> dict[str, Any]:
        """The composer: a slash command (`/postmortem new Disk full`) or a message (in a thread)."""
        user, channel = self._user(args), _arg(args, "channel")
        text = str(args.get("text") or "").strip()
        if not text:
            raise PageError("nothing to send")
        if text.startswith("/") and not args.get("thread_ts"):
            command, _, rest = text.partition(" ")
            if command not in self.commands:
                raise PageError(f"{command} is not a valid command. Try {', '.join(self.commands)}.")
            return _delivered(self.sandbox.slash_command(user, channel, command, rest.strip()))
        typed = client_text(text)
        ts = self.sandbox.post_message(user, channel, typed, thread_ts=args.get("thread_ts") or None)
        return {"ok": True, "ts": ts}

    def _do_join(self, args: dict[str, Any]) -> dict[str, Any]:
        self.sandbox.join(self._user(args), _arg(args, "channel"))
        return {"ok": True}

    def _do_react(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _arg(args, "name").strip(":")
        self.sandbox.add_reaction(self._user(args), _arg(args, "channel"), _arg(args, "ts"), name)
        return {"ok": True}

    def _do_click(self, args: dict[str, Any]) -> dict[str, Any]:
        delivery = self.sandbox.click_button(
            self._user(args),
            _arg(args, "channel"),
            _arg(args, "ts"),
            _arg(args, "action_id"),
            args.get("value"),
        )
        return _delivered(delivery)

    def _do_home(self, args: dict[str, Any]) -> dict[str, Any]:
        return _delivered(self.sandbox.open_app_home(self._user(args)))

    def _fill(self, user: str, args: dict[str, Any]) -> str:
        """Type `values` into the user's modal; without values (an App Home button) nothing to type."""
        view_id = _arg(args, "view_id")
        values = args.get("values") or {}
        if not isinstance(values, dict):
            raise PageError("values must be {block_id: {action_id: value}}")
        if values:
            if self.sandbox.view_owner(view_id) != user:
                raise PageError(f"view {view_id} is not open for {user}")
            self.sandbox.fill_view(view_id, values)
        return view_id

    def _do_view_action(self, args: dict[str, Any]) -> dict[str, Any]:
        """A button in a modal (what was typed so far is kept first, as in Slack) or in the App Home."""
        user = self._user(args)
        view_id = self._fill(user, args)
        delivery = self.sandbox.view_action(
            user, view_id, _arg(args, "action_id"), block_id=args.get("block_id"), value=args.get("value")
        )
        return _delivered(delivery)

    def _do_view_submit(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._user(args)
        view_id = self._fill(user, args)
        delivery = self.sandbox.submit_view(user, view_id)
        if delivery.error == "client_validation" or view_id in self.sandbox.view_errors:
            return {
                "ok": False,
                "error": "the form has errors",
                "errors": self.sandbox.view_errors.get(view_id),
            }
        return _delivered(delivery)

    def _do_view_close(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self._user(args)
        self.sandbox.close_view(user, _arg(args, "view_id"))
        return {"ok": True}

    def _do_pagerduty(self, args: dict[str, Any]) -> dict[str, Any]:
        if self.pagerduty is None:
            raise PageError("no PagerDuty on this page")
        action = _arg(args, "action")
        if action == "trigger":
            sent = self.pagerduty.trigger(str(args.get("title") or ""), str(args.get("service") or ""))
        elif action in ("acknowledge", "resolve"):
            sent = self.pagerduty.move(_arg(args, "incident_id"), action)
        else:
            raise PageError(f"unknown PagerDuty action {action!r}")
        self.publish({"type": "pagerduty", "event_type": sent["event_type"]})
        ok = 200 <= sent["status"] < 300
        return {"ok": ok, "webhook": sent, **({} if ok else {"error": f"the bot answered {sent['status']}"})}

    def _do_clock(self, args: dict[str, Any]) -> dict[str, Any]:
        name = _arg(args, "job")
        job = self.jobs.get(name)
        if job is None:
            raise PageError(f"unknown job {name!r}; have {sorted(self.jobs)}")
        said = job.run()
        self.publish({"type": "clock", "job": name})
        return {"ok": True, "said": said}


def client_text(typed: str) -> str:
    """What the Slack client sends for a typed message: `&`, `<` and `>` escaped, and `@name` of a
    workspace member as a `<@U…>` mention."""
    names = {u.name: u.id for u in DEMO_HUMANS}

    def mention(match: re.Match[str]) -> str:
        return f"<@{names[match[1]]}>" if match[1] in names else match[0]

    return MENTION.sub(mention, escape_mrkdwn(typed))


def _arg(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise PageError(f"{name} is required")
    return value


def _delivered(delivery: Delivery) -> dict[str, Any]:
    """A Delivery as the page reads it: ok, or the reason the bot (or Slack) refused it."""
    if delivery.ok:
        return {"ok": True}
    reason = delivery.error or f"the bot answered HTTP {delivery.status}"
    return {"ok": False, "error": reason}


# the HTTP server ------------------------------------------------------------------------------


def _handler_for(page: SandboxPage) -> type[BaseHTTPRequestHandler]:
    static = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()} if STATIC_DIR.is_dir() else {}

    class Handler(BaseHTTPRequestHandler):
        server_version = "SandboxPage/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("page: " + format, *args)

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in {**SECURITY_HEADERS, **(extra or {})}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8")

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path in ("/", "/index.html"):
                self._static("index.html")
            elif path.startswith("/static/"):
                self._static(path.removeprefix("/static/"))
            elif path == "/api/state":
                self._json(200, page.state())
            elif path == "/api/events":
                self._events()
            elif path.startswith("/files/"):
                self._file(path.split("/")[2])
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _static(self, name: str) -> None:
            file = static.get(name)  # only the files that exist: no path from the request reaches the disk
            if file is None:
                self._send(404, b"not found\n", "text/plain")
                return
            kind = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
            self._send(200, file.read_bytes(), kind)

        def _file(self, file_id: str) -> None:
            meta = page.sandbox.files.get(file_id)
            if meta is None or meta["content"] is None:
                self._send(404, b"not found\n", "text/plain")
                return
            kind = meta.get("mimetype") or "application/octet-stream"
            if kind.startswith(TEXT_FILE_TYPES) or meta["name"].endswith(".md"):
                kind = "text/plain; charset=utf-8"  # shown, never run: a document is not a page
            name = urllib.parse.quote(meta["name"])
            self._send(
                200, meta["content"], kind, {"Content-Disposition": f"inline; filename*=UTF-8''{name}"}
            )

        def _events(self) -> None:
            """Server-Sent Events: one `change` per sandbox change; the page re-reads /api/state."""
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            listener = page._listen()
            try:
                self.wfile.write(b"retry: 1000\nevent: hello\ndata: {}\n\n")
                self.wfile.flush()
                while not page._stopping.is_set():
                    try:
                        event = listener.get(timeout=min(KEEPALIVE_SECONDS, 0.5))
                    except queue.Empty:
                        if self._client_gone():
                            break
                        self._keepalive()
                        continue
                    data = json.dumps(event, default=str)
                    self.wfile.write(f"event: change\ndata: {data}\n\n".encode())
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page went away
            finally:
                page._forget(listener)

        def _client_gone(self) -> bool:
            # A closed tab shows as a readable socket with nothing to read; no write needed to notice it.
            readable, _, _ = select.select([self.connection], [], [], 0)
            try:
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _keepalive(self) -> None:
            # A comment line every KEEPALIVE_SECONDS tells a closed tab apart from a quiet sandbox.
            now = time.monotonic()
            if now - getattr(self, "_last_keepalive", 0.0) >= KEEPALIVE_SECONDS:
                self._last_keepalive = now
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()

        def do_POST(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if not path.startswith("/api/"):
                self._send(404, b"not found\n", "text/plain")
                return
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                self._json(415, {"ok": False, "error": "send application/json"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._json(413, {"ok": False, "error": "body too large"})
                return
            try:
                args = json.loads(self.rfile.read(length) or b"{}")
                if not isinstance(args, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._json(400, {"ok": False, "error": "body must be a JSON object"})
                return
            try:
                result = page.act(path.removeprefix("/api/"), args)
            except PageError as exc:
                self._json(400, {"ok": False, "error": str(exc)})
                return
            self._json(200, result)

    return Handler
