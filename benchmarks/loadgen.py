"""A small HTTP/1.1 load generator: N keep-alive connections on one selector loop, in its own process.

Why not wrk: every Slack request must carry a fresh signature (timestamp within 5 minutes) and, for
`/postmortem`, a trigger_id that the sandbox issued less than 3 s earlier and that is used once. wrk's Lua
has no HMAC and cannot fetch trigger ids, so each request is built here. Why one selector loop rather than
16 threads: a thread that waits for the GIL after its answer arrived would add that wait to the latency;
here the loop stamps the time as soon as the bytes are read, and a loop turn costs tens of microseconds.
The loop is closed (each connection sends its next request when the previous answer is complete), like
wrk; `rate` switches to an open loop that sends on a fixed schedule (B1's 50 commands/s, B2's burst, B4's 50
webhooks/s). In the open loop each request's latency (and its `sent_wall` record) counts from its scheduled
instant, not from when a free connection sent it, so a server that falls behind cannot hide the queue
(coordinated omission).

Run as `python -m benchmarks.loadgen SPEC_JSON`; prints one JSON result on stdout.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import selectors
import socket
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from typing import Any

TRIGGER_MAX_AGE = 1.5  # seconds; the sandbox refuses a trigger_id older than 3 s, as Slack does


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarize_ms(seconds: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/max in milliseconds."""
    as_ms = [s * 1000 for s in seconds]
    return {
        "p50_ms": _round(percentile(as_ms, 50)),
        "p90_ms": _round(percentile(as_ms, 90)),
        "p99_ms": _round(percentile(as_ms, 99)),
        "max_ms": _round(max(as_ms) if as_ms else None),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class TriggerPool:
    """Fresh trigger ids from the benchmark sandbox's control port, fetched ahead on a thread."""

    def __init__(self, control_url: str, user: str, batch: int = 64) -> None:
        self._url = f"{control_url}/bench/triggers?{urllib.parse.urlencode({'user': user, 'n': batch})}"
        self._pool: deque[tuple[float, str]] = deque()
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, daemon=True)
        self._low = batch

    def start(self) -> TriggerPool:
        self._fetch()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()

    def _fetch(self) -> None:
        with urllib.request.urlopen(urllib.request.Request(self._url, method="POST"), timeout=10) as r:
            ids = json.loads(r.read())["trigger_ids"]
        now = time.monotonic()
        with self._lock:
            self._pool.extend((now, trigger_id) for trigger_id in ids)

    def _fill(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait(0.05)
            self._wanted.clear()
            with self._lock:
                cutoff = time.monotonic() - TRIGGER_MAX_AGE
                while self._pool and self._pool[0][0] < cutoff:
                    self._pool.popleft()
                short = len(self._pool) < self._low
            if short and not self._stop.is_set():
                self._fetch()

    def take(self) -> str:
        while True:
            with self._lock:
                cutoff = time.monotonic() - TRIGGER_MAX_AGE
                while self._pool and self._pool[0][0] < cutoff:
                    self._pool.popleft()
                if self._pool:
                    if len(self._pool) < self._low:
                        self._wanted.set()
                    return self._pool.popleft()[1]
            self._wanted.set()
            time.sleep(0.001)


class RequestFactory:
    """Builds one signed request (raw bytes) and a tag to correlate it with what the sandbox saw."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host, self.port = spec["host"], spec["port"]
        self.path = spec["path"]
        self.kind = spec["kind"]
        self._counter = itertools.count(1)
        self.triggers: TriggerPool | None = None
        if self.kind in ("slack_command", "block_action") and spec.get("control_url"):
            self.triggers = TriggerPool(spec["control_url"], spec["user_id"])

    def build(self) -> tuple[bytes, str]:
        n = next(self._counter)
        if self.kind == "slack_command":
            tag = self.triggers.take() if self.triggers else f"bench-trigger-{n}"
            body = urllib.parse.urlencode(
                {
                    "token": "unused",
                    "team_id": "T0SANDBOX",
                    "team_domain": "sandbox",
                    "channel_id": self.spec["channel_id"],
                    "channel_name": self.spec.get("channel_name", "inc-bench"),
                    "user_id": self.spec["user_id"],
                    "user_name": "bench",
                    "command": "/postmortem",
                    "text": self.spec.get("text", ""),
                    "api_app_id": "A0SANDBOX",
                    "is_enterprise_install": "false",
                    "response_url": f"http://127.0.0.1:9/response/{n}",
                    "trigger_id": tag,
                }
            ).encode()
            headers = self._slack_headers(body)
        elif self.kind == "block_action":
            body, tag = self._block_action()
            headers = self._slack_headers(body)
        elif self.kind == "pagerduty":
            body, tag = pagerduty_body(self.spec, n)
            signature = "v1=" + hmac.new(self.spec["secret"].encode(), body, hashlib.sha256).hexdigest()
            headers = {"Content-Type": "application/json", "X-PagerDuty-Signature": signature}
        elif self.kind == "get":
            body, tag = b"", str(n)
            headers = {}
        else:
            raise ValueError(f"unknown request kind {self.kind!r}")
        method = "GET" if self.kind == "get" else "POST"
        head = f"{method} {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        return head.encode() + body, tag

    def _slack_headers(self, body: bytes) -> dict[str, str]:
        timestamp = str(int(time.time()))
        base = b"v0:" + timestamp.encode() + b":" + body
        signature = "v0=" + hmac.new(self.spec["secret"].encode(), base, hashlib.sha256).hexdigest()
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
        }

    def _block_action(self) -> tuple[bytes, str]:
        """A click on a message button (`action_id`, `value`), as Slack posts it: its own trigger id."""
        assert self.triggers is not None, "a click needs trigger ids from the sandbox"
        trigger_id = self.triggers.take()
        user = {"id": self.spec["user_id"], "username": "bench", "team_id": "T0SANDBOX"}
        payload = {
            "type": "block_actions",
            "team": {"id": "T0SANDBOX", "domain": "sandbox"},
            "user": user,
            "api_app_id": "A0SANDBOX",
            "token": "unused",
            "trigger_id": trigger_id,
            "container": {"type": "message", "channel_id": self.spec["channel_id"], "message_ts": "1.000001"},
            "channel": {"id": self.spec["channel_id"], "name": "inc-bench"},
            "actions": [
                {
                    "type": "button",
                    "action_id": self.spec["action_id"],
                    "block_id": "bench",
                    "value": self.spec["value"],
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return body, trigger_id


def pagerduty_body(spec: dict[str, Any], n: int) -> tuple[bytes, str]:
    """A V3 webhook delivery. `event_types` cycles per incident (e.g. triggered then resolved), so each
    incident gets its whole life; the tag is "<incident number>:<event type>"."""
    event_types: list[str] = spec.get("event_types") or ["incident.triggered"]
    run = spec.get("run_id", "bench")
    incident_n, step = divmod(n - 1, len(event_types))
    incident_n += spec.get("number_base", 0)
    incident_id = f"Q{run}{incident_n:07d}"
    event_type = event_types[step]
    now = time.time()
    occurred = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    status = event_type.removeprefix("incident.")
    payload = {
        "event": {
            "id": f"E{run}{incident_n:07d}{event_type.removeprefix('incident.')[:3]}",
            "event_type": event_type,
            "resource_type": "incident",
            "occurred_at": occurred,
            "agent": {"id": "PBENCH1", "type": "user_reference", "summary": "Bench Responder"},
            "client": None,
            "data": {
                "id": incident_id,
                "type": "incident",
                "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                "html_url": f"https://bench.pagerduty.com/incidents/{incident_id}",
                "number": incident_n + 1,
                "status": "resolved" if status == "resolved" else status,
                "incident_key": incident_id,
                "created_at": occurred,
                "title": f"Bench incident {incident_n + 1}",
                "service": {
                    "id": "PSVC001",
                    "type": "service_reference",
                    "summary": "bench-api",
                    "html_url": "https://bench.pagerduty.com/services/PSVC001",
                },
                "assignees": [],
                "escalation_policy": {"id": "PEP0001", "type": "escalation_policy_reference"},
                "teams": [],
                "priority": None,
                "urgency": "high",
                "conference_bridge": None,
                "resolve_reason": None,
            },
        }
    }
    return json.dumps(payload).encode(), f"{incident_n + 1}:{event_type}"


@dataclass
class Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    started: float = 0.0
    sent_wall: float = 0.0
    tag: str = ""
    busy: bool = False


def _response_complete(buffer: bytearray) -> tuple[int, int] | None:
    """(status, total length) once a whole response with Content-Length is in `buffer`."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = 0
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    total = end + 4 + length
    return (status, total) if len(buffer) >= total else None


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive `connections` keep-alive connections for `duration` seconds (after `warmup`)."""
    factory = RequestFactory(spec)
    if factory.triggers:
        factory.triggers.start()
    connections: int = spec.get("connections", 16)
    duration: float = spec["duration"]
    warmup: float = spec.get("warmup", 0.0)
    rate: float | None = spec.get("rate")
    max_requests: int | None = spec.get("max_requests")
    selector = selectors.DefaultSelector()
    conns = []
    for _ in range(connections):
        sock = socket.create_connection((factory.host, factory.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = Connection(sock)
        conns.append(conn)
        selector.register(sock, selectors.EVENT_READ, conn)

    latencies: list[float] = []
    records: list[tuple[str, float, float, int]] = []  # tag, wall time sent, latency, status
    statuses: dict[int, int] = {}
    begin, wall_begin = time.monotonic(), time.time()
    measure_from = begin + warmup
    stop_at = measure_from + duration
    sent = 0
    scheduled = 0

    def send(conn: Connection) -> None:
        nonlocal sent
        raw, tag = factory.build()
        conn.tag, conn.busy, conn.buffer = tag, True, bytearray()
        if rate is None:
            conn.started, conn.sent_wall = time.monotonic(), time.time()
        else:  # the open loop counts from the request's place in the schedule
            conn.started = begin + sent / rate
            conn.sent_wall = wall_begin + sent / rate
        conn.sock.sendall(raw)  # requests are small: the kernel buffer takes them whole
        sent += 1

    def may_send(now: float) -> bool:
        if now >= stop_at or (max_requests is not None and sent >= max_requests):
            return False
        return rate is None or sent < scheduled

    if rate is None:
        for conn in conns:
            send(conn)
    while True:
        now = time.monotonic()
        if rate is not None:
            scheduled = int((now - begin) * rate) + 1
            for conn in conns:
                if not conn.busy and may_send(now):
                    send(conn)
        finished_sending = now >= stop_at or (max_requests is not None and sent >= max_requests)
        if now >= stop_at + 30 or (finished_sending and not any(c.busy for c in conns)):
            break
        timeout = 0.002 if rate is not None else 0.5
        for key, _ in selector.select(timeout):
            conn = key.data
            chunk = conn.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed a keep-alive connection")
            conn.buffer += chunk
            done = _response_complete(conn.buffer)
            if done is None:
                continue
            finished = time.monotonic()
            status = done[0]
            conn.busy = False
            if conn.started >= measure_from:
                latencies.append(finished - conn.started)
                statuses[status] = statuses.get(status, 0) + 1
                records.append((conn.tag, conn.sent_wall, finished - conn.started, status))
            if rate is None and may_send(finished):
                send(conn)
    measured = min(time.monotonic(), stop_at) - measure_from
    if factory.triggers:
        factory.triggers.stop()
    for conn in conns:
        conn.sock.close()
    ok = sum(count for status, count in statuses.items() if 200 <= status < 300)
    return {
        "requests": len(latencies),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(measured, 3),
        "rps": round(len(latencies) / measured, 1) if measured > 0 else None,
        **summarize_ms(latencies),
        "sent": sent,  # warm-up included: what the server's CPU over the whole run served
        "records": records if spec.get("keep_records") else [],
    }


def main() -> int:
    spec = json.loads(sys.argv[1])
    json.dump(run(spec), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
