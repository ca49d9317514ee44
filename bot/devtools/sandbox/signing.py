"""Slack's request signing (v0), as Slack applies it to every request it sends to an app."""

from __future__ import annotations

import hashlib
import hmac


def slack_signature(signing_secret: str, timestamp: str | int, body: bytes | str) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` keyed by the signing secret."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = b"v0:" + str(timestamp).encode("ascii") + b":" + raw
    return "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def signed_headers(signing_secret: str, timestamp: int, body: bytes, content_type: str) -> dict[str, str]:
    """The headers Slack puts on a request to the app's Request URL."""
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": slack_signature(signing_secret, timestamp, body),
        "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
    }
