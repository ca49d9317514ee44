"""Who a Slack user id is (`users.info`), for documents that show people by name.

A small cache: a document names the same few people (authors, owners) again and again, and a name
changes rarely, so each id is asked once an hour at most. An id Slack does not know (`user_not_found`), or
a failed call, is remembered briefly as unknown: the document then shows the id, and is never held up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.document import Person

log = logging.getLogger(__name__)

KNOWN_SECONDS = 3600.0
UNKNOWN_SECONDS = 60.0
MAX_PEOPLE = 1000


def person_from_api(user: dict[str, Any]) -> Person:
    """The name people see in Slack: the display name, else the full name, else the handle."""
    profile = user.get("profile") or {}
    name = profile.get("display_name") or profile.get("real_name") or user.get("real_name") or user["name"]
    return Person(id=user["id"], name=str(name), team_id=user.get("team_id"))


class PeopleDirectory:
    """`lookup(user_id)`: the person, or None when Slack could not say. Thread-safe."""

    def __init__(self, client: WebClient, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, Person | None]] = OrderedDict()

    def lookup(self, user_id: str) -> Person | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(user_id)
            if cached is not None and cached[0] > now:
                self._cache.move_to_end(user_id)
                return cached[1]
        person = self._ask(user_id)
        with self._lock:
            self._cache[user_id] = (now + (KNOWN_SECONDS if person else UNKNOWN_SECONDS), person)
            self._cache.move_to_end(user_id)
            while len(self._cache) > MAX_PEOPLE:
                self._cache.popitem(last=False)
        return person

    def _ask(self, user_id: str) -> Person | None:
        try:
            return person_from_api(self._client.users_info(user=user_id)["user"])
        except SlackApiError as exc:
            log.info("users.info %s: %s", user_id, exc.response.get("error"))
        except (SlackClientError, OSError) as exc:  # OSError: no answer (timeout, refused)
            log.warning("users.info %s failed: %s", user_id, exc)
        return None
