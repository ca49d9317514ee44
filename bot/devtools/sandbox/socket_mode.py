"""Socket Mode: the WebSocket end Slack offers apps that cannot receive HTTP.

``apps.connections.open`` hands out a one-time URL on this server; a client connects, gets a
``hello``, then receives envelopes and acks each one with ``{"envelope_id": ..., "payload": ...}``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from .state import APP_ID


@dataclass
class _PendingAck:
    done: threading.Event = field(default_factory=threading.Event)
    payload: Any = None


class SocketModeServer:
    """A WebSocket server in a background thread that speaks Slack's Socket Mode protocol."""

    def __init__(self, host: str) -> None:
        self._host = host
        self._lock = threading.Lock()
        self._tickets: set[str] = set()
        self._connections: list[ServerConnection] = []
        self._pending: dict[str, _PendingAck] = {}
        self._envelopes = itertools.count(1)
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> None:
        self._server = serve(
            self._handle,
            self._host,
            0,
            process_request=self._check_ticket,
            compression=None,
            ping_interval=None,
            close_timeout=1,  # a client that never answers our close frame must not hold stop() up
        )
        self.port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sandbox-socket-mode", daemon=True
        )
        self._thread.start()

    def disconnect_all(self, reason: str = "warning") -> None:
        """Tell every client to go away (Slack's ``disconnect`` message), then close the sockets."""
        with self._lock:
            # Forget them now, so nothing is sent to a closing socket and the count is already right.
            connections, self._connections = self._connections, []
        for connection in connections:
            with contextlib.suppress(ConnectionClosed):
                connection.send(
                    json.dumps({"type": "disconnect", "reason": reason, "debug_info": {"host": "sandbox"}})
                )
            connection.close()

    def stop(self) -> None:
        if self._server is None:
            return
        self.disconnect_all()
        self._server.shutdown()
        if self._thread:
            self._thread.join(timeout=5)
        self._server = None

    def new_url(self) -> str:
        """A one-time connection URL, as ``apps.connections.open`` returns it."""
        ticket = secrets.token_hex(16)
        with self._lock:
            self._tickets.add(ticket)
        return f"ws://{self._host}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"

    @property
    def connected(self) -> int:
        with self._lock:
            return len(self._connections)

    def _check_ticket(self, connection: ServerConnection, request: Request) -> Response | None:
        ticket = request.path.partition("ticket=")[2].partition("&")[0]
        with self._lock:
            if ticket in self._tickets:
                self._tickets.discard(ticket)
                return None
        return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid or used ticket\n")

    def _handle(self, connection: ServerConnection) -> None:
        with self._lock:
            self._connections.append(connection)
            count = len(self._connections)
        try:
            connection.send(
                json.dumps(
                    {
                        "type": "hello",
                        "num_connections": count,
                        "debug_info": {
                            "host": "sandbox",
                            "build_number": 1,
                            "approximate_connection_time": 3600,
                        },
                        "connection_info": {"app_id": APP_ID},
                    }
                )
            )
            for raw in connection:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                envelope_id = message.get("envelope_id") if isinstance(message, dict) else None
                with self._lock:
                    pending = self._pending.get(envelope_id) if envelope_id else None
                if pending is not None:
                    pending.payload = message.get("payload")
                    pending.done.set()
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)

    def send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        timeout: float,
        retry_attempt: int = 0,
        retry_reason: str = "",
    ) -> tuple[str, bool, Any] | None:
        """Send an envelope to the newest connection and wait for its ack.

        Returns (envelope_id, acked, ack payload), or None when no client is connected.
        """
        with self._lock:
            if not self._connections:
                return None
            connection = self._connections[-1]
            envelope_id = f"sandbox-envelope-{next(self._envelopes)}"
            pending = self._pending[envelope_id] = _PendingAck()
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": retry_reason,
        }
        try:
            connection.send(json.dumps(envelope))
            acked = pending.done.wait(timeout)
        except ConnectionClosed:
            acked = False
        finally:
            with self._lock:
                self._pending.pop(envelope_id, None)
        return envelope_id, acked, pending.payload
