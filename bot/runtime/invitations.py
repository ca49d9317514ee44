"""Inviting the people PagerDuty put on an incident into its channel (the outbox's `invite` rows).

A PagerDuty user is a Slack user by PAGERDUTY_USER_MAP, else by e-mail: PagerDuty's REST API gives the
e-mail, Slack's `users.lookupByEmail` the user. Someone who matches no Slack user is listed in the channel
once (a row of its own, enqueued in the transaction that marks this one sent). An invitation Slack
answers `already_in_channel` is done."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlmodel import Session

from bot.runtime.pagerduty_api import PagerDutyApi
from bot.slack.pagerduty_notices import enqueue_unmatched_person

# Told of a PagerDuty person found in Slack by e-mail (the row's payload, the Slack user), in the
# transaction that marks the invitation sent: bot.flows.incidents.person_matched.
Matched = Callable[[Session, dict[str, Any], str], None]


class Invitations:
    def __init__(
        self, *, client: WebClient, pagerduty: PagerDutyApi | None, matched: Matched | None = None
    ) -> None:
        self._client = client
        self._pagerduty = pagerduty
        self._matched = matched

    def invite(self, channel: str, payload: dict[str, Any], at: datetime) -> Callable[[Session], None] | None:
        """Invite the row's person; returns what to record: that they match no Slack user, or the Slack
        user their e-mail found (None: nothing to record)."""
        mapped: str | None = payload.get("slack_user")
        found = None if mapped else self._slack_user_by_email(payload["pagerduty_user"])
        slack_user = mapped or found
        if slack_user is None:
            return lambda session: enqueue_unmatched_person(
                session, incident_id=payload["incident_id"], channel=channel, name=payload["name"], at=at
            )
        try:
            self._client.conversations_invite(channel=channel, users=slack_user)
        except SlackApiError as exc:
            if exc.response.get("error") != "already_in_channel":
                raise
        matched = self._matched
        if found is None or matched is None:
            return None
        return lambda session: matched(session, payload, found)

    def _slack_user_by_email(self, pagerduty_user: str) -> str | None:
        email = self._pagerduty.user_email(pagerduty_user) if self._pagerduty else None
        if email is None:
            return None
        try:
            return str(self._client.users_lookupByEmail(email=email)["user"]["id"])
        except SlackApiError as exc:
            if exc.response.get("error") != "users_not_found":
                raise
            return None
