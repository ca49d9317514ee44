"""The Slack sandbox in a process of its own, with a small control port for the benchmark.

A separate process so the sandbox's work (answering `views.open`, `chat.postMessage`) does not take the
bot's GIL: in production Slack's work happens on Slack's machines. It still takes CPU from the same two
cores, which the results say.

Control port (JSON): POST /bench/triggers?user=U&n=N mints N trigger ids as if Slack had sent N
interactions; POST /bench/channel?name=inc-x creates a channel; GET /bench/calls?method=views.open lists
the recorded calls (method, ok, error, at, trigger_id/channel); GET /bench/messages?channel=C lists a
channel's messages with the sandbox's receive time.

Run as `python -m benchmarks.sandbox_server`; prints {"api_url": ..., "control_url": ...} on one line.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.devtools.sandbox import DEMO_HUMANS, SlackSandbox
from bot.devtools.stack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET


def _calls(sandbox: SlackSandbox, method: str) -> list[dict[str, Any]]:
    # Read without deep-copying the whole log (the public `calls` copies it: slow at 50k calls).
    with sandbox._lock:
        chosen = [c for c in sandbox._calls if c["method"] == method]
        return [
            {
                "ok": c["ok"],
                "error": c["error"],
                "at": c["at"],
                "trigger_id": c["args"].get("trigger_id"),
                "channel": c["args"].get("channel"),
                "text": (c["args"].get("text") or "")[:200],
            }
            for c in chosen
        ]


def control_handler(sandbox: SlackSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _json(self, payload: Any, status: int = 200) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _route(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if parsed.path == "/bench/triggers":
                n = int(query.get("n", "1"))
                ids = [sandbox._new_trigger(query["user"]) for _ in range(n)]
                self._json({"trigger_ids": ids})
            elif parsed.path == "/bench/channel":
                self._json({"channel_id": sandbox.create_channel(query["name"])})
            elif parsed.path == "/bench/calls":
                self._json({"calls": _calls(sandbox, query["method"])})
            elif parsed.path == "/bench/channels":
                with sandbox._lock:
                    self._json({c.name: c.id for c in sandbox._channels.values()})
            else:
                self._json({"error": "no such route"}, 404)

        do_GET = _route
        do_POST = _route

    return Handler


def main() -> int:
    sandbox = SlackSandbox(
        signing_secret=SIGNING_SECRET, bot_token=BOT_TOKEN, app_token=APP_TOKEN, ack_timeout=10
    ).start()
    humans = [user.id for user in DEMO_HUMANS]
    for name in ("postmortems", "wins"):
        sandbox.create_channel(name, members=humans)
    control = ThreadingHTTPServer(("127.0.0.1", 0), control_handler(sandbox))
    control.daemon_threads = True
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print(
        json.dumps({"api_url": sandbox.api_url, "control_url": f"http://127.0.0.1:{control.server_port}"}),
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
