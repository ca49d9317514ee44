"""A local, strict stand-in for the part of PagerDuty's REST API v2 the bot calls: `GET /users/{id}`.

Strict where PagerDuty is: the key goes in `Authorization: Token token=<key>` (anything else, 401 with
PagerDuty's error object, code 2006); an unknown user is 404 (code 2100); `rate_limit(n)` answers the
next n requests 429 (code 2020) with a `Retry-After`, as PagerDuty does past its per-key request rate.
Every request is recorded in `requests` (method, path, headers) for tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class PagerDutyUser:
    id: str
    name: str
    email: str

    def to_api(self, base: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "user",
            "summary": self.name,
            "name": self.name,
            "email": self.email,
            "self": f"{base}/users/{self.id}",
            "html_url": f"https://sandbox.pagerduty.example/users/{self.id}",
            "role": "user",
            "time_zone": "Etc/UTC",
        }


def _error(message: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "code": code}}


class PagerDutyApiStandIn:
    def __init__(self, *, token: str, users: list[PagerDutyUser]) -> None:
        self.token = token
        self.users = {user.id: user for user in users}
        self.requests: list[dict[str, Any]] = []
        self._rate_limited = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def rate_limit(self, requests: int) -> None:
        with self._lock:
            self._rate_limited = requests

    def start(self) -> PagerDutyApiStandIn:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body, headers = stand_in._answer(self.path, dict(self.headers.items()))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="pagerduty-api", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> PagerDutyApiStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests.append({"method": "GET", "path": path, "headers": headers})
            if headers.get("Authorization") != f"Token token={self.token}":
                return 401, _error("Unauthenticated", 2006), {}
            if self._rate_limited:
                self._rate_limited -= 1
                return 429, _error("Rate Limit Exceeded", 2020), {"Retry-After": "1"}
        parts = path.split("?")[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] != "users":
            return 404, _error("Not Found", 2100), {}
        user = self.users.get(parts[1])
        if user is None:
            return 404, _error("Not Found", 2100), {}
        return 200, {"user": user.to_api(self.url)}, {}
