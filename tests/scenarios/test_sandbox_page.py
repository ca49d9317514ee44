"""The sandbox page's JSON API and event stream over real HTTP, without a browser: the same requests the page
makes, against the bot serving the sandbox, so what the browser test clicks is proven here too."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from bot.devtools.sandbox.ui import SandboxPage
from bot.devtools.stack import LocalStack, page_for_stack
from bot.slack.blocks import Action, Block

ALICE, BOB = "U0ALICE", "U0BOB"


@pytest.fixture
def stack(tmp_path) -> Iterator[LocalStack]:  # type: ignore[no-untyped-def]
    # The page talks to the sandbox, not the database: SQLite alone is enough here.
    with LocalStack(f"sqlite:///{tmp_path / 'page.db'}") as running:
        yield running


@pytest.fixture
def page(stack: LocalStack) -> Iterator[SandboxPage]:
    with page_for_stack(stack) as serving:
        yield serving


def request(
    page: SandboxPage, method: str, path: str, body: Any = None, content_type: str = "application/json"
) -> tuple[int, dict[str, str], bytes]:
    url = urlsplit(page.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        connection.request(method, path, body=data, headers={"Content-Type": content_type} if data else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def act(page: SandboxPage, path: str, **args: Any) -> dict[str, Any]:
    status, _, raw = request(page, "POST", f"/api/{path}", args)
    answer = json.loads(raw)
    assert status in (200, 400), (status, answer)
    return answer


def state(page: SandboxPage) -> dict[str, Any]:
    status, _, raw = request(page, "GET", "/api/state")
    assert status == 200
    return json.loads(raw)


def test_the_page_and_its_files_are_served_with_a_strict_content_security_policy(page: SandboxPage) -> None:
    status, headers, html = request(page, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<script src="/static/app.js" defer>' in html
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert "unsafe-inline" not in headers["Content-Security-Policy"]
    for name, kind in (
        ("app.js", "text/javascript"),
        ("mrkdwn.js", "text/javascript"),
        ("style.css", "text/css"),
    ):
        status, headers, _ = request(page, "GET", f"/static/{name}")
        assert (status, headers["Content-Type"].split(";")[0]) == (200, kind)
    for path in ("/static/../ui.py", "/static/%2e%2e/ui.py", "/static/ui.py", "/nope"):
        assert request(page, "GET", path)[0] == 404, path


def test_state_lists_channels_people_and_controls(page: SandboxPage) -> None:
    answer = state(page)
    assert {c["name"] for c in answer["workspace"]["channels"]} >= {"postmortems", "wins"}
    assert [p["name"] for p in answer["people"]] == ["alice", "bob", "carol"]
    assert answer["pagerduty"] == []
    assert [j["name"] for j in answer["jobs"]] == ["digest", "reminders", "wins"]
    assert answer["commands"] == ["/postmortem"]


def test_posts_must_be_json_from_a_demo_user(page: SandboxPage) -> None:
    postmortems = page.sandbox.channel_id("postmortems")
    form = b"user=U0ALICE&channel=" + postmortems.encode() + b"&text=hi"
    status = request(page, "POST", "/api/send", form, "application/x-www-form-urlencoded")
    assert status[0] == 415  # a cross-site form cannot post here
    assert act(page, "send", user="U0BOT", channel=postmortems, text="hi")["ok"] is False
    assert act(page, "nope", user=ALICE)["error"] == "unknown action 'nope'"
    assert (
        "not a valid command"
        in act(page, "send", user=ALICE, channel=postmortems, text="/deploy now")["error"]
    )
    assert [m["user"] for m in page.sandbox.messages(postmortems)] == ["U0BOT"]  # only the bot's join


def test_a_message_is_escaped_like_the_slack_client_and_mentions_become_ids(page: SandboxPage) -> None:
    channel = page.sandbox.channel_id("postmortems")
    assert act(page, "send", user=ALICE, channel=channel, text="<b>hi</b> & @bob")["ok"]
    *_, message = page.sandbox.messages(channel)
    assert message["text"] == "&lt;b&gt;hi&lt;/b&gt; &amp; <@U0BOB>"


def test_the_event_stream_says_hello_then_each_change(page: SandboxPage) -> None:
    url = urlsplit(page.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    connection.request("GET", "/api/events")
    response = connection.getresponse()
    assert response.getheader("Content-Type") == "text/event-stream"

    def next_event() -> tuple[str, dict[str, Any]]:
        lines: dict[str, str] = {}
        while True:
            line = response.fp.readline().decode().rstrip("\n")
            if not line:
                if "event" in lines:
                    return lines["event"], json.loads(lines.get("data", "{}"))
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            lines[key] = value

    try:
        assert next_event()[0] == "hello"
        page.sandbox.wait_for(lambda: page.listeners == 1)
        channel = page.sandbox.channel_id("wins")
        assert act(page, "send", user=BOB, channel=channel, text="shipped")["ok"]
        kind, data = next_event()
        assert (kind, data["type"], data["channel"]) == ("change", "message_posted", channel)
    finally:
        response.close()  # the page's tab goes away
        connection.close()
    page.sandbox.wait_for(lambda: page.listeners == 0, message="the closed stream was not forgotten")


def test_the_whole_loop_through_the_page_api(page: SandboxPage) -> None:
    sandbox = page.sandbox
    triggered = act(page, "pagerduty", user=ALICE, action="trigger", title="Search is slow", service="search")
    assert triggered["ok"] and triggered["webhook"]["status"] == 202, triggered
    (incident,) = state(page)["pagerduty"]
    assert (incident["number"], incident["status"]) == (101, "triggered")
    channel = sandbox.wait_for(
        lambda: next(
            (c["id"] for c in sandbox.snapshot()["channels"] if c["name"].startswith("inc-101")), None
        )
    )
    sandbox.wait_for_message(channel, lambda m: "Incident #101" in m["text"])

    assert act(page, "send", user=ALICE, channel=channel, text="looking")["error"].startswith(
        "U0ALICE is not a member"
    )
    assert act(page, "join", user=ALICE, channel=channel)["ok"]
    assert act(page, "send", user=ALICE, channel=channel, text="Index rebuild is running")["ok"]
    ack = act(page, "pagerduty", user=ALICE, action="acknowledge", incident_id=incident["id"])
    assert ack["ok"]
    card = sandbox.wait_for_message(channel, lambda m: "Incident #101" in m["text"])
    assert act(page, "react", user=ALICE, channel=channel, ts=card["ts"], name=":pushpin:")["ok"]
    assert act(page, "pagerduty", user=ALICE, action="resolve", incident_id=incident["id"])["ok"]
    assert state(page)["pagerduty"][0]["status"] == "resolved"

    prompt = sandbox.wait_for_message(channel, lambda m: "Time to write the post-mortem" in m["text"])
    assert act(page, "click", user=ALICE, channel=channel, ts=prompt["ts"], action_id=Action.OPEN_POSTMORTEM)[
        "ok"
    ]
    view = sandbox.wait_for(lambda: sandbox.open_view_for(ALICE))
    assert state(page)["workspace"]["view_stacks"][ALICE] == [view["id"]]

    empty = act(page, "view/submit", user=ALICE, view_id=view["id"], values={})
    assert empty["ok"] is False and empty["errors"][Block.SUMMARY] == "Please complete this required field."
    assert state(page)["workspace"]["view_errors"][view["id"]][Block.ROOT_CAUSE]

    values = {
        Block.SUMMARY: {Action.INPUT: "Search answered in 9 s for an hour."},
        Block.ROOT_CAUSE: {Action.INPUT: "An index rebuild ran at peak."},
        Block.RESOLUTION: {Action.INPUT: "Moved the rebuild to the night."},
        Block.SEVERITY: {Action.SEVERITY_SELECT: "SEV3"},
        "action_text_0": {Action.INPUT: "Schedule rebuilds off-peak"},
        "action_owner_0": {Action.OWNER_SELECT: BOB},
        "action_due_0": {Action.DUE_PICKER: "2030-01-31"},
    }
    added = act(
        page, "view/action", user=ALICE, view_id=view["id"], values=values,
        action_id=Action.ADD_ACTION_ITEM, block_id=Block.MODAL_ACTIONS,
    )  # fmt: skip
    assert added["ok"], added
    sandbox.wait_for(lambda: "action_text_1" in str(sandbox.views[view["id"]]["blocks"]))
    kept = sandbox.views[view["id"]]["state"]["values"]
    assert kept[Block.SUMMARY][Action.INPUT]["value"] == "Search answered in 9 s for an hour."  # not lost

    published = act(page, "view/submit", user=ALICE, view_id=view["id"], values={})
    assert published == {"ok": True}, published
    summary = sandbox.wait_for_message(
        "postmortems", lambda m: "Search is slow" in json.dumps(m.get("blocks")), timeout=10
    )
    assert "Schedule rebuilds off-peak" in json.dumps(summary["blocks"])
    assert ALICE not in state(page)["workspace"]["view_stacks"]

    # Bob's App Home lists his action item; its Mark done button is a block action from the home view.
    assert act(page, "home", user=BOB)["ok"]
    home = sandbox.wait_for(lambda: sandbox.app_home(BOB))
    block = next(b for b in home["blocks"] if Action.MARK_ACTION_DONE in json.dumps(b))
    done = act(
        page, "view/action", user=BOB, view_id=home["id"], action_id=Action.MARK_ACTION_DONE,
        block_id=block["block_id"],
    )  # fmt: skip
    assert done == {"ok": True}, done
    sandbox.wait_for(
        lambda: ":white_check_mark: Schedule rebuilds" in json.dumps(sandbox.messages("postmortems"))
    )

    md_file = sandbox.wait_for(
        lambda: next((f for f in sandbox.files.values() if f["name"].endswith(".md") and f["content"]), None),
        timeout=10,
    )
    status, headers, content = request(page, "GET", f"/files/{md_file['id']}")
    assert (status, headers["Content-Type"]) == (200, "text/plain; charset=utf-8")
    assert "Search is slow" in content.decode()


def test_the_clock_runs_the_digest_now_with_its_chart(page: SandboxPage) -> None:
    answer = act(page, "clock", user=ALICE, job="digest")
    assert answer["ok"] and answer["said"].startswith("Digest of the last 7 days posted to #postmortems")
    sandbox = page.sandbox
    digest = sandbox.wait_for_message("postmortems", lambda m: "digest" in m["text"].lower(), timeout=10)
    assert digest["blocks"]
    chart = sandbox.wait_for(
        lambda: next(
            (f for f in sandbox.files.values() if f["name"].endswith(".png") and f["content"]), None
        ),
        timeout=10,
    )
    status, headers, content = request(page, "GET", f"/files/{chart['id']}")
    assert (status, headers["Content-Type"], content[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n")
    assert act(page, "clock", user=ALICE, job="wins")["said"] == "No new wins or alerts are due"
    assert act(page, "clock", user=ALICE, job="reminders")["ok"]
    sandbox.wait_for_message("postmortems", lambda m: "Retro reminder" in m["text"], timeout=10)
    assert act(page, "clock", user=ALICE, job="never")["ok"] is False
