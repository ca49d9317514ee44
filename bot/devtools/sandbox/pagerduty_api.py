"""A local, strict stand-in for the part of PagerDuty's REST API v2 the bot calls: `GET /users/{id}` and
`GET /services/{id}`.

Strict where PagerDuty is: the key goes in `Authorization: Token token=<key>` (anything else, 401 with
PagerDuty's error object, code 2006); an unknown user or service is 404 (code 2100); an `include[]` value
PagerDuty does not offer for services is 400 (code 2001, "Invalid Input Provided"). A service's `teams`
and `escalation_policy` are references (`summary`, no `name`) unless expanded with `include[]=teams` /
`include[]=escalation_policies`, as PagerDuty answers. `rate_limit(n)` answers the next n requests 429
(code 2020) with a `Retry-After`, as PagerDuty does past its per-key request rate; `fail(n)` answers them
500 (an outage), `recover()` ends that. Every request is recorded in `requests` (method, path, headers,
the status answered) for tests."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# What PagerDuty's GET /services/{id} accepts in `include[]`.
SERVICE_INCLUDES = {"escalation_policies", "teams", "integrations", "auto_pause_notifications_parameters"}


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


@dataclass(frozen=True)
class PagerDutyService:
    id: str
    name: str
    # (id, name) of each team, in PagerDuty's order, and of the escalation policy.
    teams: tuple[tuple[str, str], ...]
    escalation_policy: tuple[str, str]

    def to_api(self, base: str, include: set[str]) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "service",
            "summary": self.name,
            "name": self.name,
            "self": f"{base}/services/{self.id}",
            "html_url": f"https://sandbox.pagerduty.example/service-directory/{self.id}",
            "status": "active",
            "teams": [_object("team", team, base, "teams" in include) for team in self.teams],
            "escalation_policy": _object(
                "escalation_policy", self.escalation_policy, base, "escalation_policies" in include
            ),
        }


def _object(kind: str, id_name: tuple[str, str], base: str, expanded: bool) -> dict[str, Any]:
    """A team or an escalation policy: the object itself when `include[]` expands it, else a reference."""
    id_, name = id_name
    path = "teams" if kind == "team" else "escalation_policies"
    found: dict[str, Any] = {
        "id": id_,
        "type": kind if expanded else f"{kind}_reference",
        "summary": name,
        "self": f"{base}/{path}/{id_}",
        "html_url": f"https://sandbox.pagerduty.example/{path}/{id_}",
    }
    if expanded:
        found["name"] = name
    return found


def _error(message: str, code: int) -> dict[str, Any]:
    return {"error": {"message": message, "code": code}}


class PagerDutyApiStandIn:
    def __init__(
        self,
        *,
        token: str,
        users: Sequence[PagerDutyUser],
        services: Sequence[PagerDutyService] = (),
    ) -> None:
        self.token = token
        self.users = {user.id: user for user in users}
        self.services = {service.id: service for service in services}
        self.requests: list[dict[str, Any]] = []
        # The next requests' failures, in order: (status, PagerDuty error, headers).
        self._failures: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def rate_limit(self, requests: int) -> None:
        with self._lock:
            self._failures = [(429, _error("Rate Limit Exceeded", 2020), {"Retry-After": "1"})] * requests

    def fail(self, requests: int) -> None:
        with self._lock:
            self._failures = [(500, _error("Internal Server Error", 2000), {})] * requests

    def recover(self) -> None:
        """Answer again: the failures still to come are cancelled."""
        with self._lock:
            self._failures = []

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
        request: dict[str, Any] = {"method": "GET", "path": path, "headers": headers}
        with self._lock:
            self.requests.append(request)
        answer = self._respond(path, headers)
        request["status"] = answer[0]
        return answer

    def _respond(self, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            if headers.get("Authorization") != f"Token token={self.token}":
                return 401, _error("Unauthenticated", 2006), {}
            if self._failures:
                return self._failures.pop(0)
        url = urlsplit(path)
        parts = url.path.strip("/").split("/")
        include = set(parse_qs(url.query).get("include[]", []))
        if len(parts) == 2 and parts[0] == "services":
            if not include <= SERVICE_INCLUDES:
                return 400, _error("Invalid Input Provided", 2001), {}
            service = self.services.get(parts[1])
            if service is not None:
                return 200, {"service": service.to_api(self.url, include)}, {}
        elif len(parts) == 2 and parts[0] == "users":
            user = self.users.get(parts[1])
            if user is not None:
                return 200, {"user": user.to_api(self.url)}, {}
        return 404, _error("Not Found", 2100), {}
