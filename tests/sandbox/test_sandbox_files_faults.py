"""files_upload_v2 end to end, and injected faults seen through the real WebClient."""

from __future__ import annotations

import time
import urllib.request

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.devtools.sandbox import SlackSandbox


def test_files_upload_v2_end_to_end(sb: SlackSandbox, client: WebClient, channel: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    parent = client.chat_postMessage(channel=channel, text="digest")["ts"]
    chart = tmp_path / "mttr.png"
    chart.write_bytes(b"\x89PNG fake chart")
    response = client.files_upload_v2(
        channel=channel,
        file=str(chart),
        filename="mttr.png",
        title="MTTR",
        initial_comment="Weekly chart",
        thread_ts=parent,
    )
    file_id = response["file"]["id"]
    stored = sb.files[file_id]
    assert (stored["content"], stored["title"], stored["mimetype"], stored["channels"]) == (
        b"\x89PNG fake chart",
        "MTTR",
        "image/png",
        [channel],
    )
    message = sb.messages(channel, parent)[-1]
    assert (message["text"], message["thread_ts"], message["files"][0]["id"]) == (
        "Weekly chart",
        parent,
        file_id,
    )
    # The file can be fetched back (the browser page shows it).
    with urllib.request.urlopen(message["files"][0]["url_private"]) as fetched:
        assert fetched.read() == b"\x89PNG fake chart"

    text_file = client.files_upload_v2(channel=channel, content="# Post-mortem", filename="pm.md", title="PM")
    assert sb.files[text_file["file"]["id"]]["content"] == b"# Post-mortem"
    assert [c["method"] for c in sb.calls[-2:]] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]


def test_completing_an_upload_needs_the_bytes_and_membership(sb: SlackSandbox, client: WebClient) -> None:
    url = client.files_getUploadURLExternal(filename="a.txt", length=3)
    with pytest.raises(SlackApiError, match="file_upload_not_completed"):
        client.files_completeUploadExternal(files=[{"id": url["file_id"]}])
    urllib.request.urlopen(urllib.request.Request(url["upload_url"], data=b"abc")).read()
    outside = sb.create_channel("outside")
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id=outside)


def test_ratelimited_carries_retry_after_and_changes_nothing(
    sb: SlackSandbox, client: WebClient, channel: str
) -> None:
    sb.faults.fail_next("chat.postMessage", "ratelimited", retry_after=7)
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel=channel, text="x")
    response = excinfo.value.response
    assert (response.status_code, response["error"], response.headers["Retry-After"]) == (
        429,
        "ratelimited",
        "7",
    )
    assert [m["text"] for m in sb.messages(channel) if m["bot_id"]] == []
    assert sb.calls_to("chat.postMessage")[-1] | {"at": 0, "args": {}} == {
        "method": "chat.postMessage",
        "args": {},
        "ok": False,
        "error": "ratelimited",
        "status": 429,
        "at": 0,
    }
    # Only the next call fails.
    assert client.chat_postMessage(channel=channel, text="x")["ok"]


def test_server_errors_and_wildcard(sb: SlackSandbox, client: WebClient) -> None:
    sb.faults.fail_next("*", "server_error")
    sb.faults.fail_next("auth.test", "unavailable")
    with pytest.raises(SlackApiError) as first:
        client.auth_test()
    with pytest.raises(SlackApiError) as second:
        client.auth_test()
    assert (first.value.response.status_code, second.value.response.status_code) == (500, 503)
    assert client.auth_test()["ok"]


def test_timeout_fault_outlasts_the_client(sb: SlackSandbox, channel: str) -> None:
    impatient = WebClient(base_url=sb.api_url, token="xoxb-sandbox", timeout=0.3)
    sb.faults.fail_next("chat.postMessage", "timeout", timeout_seconds=1.0)
    with pytest.raises(TimeoutError):
        impatient.chat_postMessage(channel=channel, text="x")
    sb.wait_for(lambda: sb.calls_to("chat.postMessage"), timeout=2)
    assert sb.calls_to("chat.postMessage")[-1]["error"] == "timeout"
    assert [m for m in sb.messages(channel) if m["bot_id"]] == []


def test_fail_rate_is_seeded_and_scoped_to_methods(sb: SlackSandbox, client: WebClient, channel: str) -> None:
    def run() -> list[bool]:
        sb.faults.fail_rate(0.5, kinds=("ratelimited", "server_error"), methods=["chat.postMessage"], seed=3)
        outcomes = []
        for _ in range(12):
            try:
                client.chat_postMessage(channel=channel, text="x")
                outcomes.append(True)
            except SlackApiError:
                outcomes.append(False)
        client.auth_test()  # not a targeted method: never fails
        return outcomes

    first, second = run(), run()
    assert first == second and True in first and False in first
    sb.faults.clear()
    assert client.chat_postMessage(channel=channel, text="x")["ok"]


def test_delay(sb: SlackSandbox, client: WebClient) -> None:
    sb.faults.delay(0.4, methods=["auth.test"])
    started = time.monotonic()
    client.auth_test()
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    client.users_info(user="U0ALICE")
    assert time.monotonic() - started < 0.4
