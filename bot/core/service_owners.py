"""The SERVICE_OWNERS setting and the table of what PagerDuty says about each service's owner
(docs/service-owners.md).

SERVICE_OWNERS is `SERVICE=@team-handle` or `SERVICE=U0123ABCD`, comma-separated; SERVICE is a PagerDuty
service's id or its name. The table is written by the owner lookup (bot/runtime/owner_lookups.py) and read
wherever an owner is shown (bot/domain/owners.py)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

# A Slack user group's handle (lower case, digits, `.`, `-`, `_`) or a Slack user id.
_HANDLE = re.compile(r"@[a-z0-9][a-z0-9._-]{0,79}")
_USER = re.compile(r"[UW][A-Z0-9]{2,}")


def check_owner(value: str) -> str:
    """`value` when it is a user group handle (`@payments-team`) or a user id (`U0123ABCD`)."""
    if not _HANDLE.fullmatch(value) and not _USER.fullmatch(value):
        raise ValueError(f"{value!r} is neither a user group handle (@team-handle) nor a user id (U0123ABCD)")
    return value


class ServiceOwnerLookup(SQLModel, table=True):
    """A PagerDuty service's owner as PagerDuty last said (its first team, else its escalation policy),
    and when to ask again: `next_lookup_at` is set while a lookup is owed (new service, stale answer, a
    failure to retry) and None once PagerDuty answered."""

    __tablename__ = "service_owners"

    service_id: str = Field(primary_key=True, max_length=64)
    owner: str | None = Field(default=None, max_length=255)
    # "team" or "escalation_policy" (None: PagerDuty names neither, or knows no such service).
    owner_kind: str | None = Field(default=None, max_length=32)
    owner_url: str | None = Field(default=None, max_length=1024)
    looked_up_at: datetime | None = None
    next_lookup_at: datetime | None = Field(default=None, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
