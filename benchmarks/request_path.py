"""B1, B1h, B2 and B6: what a person in Slack feels on the request path, on one bot process per database.

- B1: `/postmortem` in an incident's channel, open-loop at OPEN_RATE commands/s. The load generator stamps
  each command's scheduled send instant (wall clock) with the trigger id it carries; the sandbox stamps
  when the `views.open` with that trigger id arrives. The difference is the bot's time from request in to
  call out, as seen from outside: the loopback hop in, waitress's queue, Bolt's signature check and
  dispatch, the draft's lookup and the modal's build, and the HTTP call out until the sandbox has parsed
  it. Not Slack's answer nor the ack after it. The bot's CPU per command (its whole process, background
  threads included) is compared with the bare Bolt app's CPU per request at the same rate in the same run.
- B1h: `/postmortem help` (dispatch and an ephemeral ack, no Web API call) closed-loop against bare Bolt.
- B2: BURST clicks on "Write the post-mortem" in one second, each signed with its own trigger id; each
  opens a modal. Counted: `views.open` calls the sandbox accepted within Slack's 3-second trigger window of
  their click. The sandbox does not enforce rate limits here: views.open is Tier 4 ("100+ per minute ...
  generous burst behavior", per app and workspace), Slack publishes no burst size, and our model's burst of
  10 (bot/slack/rate_limits.py) is a guess that would measure the model, not the bot.
- B6: start to `/healthz` ready on a fresh database (migrations included), memory idle and under B1-B2.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    OPEN_RATE,
    Figure,
    Profile,
    RssSampler,
    bot_process,
    command_spec,
    control,
    cpu_meter,
    database,
    errors,
    loadgen,
    profiled,
    send_command,
)
from benchmarks.loadgen import summarize_ms

BURST = 100
IDLE_SECONDS = 2.0
TRIGGER_WINDOW = 3.0  # seconds, Slack's
OPEN_POSTMORTEM = "open_postmortem"  # bot.slack.blocks.Action.OPEN_POSTMORTEM


def opened_after(sandbox: dict[str, str], records: list[Any]) -> tuple[list[float], int]:
    """Seconds from each request's scheduled instant to its `views.open` at the sandbox (accepted calls),
    and how many requests opened nothing or opened it after the trigger window."""
    calls = {c["trigger_id"]: c for c in control(sandbox, "/bench/calls", method="views.open")["calls"]}
    delays, missed = [], 0
    for trigger_id, sent_wall, _latency, _status in records:
        call = calls.get(trigger_id)
        if call is None or not call["ok"] or call["at"] - sent_wall > TRIGGER_WINDOW:
            missed += 1
        else:
            delays.append(call["at"] - sent_wall)
    return delays, missed


def request_path(
    profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str, floors: dict[str, Any]
) -> list[Figure]:
    with database(db_kind, work) as url, bot_process(work, sandbox, url, db_kind) as bot:
        port = int(bot.url.rsplit(":", 1)[1])
        channel_id = control(sandbox, "/bench/channel", name=f"inc-bench-{db_kind}")["channel_id"]
        answer = send_command(bot.url, channel_id, "new Benchmark incident")
        if "Declared incident" not in answer.get("text", ""):
            raise RuntimeError(f"could not declare the benchmark incident: {answer}")
        common = {"control_url": sandbox["control_url"], "keep_records": True}
        with cpu_meter(bot.proc.pid) as idle:  # its background threads' polls, for the detail
            time.sleep(IDLE_SECONDS)
        with RssSampler(bot.proc.pid) as rss:
            started = time.monotonic()
            with profiled(bot.proc.pid, work, f"b1-{db_kind}"), cpu_meter(bot.proc.pid) as cpu:
                b1 = loadgen(command_spec(profile, port, channel_id, rate=OPEN_RATE, **common))
            b1_seconds = time.monotonic() - started
            b1_delays, b1_missed = opened_after(sandbox, b1.pop("records"))
            spec = command_spec(
                profile,
                port,
                channel_id,
                kind="block_action",
                action_id=OPEN_POSTMORTEM,
                value="1",  # the incident just declared, the first in a fresh database
                rate=BURST,  # all scheduled within one second, each timed from its scheduled instant
                max_requests=BURST,
                duration=30,  # a limit only: every click is sent, however late the bot answers
                warmup=0,
                connections=BURST,  # each click its own connection, as Slack's would be
                **common,
            )
            with profiled(bot.proc.pid, work, f"b2-{db_kind}"):
                b2 = loadgen(spec)
            b2_delays, b2_missed = opened_after(sandbox, b2.pop("records"))
        help_run = loadgen(command_spec(profile, port, channel_id, text="help"))
    floor = floors["bolt"]
    floor_cpu = floor["open_loop"]["cpu_us_per_request"]
    idle_rate = idle.seconds / IDLE_SECONDS
    b1 = {
        **b1,
        **cpu.per(b1["sent"]),
        "idle_cpu_share": round(idle_rate, 4),
        "cpu_us_per_request_net_of_idle": round((cpu.seconds - idle_rate * b1_seconds) / b1["sent"] * 1e6, 1),
    }
    b1_time = {**summarize_ms(b1_delays), "opened": len(b1_delays), "missed": b1_missed, "commands": b1}
    b2_time = {**summarize_ms(b2_delays), "opened": len(b2_delays), "missed": b2_missed, "clicks": b2}
    b1_ok = errors(b1) == 0 and b1_missed == 0
    return [
        Figure(
            "B1",
            f"/postmortem -> views.open leaving the bot, open loop {OPEN_RATE:g}/s, p50",
            b1_time["p50_ms"],
            "ms",
            db_kind,
            detail=b1_time,
        ),
        Figure(
            "B1",
            "  p99 (from the scheduled send to views.open at the sandbox)",
            b1_time["p99_ms"],
            "ms",
            db_kind,
            target="< 25 ms",
            met=b1_ok and b1_time["p99_ms"] is not None and b1_time["p99_ms"] < 25,
        ),
        Figure(
            "B1",
            "  bot CPU per command (floor: bare Bolt ack at the same rate)",
            b1["cpu_us_per_request"],
            "µs",
            db_kind,
            floor=floor_cpu,
            target="<= 2 x floor",
            met=b1["cpu_us_per_request"] <= 2 * floor_cpu,
            detail={"floor": floor["open_loop"]},
        ),
        Figure(
            "B1h",
            "/postmortem help -> ack (dispatch, no Web API call), 16 closed-loop",
            help_run["rps"],
            "req/s",
            db_kind,
            floor=floor["rps"],
            target=">= 0.8 x bare Bolt",
            met=errors(help_run) == 0 and help_run["rps"] >= 0.8 * floor["rps"],
            detail={"bot": help_run, "floor": {k: v for k, v in floor.items() if k != "open_loop"}},
        ),
        Figure(
            "B2",
            f"{BURST} clicks in 1 s, each views.open within the 3 s trigger window",
            len(b2_delays),
            f"of {BURST}",
            db_kind,
            target=f"{BURST} of {BURST}",
            met=len(b2_delays) == BURST and b2["sent"] == BURST and errors(b2) == 0,
            detail=b2_time,
        ),
        Figure(
            "B2",
            "  p99 click -> views.open at the sandbox",
            b2_time["p99_ms"],
            "ms",
            db_kind,
            target="< 1000 ms",
            met=b2_time["p99_ms"] is not None and b2_time["p99_ms"] < 1000,
        ),
        Figure(
            "B6",
            "start -> /healthz ready (fresh database, migrations)",
            bot.ready_seconds,
            "s",
            db_kind,
            target="< 1 s",
            met=bot.ready_seconds < 1,
            detail={"settle_seconds_after_ready": bot.settle_seconds},
        ),
        Figure(
            "B6",
            "resident memory idle",
            bot.idle_rss_mb,
            "MB",
            db_kind,
            target="< 100 MB",
            met=bot.idle_rss_mb < 100,
        ),
        Figure(
            "B6", "resident memory under load (peak in B1-B2)", rss.peak, "MB", db_kind, target="(context)"
        ),
    ]
