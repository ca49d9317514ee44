"""B7: a storm of PagerDuty incidents against a sandbox that enforces Slack's published rate limits.

Slack's limits are per minute: 200 channels take at least 591 s at Tier 2 (`conversations.create`, 20 a
minute after a burst of 3, bot/slack/rate_limits.py). So the sandbox's limits and the bot's outbox (its
pacing and its "now") run on one clock, SPEED times faster than the wall clock, and the outbox's poll
interval is divided by SPEED too, so that it polls every 0.25 s of Slack time as in production. What does
not speed up is the bot's own work (checking, storing and processing each delivery): it counts SPEED
times more in Slack time here than it would in a real storm, so the ratio is an upper bound.

The storm: INCIDENTS signed `incident.triggered` deliveries over STORM_SECONDS of Slack time, sent over
HTTP by the load generator (its own process). The figure: Slack-clock time from the first delivery sent
until the last outbox row (each incident's channel, its card, whatever else the outbox owed) was sent,
divided by `minimum_seconds` of the Slack calls made; and the 429s the sandbox answered.

The bot runs in this process (`bot.devtools.stack.LocalStack`, the same composition as `bot serve`), which
is what lets it read the fast clock; `benchmarks.run` starts this module as a process of its own, so the
harness's own threads do not share the bot's GIL. Run as `python -m benchmarks.storm SPEC_JSON`; prints
one JSON result.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, func, select

from benchmarks.harness import Figure, Profile, database, loadgen, outbox_drained, run_module
from bot.core.db import make_engine
from bot.core.models import Incident, OutboxMessage
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack
from bot.slack.rate_limits import minimum_seconds

STORM_SECONDS = 10.0  # of Slack time, the storm's deliveries arrive within it
OUTBOX_METHODS = ("conversations.create", "conversations.join", "chat.postMessage", "chat.update")


class FastClock:
    """Slack time: starts now, runs `speed` times faster than the wall clock."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._start = time.time()

    def at(self, wall: float) -> float:
        return self._start + (wall - self._start) * self.speed

    def seconds(self) -> float:
        return self.at(time.time())

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds(), UTC)


def storm(spec: dict[str, Any]) -> dict[str, Any]:
    incidents, clock = int(spec["incidents"]), FastClock(float(spec["speed"]))
    with LocalStack(spec["database_url"], clock=clock.now, outbox_pacing=True) as stack:
        assert stack.server is not None and stack.server.process is not None
        sandbox, outbox = stack.sandbox, stack.server.process.outbox
        sandbox.rate_limits.clock = clock.seconds
        sandbox.rate_limits.enforced = True
        outbox._poll_interval /= clock.speed  # 0.25 s of Slack time, as in production
        port = int(stack.bot_url.rsplit(":", 1)[1])
        sent = loadgen(
            {
                "kind": "pagerduty",
                "host": "127.0.0.1",
                "port": port,
                "path": "/webhooks/pagerduty",
                "secret": PAGERDUTY_SECRET,
                "run_id": spec["run_id"],
                "connections": 8,
                "rate": incidents / (STORM_SECONDS / clock.speed),
                "max_requests": incidents,
                "duration": 120,
                "keep_records": True,
            }
        )
        records = sent.pop("records")
        started = clock.at(min(record[1] for record in records))
        drained = outbox_drained(stack.bot_url, timeout=600)
        engine = make_engine(spec["database_url"])
        try:
            with Session(engine) as session:
                channels = session.exec(select(func.count(col(Incident.channel_id)))).one()
                finished = session.exec(select(func.max(OutboxMessage.sent_at))).one()
        finally:
            engine.dispose()
        calls = [c for c in sandbox.calls if c["method"] in OUTBOX_METHODS]
    made = [(c["method"], c["args"].get("channel")) for c in calls if c["ok"]]
    took = finished.timestamp() - started if finished is not None else None
    least = minimum_seconds(made)
    return {
        "incidents": incidents,
        "speed": clock.speed,
        "deliveries": sent,
        "channels": channels,
        "slack_calls": len(made),
        "calls_by_method": {m: sum(1 for c in made if c[0] == m) for m in OUTBOX_METHODS},
        "rate_limited": sum(1 for c in calls if c["status"] == 429),
        "slack_seconds": round(took, 1) if took is not None else None,
        "minimum_seconds": round(least, 1),
        "ratio": round(took / least, 3) if took is not None and least else None,
        "wall_seconds_to_drain": drained,
    }


def storm_phase(profile: Profile, work: Path, db_kind: str) -> list[Figure]:
    with database(db_kind, work) as url:
        spec = {
            "database_url": url,
            "incidents": profile.storm_incidents,
            "speed": profile.storm_speed,
            "run_id": f"{db_kind[:2]}b7",
        }
        b7 = run_module("benchmarks.storm", spec, log=work / f"storm-{db_kind}.log")
    complete = b7["channels"] == b7["incidents"] and b7["deliveries"]["ok"] == b7["incidents"]
    title = f"storm: {b7['incidents']} incidents in {STORM_SECONDS:g} s, tiers enforced"
    return [
        Figure(
            "B7",
            f"{title}: until every channel and card exists (Slack clock x{b7['speed']:g})",
            b7["slack_seconds"],
            "s",
            db_kind,
            floor=b7["minimum_seconds"],
            target="ratio <= 1.2",
            met=complete and b7["ratio"] is not None and b7["ratio"] <= 1.2,
            detail=b7,
        ),
        Figure(
            "B7",
            "  429s received",
            b7["rate_limited"],
            f"of {b7['slack_calls']} calls",
            db_kind,
            target="near 0 (<= 1%)",
            met=b7["rate_limited"] <= b7["slack_calls"] / 100,
        ),
    ]


def main() -> int:
    json.dump(storm(json.loads(sys.argv[1])), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
