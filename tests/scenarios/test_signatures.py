"""Signatures on every inbound route, over HTTP: Slack's 5-minute timestamp window, PagerDuty secret
rotation (old and new secret both accepted while both are configured; several v1= values)."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator

import pytest

from bot.devtools.sandbox import SlackSandbox, slack_signature
from bot.devtools.stack import LocalStack
from bot.domain.pagerduty import sign
from bot.runtime.web import slack_signature_valid
from tests.scenarios.conftest import BOB, assert_manifest_covers

OLD, NEW = "pagerduty-secret-being-retired", "pagerduty-secret-replacing-it"
FORM = "application/x-www-form-urlencoded"


def slack_at(sandbox: SlackSandbox, age_seconds: int):  # type: ignore[no-untyped-def]
    """A signed `/postmortem help`, as if Slack had sent it `age_seconds` ago."""
    channel = sandbox.channel_id("postmortems")
    body = f"command=%2Fpostmortem&text=help&user_id={BOB}&channel_id={channel}&team_id=T0SANDBOX".encode()
    stamp = str(int(time.time()) - age_seconds)
    headers = {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(sandbox.signing_secret, stamp, body),
    }
    return sandbox.deliver_raw(body, content_type=FORM, headers=headers)


def test_slack_requests_are_accepted_for_five_minutes_and_refused_after(sandbox: SlackSandbox) -> None:
    four_minutes = slack_at(sandbox, 4 * 60)
    assert four_minutes.status == 200 and "How to use" in four_minutes.json["text"], four_minutes.body
    assert slack_at(sandbox, 6 * 60).status == 401
    assert slack_at(sandbox, -6 * 60).status == 401  # from the future: a clock that far off is refused too


def test_the_window_and_odd_headers_in_the_verifier() -> None:
    body, now = b"token=x", 1_800_000_000
    good = slack_signature("s3cret", str(now), body)
    headers = {"x-slack-request-timestamp": str(now), "x-slack-signature": good}
    assert slack_signature_valid(body, headers, "s3cret", now=now + 299)
    assert not slack_signature_valid(body, headers, "s3cret", now=now + 301)
    assert not slack_signature_valid(body + b" ", headers, "s3cret", now=now)
    for stamp in ("", "abc", "١٢٣", "1e9", "-5", "9" * 40):
        assert not slack_signature_valid(
            body, {**headers, "x-slack-request-timestamp": stamp}, "s3cret", now=now
        )
    assert not slack_signature_valid(body, {**headers, "x-slack-signature": "v0=ÿ"}, "s3cret", now=now)
    assert not slack_signature_valid(b"\xff\xfe", headers, "s3cret", now=now)  # not UTF-8: invalid, no error


@pytest.fixture
def rotating(database_url: str) -> Iterator[LocalStack]:
    with LocalStack(database_url, pagerduty_webhook_secrets=[OLD, NEW]) as stack:
        yield stack
        assert_manifest_covers(stack.sandbox.calls)


def post_pagerduty(stack: LocalStack, body: bytes, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-PagerDuty-Signature"] = signature
    request = urllib.request.Request(f"{stack.bot_url}/webhooks/pagerduty", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def delivery(event_id: str) -> bytes:
    return json.dumps(
        {
            "event": {
                "id": event_id,
                "event_type": "service.updated",  # archived and ignored: a repeat is a duplicate
                "resource_type": "service",
                "occurred_at": "2026-11-23T14:00:00Z",
                "data": {
                    "id": "N1",
                    "type": "incident_note",
                    "incident": {"id": "PUNKNOWN"},
                    "content": "hi",
                },
            }
        }
    ).encode()


def test_pagerduty_secret_rotation(rotating: LocalStack) -> None:
    old, new, both, neither = (delivery(f"E-{name}") for name in ("old", "new", "both", "neither"))
    assert post_pagerduty(rotating, old, sign(old, OLD)) == 202
    assert post_pagerduty(rotating, new, sign(new, NEW)) == 202
    # During a rotation PagerDuty sends one v1= value per secret; one matching is enough.
    assert post_pagerduty(rotating, both, f"{sign(both, 'retired-long-ago')}, {sign(both, NEW)}") == 202
    assert post_pagerduty(rotating, both, f"v1={'0' * 64},{sign(both, OLD)}") == 200  # a repeat: duplicate
    assert post_pagerduty(rotating, neither, f"{sign(neither, 'x' * 12)}, v1=zz") == 401
    assert post_pagerduty(rotating, neither, None) == 401
