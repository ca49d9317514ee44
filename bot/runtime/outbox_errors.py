"""What the outbox worker does about a failed delivery: one table of Slack errors -> action, and the rule
for everything that is not a Slack error (network, time-outs, HTTP 5xx and 429).

- RETRY: transient. Retried with capped back-off for as long as it lasts (a Slack outage of hours or
  days included: PagerDuty itself retries for 48 h), never parked.
- PARK: no retry can fix it. Parked at once, logged at ERROR, reported by /healthz and /metrics, and
  replayed or dropped by a person (`postmortem-bot outbox list|retry|drop`).
- SUSPECT: an error we do not know (an unknown Slack error, a bug in the worker). Retried, and parked
  after MAX_ATTEMPTS so a person looks at it instead of it spinning forever.

An action for a new error (e.g. rerouting a post to an archived channel) is one more table entry and one
more case where the worker applies it.
"""

from __future__ import annotations

import urllib.error
from dataclasses import dataclass
from enum import StrEnum

from slack_sdk.errors import SlackApiError, SlackRequestError

from bot.slack.channels import ChannelNotFound

MAX_ATTEMPTS = 8


class Action(StrEnum):
    RETRY = "retry"
    PARK = "park"
    SUSPECT = "suspect"


# Slack's `error` values (answered with HTTP 200 and ok=false unless noted) by what retrying can do.
SLACK_ERRORS: dict[str, Action] = {
    **dict.fromkeys(
        (
            "channel_not_found",
            "invalid_blocks",
            "invalid_blocks_format",
            "invalid_arguments",
            "msg_too_long",
            "no_text",
            "is_archived",
            # Left after the outbox's one join (or a person removed the bot: it does not re-join).
            "not_in_channel",
            "invalid_auth",
            "not_authed",
            "token_revoked",
            "account_inactive",
            "missing_scope",
            "not_allowed_token_type",
            "message_not_found",
            "cant_update_message",
            "user_not_found",
            "missing_text_fallback",
            "invalid_metadata_format",
            "invalid_name",
            "invalid_name_specials",
            "invalid_name_maxlength",
            "invalid_name_required",
            "restricted_action",
        ),
        Action.PARK,
    ),
    # Slack's own trouble (https://api.slack.com/web#errors): it passes.
    **dict.fromkeys(
        (
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
            "team_added_to_org",
        ),
        Action.RETRY,
    ),
}


class Wait(Exception):
    """Not a failure: the row needs something else first (its thread's parent to be posted)."""

    def __init__(self, reason: str, after: float) -> None:
        super().__init__(reason)
        self.after = after


@dataclass(frozen=True)
class Failure:
    action: Action
    reason: str
    # Seconds to wait instead of the back-off (Retry-After, or a Wait).
    after: float | None = None
    # False for a 429 or a Wait: the row did nothing wrong, so it is not an attempt.
    counts: bool = True
    # Slack could not be reached at all (connection refused, DNS, 503): the worker pauses every row,
    # not only this one, and probes again after its back-off.
    unreachable: bool = False
    # Not an error from Slack or the network: the worker logs its traceback.
    unexpected: bool = False
    # Slack answered the call (even if with an error): it is reachable.
    slack_answered: bool = False


def classify(exc: Exception, what: str) -> Failure:
    """What to do about `exc`, raised while delivering `what` (e.g. "post to C0123")."""
    if isinstance(exc, Wait):
        return Failure(Action.RETRY, str(exc), after=exc.after, counts=False)
    if isinstance(exc, ChannelNotFound):
        return Failure(Action.PARK, str(exc), slack_answered=True)
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error", "unknown_error"))
        status = exc.response.status_code
        if status == 429:
            after = float(exc.response.headers.get("Retry-After", 1))
            return Failure(Action.RETRY, f"429 {error}", after=after, counts=False, slack_answered=True)
        if status == 503:
            return Failure(Action.RETRY, f"{status} {error}", unreachable=True)
        if status >= 500:
            return Failure(Action.RETRY, f"{status} {error}", slack_answered=True)
        action = SLACK_ERRORS.get(error, Action.SUSPECT)
        reason = f"Slack refused {what}: {error}" if action == Action.PARK else f"{status} {error}"
        return Failure(action, reason, slack_answered=True)
    if isinstance(exc, SlackRequestError | OSError):
        return Failure(Action.RETRY, f"{type(exc).__name__}: {exc}", unreachable=_unreachable(exc))
    return Failure(Action.SUSPECT, f"{type(exc).__name__}: {exc}", unexpected=True)


def _unreachable(exc: Exception) -> bool:
    """A connection that could not be made (refused, reset, DNS), as opposed to a call that timed out:
    that one is retried on its own, since Slack may be slow for one method only."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return isinstance(reason, OSError) and not isinstance(reason, TimeoutError)


def backoff(attempts: int, max_backoff: float) -> float:
    """2, 4, 8 ... seconds, at most `max_backoff` (the exponent is capped, so it never overflows)."""
    return min(max_backoff, 2.0 ** min(attempts, 30))
