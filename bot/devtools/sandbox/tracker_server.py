"""What the Jira and GitHub stand-ins share: a JSON server over real HTTP with the faults a tracker shows
(down, rate-limiting, dying mid-call), and a sender of signed webhook deliveries to the bot.

Webhooks go out from a thread of their own, like the real trackers' (after the change, never inside the API
call that made it); `drain()` waits until every queued delivery was answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class TrackerError(Exception):
    """Ends a request with this answer (what the real API answers to a bad request)."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.reply = Reply(status, body, headers or {})


@dataclass
class TrackerFaults:
    down: bool = False  # every call answers 503
    rate_limited: int = 0  # the next N calls are refused as rate-limited
    retry_after: int = 30
    delay: float = 0.0  # seconds every call takes (so that replicas overlap)
    # Called after a create is stored and before it is answered (the SIGKILL test kills the bot here).
    after_create: Callable[[], None] | None = None


Handler = Callable[[dict[str, Any], dict[str, str], Any, dict[str, str]], Reply]


class JsonServer:
    """Routes are (method, regex over the path) -> handler(match groups, query, body, headers)."""

    def __init__(self, port: int = 0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults = TrackerFaults()
        self.calls: list[tuple[str, str]] = []  # (method, path) of every API call, in order
        self.lock = threading.RLock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                reply = server._dispatch(
                    self.command, self.path, raw, {k.lower(): v for k, v in self.headers.items()}
                )
                data = b"" if reply.body is None else json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._http = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._thread: threading.Thread | None = None
        self._webhooks: queue.Queue[tuple[str, bytes, dict[str, str]] | None] = queue.Queue()
        self._sender: threading.Thread | None = None
        self.webhook_answers: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern + r"$"), handler))

    def check_auth(self, headers: dict[str, str]) -> None:
        raise NotImplementedError

    def rate_limit_reply(self) -> Reply:
        raise NotImplementedError

    def _dispatch(self, method: str, target: str, raw: bytes, headers: dict[str, str]) -> Reply:
        path, _, query_string = target.partition("?")
        query = dict(urllib.parse.parse_qsl(query_string))
        time.sleep(self.faults.delay)
        with self.lock:
            self.calls.append((method, path))
            if self.faults.down:
                return Reply(503, {"message": "Service Unavailable"})
            if self.faults.rate_limited > 0:
                self.faults.rate_limited -= 1
                return self.rate_limit_reply()
            routed = next(
                (
                    (handler, match)
                    for verb, pattern, handler in self._routes
                    if verb == method and (match := pattern.match(path))
                ),
                None,
            )
            if routed is None:
                return Reply(404, {"message": "Not Found"})
            handler, match = routed
            try:
                self.check_auth(headers)
                body = json.loads(raw) if raw else None
            except TrackerError as exc:
                return exc.reply
            except ValueError:
                return Reply(400, {"message": "Problems parsing JSON"})
            try:
                return handler(match.groupdict(), query, body, headers)
            except TrackerError as exc:
                return exc.reply

    # webhooks ------------------------------------------------------------------------------

    def queue_webhook(
        self, url: str | None, payload: dict[str, Any], headers: dict[str, str], secret: str
    ) -> None:
        if not url:
            return
        body = json.dumps(payload).encode()
        signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        self._webhooks.put((url, body, {**headers, self.signature_header: signature}))

    signature_header = "X-Hub-Signature"

    def _send_webhooks(self) -> None:
        while (item := self._webhooks.get()) is not None:
            url, body, headers = item
            self.webhook_answers.append(post(url, body, headers))
            self._webhooks.task_done()
        self._webhooks.task_done()

    def drain(self) -> None:
        """Wait until every queued webhook delivery was answered."""
        self._webhooks.join()

    def start(self) -> JsonServer:
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send_webhooks, daemon=True)
        self._sender.start()
        return self

    def stop(self) -> None:
        self._webhooks.put(None)
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> JsonServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST a delivery; the HTTP status it got (0 when the bot could not be reached)."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0
