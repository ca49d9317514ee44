"""`postmortem-bot demo`: the whole loop against the local Slack sandbox on SQLite, no Slack account needed.

It plays a scripted incident through the same signed HTTP requests Slack would send, then prints each
channel as a person in Slack would read it.
"""

from __future__ import annotations

import logging
import random
import signal
import tempfile
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from bot.core.clock import utcnow
from bot.core.db import session_scope
from bot.core.models import Incident, IncidentStatus
from bot.devtools.sandbox import Delivery, SlackSandbox
from bot.devtools.sandbox.jira import JiraStandIn
from bot.devtools.sandbox.pagerduty_sender import FakeIncident, PagerDutySender
from bot.devtools.sandbox.ui import SandboxPage
from bot.devtools.stack import PAGERDUTY_SECRET, LocalStack, page_for_stack
from bot.domain.incidents import refresh_durations
from bot.loop.digest import send_digest
from bot.loop.wins import announce
from bot.slack.blocks import Action, Block

ALICE, BOB = "U0ALICE", "U0BOB"
INCIDENT_CHANNEL = "inc-42-checkout-returns-500s"
SERVICES = ("checkout", "payments", "search", "reports")
# Each step normally takes milliseconds; a step still waiting after this long is broken, not slow (a loaded
# 2-core machine has been seen to need over 15 s for the digest's chart).
STEP_TIMEOUT = 60.0


def seed_history(engine: Engine, now: datetime, *, weeks: int = 8, seed: int = 7) -> int:
    """Eight weeks of past incidents with realistic timings, so the digest's chart and the wins have data.
    Deterministic (a fixed seed) so the demo reads the same every time."""
    rng = random.Random(seed)
    count = 0
    with session_scope(engine) as session:
        for day in range(weeks * 7, 0, -1):
            for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
                triggered = now - timedelta(days=day, hours=rng.randint(0, 20))
                incident = Incident(
                    title=f"{rng.choice(('Latency spike', 'Error burst', 'Queue backlog', 'Disk full'))}",
                    service_name=rng.choice(SERVICES),
                    triggered_at=triggered,
                    created_at=triggered,
                    updated_at=triggered,
                    status=IncidentStatus.RESOLVED,
                    acknowledged_at=triggered + timedelta(minutes=rng.randint(1, 8)),
                    first_response_at=triggered + timedelta(minutes=rng.randint(2, 25)),
                    resolved_at=triggered + timedelta(minutes=rng.randint(12, 90)),
                    first_responder=rng.choice((ALICE, BOB)),
                )
                # (resolved_at is always set above; the draw comes first to keep the seeded sequence)
                if rng.random() < 0.7 and incident.resolved_at is not None:
                    incident.postmortem_published_at = incident.resolved_at + timedelta(
                        hours=rng.randint(2, 72)
                    )
                refresh_durations(incident)
                session.add(incident)
                count += 1
    return count


def play_script(stack: LocalStack, say: Callable[[str], object] = print) -> None:
    """PagerDuty triggers an incident; people answer and pin; it resolves; the post-mortem is written,
    published, edited and published again (with a Jira stand-in: its items filed as issues); an action
    item is done in Slack, another closed in Jira; the digest and the wins run."""
    sandbox = stack.sandbox
    if stack.server is None or stack.server.runtime is None:
        raise RuntimeError("start the stack before playing the script")
    runtime = stack.server.runtime
    now = utcnow()
    say(f"· {seed_history(runtime.engine, now)} past incidents over eight weeks are loaded for the digest")
    pagerduty = PagerDutySender(stack.bot_url, PAGERDUTY_SECRET)
    incident = FakeIncident(
        number=42,
        title="Checkout returns 500s",
        service_id="PCHECKOUT",
        service_name="checkout",
        created_at=now - timedelta(minutes=12),
    )
    say("· PagerDuty triggers incident #42, 12 minutes ago; the bot opens its channel and posts the card")
    _expect_sent(pagerduty.send(incident, "incident.triggered", at=incident.created_at))
    channel = sandbox.wait_for(lambda: _channel(sandbox, INCIDENT_CHANNEL), timeout=STEP_TIMEOUT)
    sandbox.wait_for_message(channel, lambda m: "Incident #42" in m.get("text", ""), timeout=STEP_TIMEOUT)
    for user in (ALICE, BOB):
        sandbox.join(user, channel)
    _expect_sent(pagerduty.send(incident, "incident.acknowledged", at=now - timedelta(minutes=10)))

    say("· alice answers in the channel (first response) and bob pins her finding to the timeline")
    finding = sandbox.post_message(ALICE, channel, "On it. Error rate is 12%, the DB pool looks exhausted.")
    sandbox.add_reaction(BOB, channel, finding, "pushpin")
    sandbox.post_message(BOB, channel, "Raised the pool to 50, errors are back to zero.")

    say("· PagerDuty resolves it; the bot asks for the write-up in the channel")
    _expect_sent(pagerduty.send(incident, "incident.resolved", at=utcnow()))
    prompt = sandbox.wait_for_message(
        channel, lambda m: Action.OPEN_POSTMORTEM in str(m.get("blocks")), timeout=STEP_TIMEOUT
    )

    say("· bob clicks the prompt's button, fills the form (two action items) and publishes")
    _expect_ok(sandbox.click_button(BOB, channel, prompt["ts"], Action.OPEN_POSTMORTEM))
    view_id = _open_view(sandbox, BOB)
    sandbox.fill_view(
        view_id,
        {
            Block.SUMMARY: {
                Action.INPUT: "Checkout returned HTTP 500 for 12 minutes during the evening peak."
            },
            Block.IMPACT: {Action.INPUT: "About 12% of orders failed; no data was lost."},
            Block.ROOT_CAUSE: {
                Action.INPUT: "The database pool (5 connections) was exhausted by a new report query."
            },
            Block.RESOLUTION: {Action.INPUT: "Raised the pool to 50 and moved the report to the replica."},
            Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV2"},
            "action_text_0": {Action.INPUT: "Alert when the pool is 80% busy"},
            "action_owner_0": {Action.OWNER_SELECT: ALICE},
        },
    )
    sandbox.view_action(BOB, view_id, Action.ADD_ACTION_ITEM, block_id=Block.MODAL_ACTIONS)
    sandbox.wait_for(
        lambda: "action_text_1" in {b.get("block_id") for b in sandbox.views[view_id]["blocks"]},
        timeout=STEP_TIMEOUT,
    )
    sandbox.fill_view(
        view_id,
        {
            "action_text_1": {Action.INPUT: "Run reports on the read replica"},
            "action_owner_1": {Action.OWNER_SELECT: BOB},
        },
    )
    _expect_ok(sandbox.submit_view(BOB, view_id))
    postmortems = sandbox.channel_id("postmortems")
    summary = sandbox.wait_for_message(
        postmortems, lambda m: "Post-mortem" in m.get("text", ""), timeout=STEP_TIMEOUT
    )

    say("· alice edits the summary and publishes again (the summary is updated, not posted twice)")
    _expect_ok(sandbox.slash_command(ALICE, channel))
    view_id = _open_view(sandbox, ALICE)
    sandbox.fill_view(
        view_id,
        {
            Block.SUMMARY: {
                Action.INPUT: (
                    "Checkout returned HTTP 500 for 12 minutes during the evening peak; "
                    "a report query held the pool."
                )
            }
        },
    )
    _expect_ok(sandbox.submit_view(ALICE, view_id))
    sandbox.wait_for(lambda: "report query held" in str(sandbox.messages(postmortems)), timeout=STEP_TIMEOUT)

    jira = stack.tracker if isinstance(stack.tracker, JiraStandIn) else None
    if jira is not None:
        say("· the bot files the two action items as Jira issues")
        sandbox.wait_for(lambda: len(jira.issues) == 2, timeout=STEP_TIMEOUT)

    say("· alice marks her action item done from the summary")
    _expect_ok(sandbox.click_button(ALICE, postmortems, summary["ts"], Action.MARK_ACTION_DONE))
    sandbox.wait_for(lambda: ":white_check_mark:" in str(sandbox.messages(postmortems)), timeout=STEP_TIMEOUT)
    if jira is not None:
        [alices, bobs] = sorted(jira.issues.values(), key=lambda issue: issue.key)
        sandbox.wait_for(lambda: alices.category == "done", timeout=STEP_TIMEOUT)
        say(f"· ...and {alices.key} moves to {alices.history[-1]} in Jira; bob closes {bobs.key} in Jira")
        jira.close(bobs.key)
        sandbox.wait_for(lambda: str(sandbox.messages(postmortems)).count(":white_check_mark:") == 2)

    say("· the scheduler's weekly digest and wins sweep run now (normally Monday 09:00 and every 15 min)")
    with session_scope(runtime.engine) as session:
        # The digest covers the week ending at the next local midnight: the seven days up to today.
        send_digest(
            session=session, settings=runtime.settings, now=now, scheduled_for=now + timedelta(days=1)
        )
        announce(session=session, settings=runtime.settings, now=now)
    runtime.outbox.wake()
    # Done when the digest and its chart are shared in the channel (an upload exists before it is shared).
    sandbox.wait_for(lambda: _digest_shared(sandbox, postmortems), timeout=STEP_TIMEOUT)


def _digest_shared(sandbox: SlackSandbox, channel: str) -> bool:
    messages = sandbox.messages(channel)
    charts = [f for m in messages for f in m.get("files") or [] if f["name"].endswith(".png")]
    return bool(charts) and "Weekly incident digest" in str(messages)


def _channel(sandbox: SlackSandbox, name: str) -> str | None:
    try:
        return sandbox.channel_id(name)
    except KeyError:
        return None


def _expect_sent(answer: tuple[int, str]) -> None:
    if answer[0] >= 300:
        raise RuntimeError(f"the PagerDuty webhook answered {answer[0]}: {answer[1]}")


def _open_view(sandbox: SlackSandbox, user: str) -> str:
    view = sandbox.open_view_for(user)
    if view is None:
        raise RuntimeError("the bot did not open the post-mortem modal")
    view_id: str = view["id"]
    return view_id


def _expect_ok(delivery: Delivery) -> None:
    if delivery.status != 200:
        raise RuntimeError(f"the bot answered {delivery.status}: {delivery.body}")


def print_transcripts(sandbox: SlackSandbox, channels: list[str], tz: ZoneInfo | None = None) -> None:
    for name in channels:
        print(f"\n===== #{name} " + "=" * max(0, 60 - len(name)))
        print(sandbox.transcript(sandbox.channel_id(name), tz=tz).rstrip())


def print_issues(jira: object) -> None:
    if isinstance(jira, JiraStandIn):
        print("\n===== Jira (the stand-in) " + "=" * 35)
        for issue in sorted(jira.issues.values(), key=lambda issue: issue.key):
            print(f"{issue.key} {issue.fields['summary']}: {' -> '.join(issue.history)}")


def run_demo(*, once: bool, port: int = 3000) -> int:
    """Play the script and print the transcript; without `once`, keep serving for exploration."""
    for noisy in ("slack_bolt", "websockets", "bot.runtime.server", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="postmortem-bot-demo-"))
    database_url = f"sqlite:///{workdir / 'demo.db'}"
    print(f"postmortem-bot demo: local Slack sandbox, SQLite at {workdir / 'demo.db'}")
    # The script runs the digest and the wins sweep itself, at its end: a scheduled sweep during the script
    # would post alerts about the seeded history before the story they conclude.
    with LocalStack(database_url, tracker="jira", scheduler_enabled=False) as stack:
        page = None if once else _start_page(stack, port)
        play_script(stack)
        print_transcripts(stack.sandbox, [INCIDENT_CHANNEL, "postmortems", "wins"], tz=stack.settings().tz)
        print_issues(stack.tracker)
        if page is None:
            return 0
        assert stack.server is not None
        stack.server.start_scheduler()  # exploring: the jobs run on their schedules from now on
        with page:
            # Handlers first: a Ctrl-C right after the URL is printed must stop cleanly too.
            stopped = threading.Event()
            signal.signal(signal.SIGINT, lambda *_: stopped.set())
            signal.signal(signal.SIGTERM, lambda *_: stopped.set())
            print(f"\nThe bot is serving at {stack.bot_url} and the sandbox at {stack.sandbox.url}.")
            print(f"Try it in a browser: {page.url}  (Ctrl-C to stop)", flush=True)
            # A signal may land on another thread; Python runs the handler only when the main thread
            # wakes, so wait in short steps rather than forever.
            while not stopped.wait(0.5):
                pass
    return 0


def _start_page(stack: LocalStack, port: int) -> SandboxPage:
    """The sandbox's web page, started before the script so its URL is printed first (and a taken port
    stops the demo before it plays)."""

    try:
        page = page_for_stack(stack, port=port).start()
    except OSError as exc:
        message = f"postmortem-bot demo: cannot serve the page on port {port} ({exc}); try --port"
        raise SystemExit(message) from exc
    print(f"The sandbox page: {page.url} (live: open it now to watch the script play)")
    return page
