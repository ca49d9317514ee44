"""``SlackSandbox``: a local, strict stand-in for Slack, served over real HTTP (docs/architecture.md,
"The sandbox")."""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from .channel_life import ChannelLifeMixin
from .faults import Faults
from .rate_limits import RateLimits
from .socket_mode import SocketModeServer
from .state import APP_ID, BOT_ID, BOT_USER, DEMO_HUMANS, TEAM_ID, SlackError
from .transcript import render_transcript
from .webapi import APP_TOKEN_METHODS, METHODS

T = TypeVar("T")


class Unreachable(Exception):
    """The "unreachable" fault: the HTTP handler closes the connection without answering."""


class ManualClock:
    """A clock for tests: starts at the real time (so signatures stay fresh) and moves on `advance`."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


def _parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """Arguments from a JSON, form or multipart body: whatever slack_sdk may send."""
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("JSON body must be an object")
        return data
    if content_type.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        args: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if not isinstance(payload, bytes):
                raise ValueError(f"form field {name!r} is a nested message, not a value")
            args[str(name)] = payload if part.get_filename() else payload.decode("utf-8")
        return args
    return dict(urllib.parse.parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


class _HTTPServer(ThreadingHTTPServer):
    # slack_sdk opens a connection per call; the default listen backlog (5) drops the SYNs of a burst
    # of 16 concurrent calls, and each dropped one waits a 1 s retransmit (seen as p99 ~1 s in B2).
    request_queue_size = 128


class SlackSandbox(ChannelLifeMixin):
    """A local Slack workspace the bot talks to through the real ``slack_sdk.WebClient``.

    Usage::

        with SlackSandbox(signing_secret="s", bot_url="http://127.0.0.1:3000/slack/events") as sb:
            client = WebClient(base_url=sb.api_url, token=sb.bot_token)
            channel = sb.create_channel("inc-1", members=["U0ALICE"])
            sb.slash_command("U0ALICE", channel, "/postmortem", "new Disk full")

    The Web API is strict like Slack (see README in this package for the rules and the one house
    rule that is stricter); faults can be switched on through ``sb.faults``.
    """

    def __init__(
        self,
        signing_secret: str = "sandbox-signing-secret",
        bot_token: str = "xoxb-sandbox",
        app_token: str = "xapp-sandbox",
        bot_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] | None = None,
        ack_timeout: float = 3.0,
    ) -> None:
        super().__init__(clock=clock or time.time)
        self.signing_secret = signing_secret
        self.bot_token = bot_token
        self.app_token = app_token
        self.bot_url = bot_url
        self.host = host
        self.port = port
        # Slack gives an app 3 s to answer; tests on a slow machine may raise it.
        self.ack_timeout = ack_timeout
        self.faults = Faults()
        # Slack's rate limits: `sb.rate_limits.enforced = True` switches them on.
        self.rate_limits = RateLimits(self.clock)
        self._socket = SocketModeServer(host)
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # lifecycle ------------------------------------------------------------------------------

    def start(self) -> SlackSandbox:
        """Serve the Web API and Socket Mode in background threads; returns self."""
        if self._http is not None:
            return self
        self._stopping.clear()
        self._http = _HTTPServer((self.host, self.port), _handler_for(self))
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.01}, name="sandbox-http", daemon=True
        )
        self._http_thread.start()
        self._socket.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent). Calls held back by a fault are released."""
        self._stopping.set()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        self._socket.stop()

    def __enter__(self) -> SlackSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """What to pass as ``base_url`` to ``slack_sdk.WebClient``."""
        return f"{self.url}/api/"

    def _base_url(self) -> str:
        return self.url

    def _socket_url(self) -> str:
        return self._socket.new_url()

    def disconnect_socket_mode(self, reason: str = "warning") -> None:
        """Send Slack's ``disconnect`` message to every Socket Mode client and close the connections.

        Clients with auto-reconnect will call apps.connections.open again, as with Slack.
        """
        self._socket.disconnect_all(reason)

    @property
    def socket_mode_connections(self) -> int:
        """How many Socket Mode clients are connected now."""
        return self._socket.connected

    # Web API dispatch -----------------------------------------------------------------------

    def handle_api(
        self, method: str, args: dict[str, Any], token: str | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Answer one Web API call: (HTTP status, JSON body, extra headers). Used by the HTTP server."""
        args = {k: v for k, v in args.items() if k != "token"}
        delay = self.faults.delay_for(method)
        if delay:
            self._stopping.wait(delay)
        retry_after = self.rate_limits.refuse(method, args)
        if retry_after is not None:
            self._record(method, args, "ratelimited", 429)
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        fault = self.faults.pick(method) if method in METHODS else None
        if fault is not None and fault.kind == "applied_timeout":
            self._answer_api(method, args, token)  # it happens; only the answer is lost
        if fault is not None:
            if fault.kind in ("timeout", "applied_timeout"):
                self._stopping.wait(fault.timeout_seconds)
            self._record(method, args, fault.error, fault.status)
            if fault.kind == "unreachable":
                raise Unreachable(method)
            headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "ratelimited" else {}
            return fault.status, {"ok": False, "error": fault.error}, headers
        return 200, self._answer_api(method, args, token), {}

    def _answer_api(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        try:
            handler = METHODS.get(method)
            if handler is None:
                raise SlackError("unknown_method")
            self._check_token(method, token)
            with self._lock:
                result = handler(self, args)
            body = {"ok": True, **result}
            self._record(method, args, None, 200)
        except SlackError as exc:
            body = {"ok": False, "error": exc.code, **exc.extra}
            self._record(method, args, exc.code, 200)
        self._flush()
        return body

    def _check_token(self, method: str, token: str | None) -> None:
        if not token:
            raise SlackError("not_authed")
        wanted = self.app_token if method in APP_TOKEN_METHODS else self.bot_token
        if token == wanted:
            return
        if token in (self.app_token, self.bot_token):
            raise SlackError("not_allowed_token_type")
        raise SlackError("invalid_auth")

    def _record(self, method: str, args: dict[str, Any], error: str | None, status: int) -> None:
        entry = {
            "method": method,
            "args": _jsonable(args),
            "ok": error is None,
            "error": error,
            "status": status,
            "at": self.clock(),
        }
        with self._lock:
            self._calls.append(entry)

    # state accessors ------------------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every Web API call (and response_url POST), oldest first: method, args, ok, error, status, at."""
        with self._lock:
            return copy.deepcopy(self._calls)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """The calls to one method, oldest first."""
        return [c for c in self.calls if c["method"] == method]

    def create_channel(self, name: str, is_private: bool = False, members: list[str] | None = None) -> str:
        """Create a channel as a person would; `members` defaults to the demo humans (not the bot)."""
        with self._lock:
            if any(c.name == name for c in self._channels.values()):
                raise ValueError(f"channel #{name} exists")
            member_ids = list(members) if members is not None else [u.id for u in DEMO_HUMANS]
            for user_id in member_ids:
                self._user(user_id)
            channel = self._create_channel(name, is_private, member_ids, member_ids[0] if member_ids else "")
        self._flush()
        return channel.id

    def channel_id(self, name: str) -> str:
        """The id of channel `name` ("inc-1" or "#inc-1")."""
        return self._channel(name).id

    def members(self, channel: str) -> list[str]:
        with self._lock:
            return list(self._channel(channel).members)

    def messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        """Messages of a channel (id or name), oldest first.

        `thread_ts` None: top-level messages only; a ts: that thread (parent first); "all": everything.
        Each dict has at least ts, user, bot_id, text, blocks, thread_ts, metadata, reactions, files,
        edited, subtype (None/[] when absent).
        """
        with self._lock:
            channel_id = self._channel(channel).id
            stored = self._messages.get(channel_id, [])
            if thread_ts == "all":
                chosen = stored
            elif thread_ts is None:
                chosen = [
                    m
                    for m in stored
                    if m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast"
                ]
            else:
                chosen = [m for m in stored if m["ts"] == thread_ts or m.get("thread_ts") == thread_ts]
            out = []
            for message in chosen:
                full: dict[str, Any] = {
                    "user": None,
                    "bot_id": None,
                    "text": "",
                    "blocks": [],
                    "thread_ts": None,
                    "metadata": None,
                    "reactions": [],
                    "files": [],
                    "edited": None,
                    "subtype": None,
                    "channel": channel_id,
                }
                full.update(copy.deepcopy(message))
                out.append(full)
            return out

    def direct_messages(self, user_id: str, thread_ts: str | None = "all") -> list[dict[str, Any]]:
        """What the bot sent `user_id` in their DM with it (threads included unless `thread_ts` says)."""
        with self._lock:
            channel_id = self._im_for(user_id).id
        return self.messages(channel_id, thread_ts)

    def ephemerals(self, channel: str | None = None, user: str | None = None) -> list[dict[str, Any]]:
        """Ephemeral messages (chat.postEphemeral, response_url), optionally for one channel/user."""
        with self._lock:
            channel_id = self._channel(channel).id if channel else None
            return [
                copy.deepcopy(e)
                for e in self._ephemerals
                if channel_id in (None, e["channel"]) and user in (None, e["to_user"])
            ]

    @property
    def views(self) -> dict[str, dict[str, Any]]:
        """Open modals by view id, in Slack's view shape (with ``state.values``)."""
        with self._lock:
            return copy.deepcopy(self._views)

    def view_owner(self, view_id: str) -> str | None:
        with self._lock:
            return self._view_owner.get(view_id)

    def open_view_for(self, user_id: str) -> dict[str, Any] | None:
        """The modal on top of `user_id`'s stack, if any."""
        with self._lock:
            stack = self._stacks.get(user_id) or []
            return copy.deepcopy(self._views[stack[-1]]) if stack else None

    @property
    def view_errors(self) -> dict[str, dict[str, str]]:
        """Inline errors shown in open modals: {view_id: {block_id: message}}."""
        with self._lock:
            return copy.deepcopy(self._view_errors)

    def app_home(self, user_id: str) -> dict[str, Any] | None:
        """The App Home view published for `user_id`."""
        with self._lock:
            return copy.deepcopy(self._home.get(user_id))

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Uploaded files by id: metadata plus ``content`` (bytes)."""
        with self._lock:
            return {
                fid: {**copy.deepcopy(meta), "content": self._file_content.get(fid)}
                for fid, meta in self._files.items()
            }

    def transcript(self, channel: str, tz: Any = None) -> str:
        """A readable plain-text rendering of a channel, threads indented."""
        with self._lock:
            ch = self._channel(channel)
            names = {u.id: u.name for u in self.users.values()}
            names.update({c.id: c.name for c in self._channels.values()})
            return render_transcript(ch.name, self.messages(ch.id, "all"), names, tz)

    def snapshot(self) -> dict[str, Any]:
        """The whole workspace as JSON-serializable data (for a browser page or a debugging dump)."""
        with self._lock:
            return {
                "team": {
                    "id": TEAM_ID,
                    "name": "Sandbox",
                    "bot_user_id": BOT_USER.id,
                    "bot_id": BOT_ID,
                    "app_id": APP_ID,
                },
                "users": [
                    {"id": u.id, "name": u.name, "real_name": u.real_name, "is_bot": u.is_bot}
                    for u in self.users.values()
                ],
                "channels": [
                    {
                        "id": c.id,
                        "name": c.name,
                        "is_private": c.is_private,
                        "is_im": c.is_im,
                        "im_user": c.im_user,
                        "members": list(c.members),
                        "is_archived": c.is_archived,
                    }
                    for c in self._channels.values()
                ],
                "messages": {cid: copy.deepcopy(msgs) for cid, msgs in self._messages.items()},
                "ephemerals": copy.deepcopy(self._ephemerals),
                "views": copy.deepcopy(self._views),
                "view_owners": dict(self._view_owner),
                "view_stacks": {u: list(s) for u, s in self._stacks.items() if s},
                "view_errors": copy.deepcopy(self._view_errors),
                "home": copy.deepcopy(self._home),
                "files": {
                    fid: self._file_summary(m) for fid, m in self._files.items() if m["state"] == "complete"
                },
            }

    # waiting --------------------------------------------------------------------------------

    def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 20.0,
        interval: float = 0.02,
        message: str | Callable[[], str] = "",
    ) -> T:
        """Poll `predicate` until it returns something truthy, and return that.

        Raises TimeoutError with `message` and the last Web API calls, which usually say why.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                detail = message() if callable(message) else message
                recent = "\n".join(
                    f"  {c['method']} ok={c['ok']} error={c['error']}" for c in self.calls[-8:]
                )
                raise TimeoutError(
                    f"condition not met within {timeout}s. {detail}\n"
                    f"last Web API calls:\n{recent or '  (none)'}"
                )
            time.sleep(interval)

    def wait_for_message(
        self, channel: str, predicate: Callable[[dict[str, Any]], Any] = bool, timeout: float = 20.0
    ) -> dict[str, Any]:
        """The first message (threads included) of `channel` matching `predicate`, waiting for it."""

        def find() -> dict[str, Any] | None:
            return next((m for m in self.messages(channel, "all") if predicate(m)), None)

        return self.wait_for(
            find,
            timeout=timeout,
            message=lambda: f"no matching message in {channel}:\n{self.transcript(channel)}",
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _handler_for(sandbox: SlackSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "SlackSandbox/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the call log says it all
            return

        def _send(
            self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _send_json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json; charset=utf-8", headers)

        def _read(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _api(self, raw: bytes) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            method = parsed.path[len("/api/") :]
            try:
                args: dict[str, Any] = dict(urllib.parse.parse_qsl(parsed.query, keep_blank_values=True))
                args.update(_parse_body(self.headers.get("Content-Type") or "", raw))
            except ValueError:
                self._send_json(200, {"ok": False, "error": "invalid_json"})
                return
            auth = self.headers.get("Authorization") or ""
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else args.get("token")
            try:
                status, body, headers = sandbox.handle_api(method, args, token)
                self._send_json(status, body, headers)
            except Unreachable:
                self.close_connection = True  # no status line at all: the client sees the connection drop
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a "timeout" fault): nothing to answer

        def do_POST(self) -> None:
            raw = self._read()
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/api/"):
                self._api(raw)
            elif path.startswith("/upload/"):
                status, text = sandbox._receive_upload(
                    path.rsplit("/", 1)[1], raw, self.headers.get("Content-Type")
                )
                self._send(status, text.encode(), "text/plain; charset=utf-8")
            elif path.startswith("/response/"):
                try:
                    body = json.loads(raw.decode("utf-8")) if raw else None
                except ValueError:
                    body = None
                status, text = sandbox._respond(path.rsplit("/", 1)[1], body)
                self._send(status, text.encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/api/"):
                self._api(b"")
            elif path.startswith("/files/"):
                parts = path.split("/")
                file_id = parts[2] if len(parts) > 2 else ""
                files = sandbox.files
                meta = files.get(file_id)
                if meta is None or meta["content"] is None:
                    self._send(404, b"not found\n", "text/plain")
                else:
                    self._send(200, meta["content"], meta.get("mimetype") or "application/octet-stream")
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

    return Handler
