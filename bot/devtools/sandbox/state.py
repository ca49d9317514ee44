"""The sandbox workspace: users, channels, messages, views and files, in memory.

Everything lives in plain dicts and lists (JSON-shaped, like Slack's own payloads) so that
``snapshot()`` can hand the whole state to a browser page without translation. One re-entrant lock
guards all of it; code that talks to the bot (deliveries) never holds the lock, because the bot
answers by calling the Web API on another thread.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TEAM_ID = "T0SANDBOX"
TEAM_DOMAIN = "sandbox"
APP_ID = "A0SANDBOX"
BOT_ID = "B0BOT"
VERIFICATION_TOKEN = "sandbox-verification-token"
TRIGGER_TTL_SECONDS = 3.0  # Slack: a trigger_id expires 3 seconds after it is issued.
RESPONSE_URL_TTL_SECONDS = 30 * 60  # Slack: a response_url works for 30 minutes...
RESPONSE_URL_MAX_USES = 5  # ...and up to 5 times.
MAX_VIEW_STACK = 3  # Slack: after a modal is opened, an app may push 2 more views.


@dataclass(frozen=True)
class SandboxUser:
    """A member of the sandbox workspace."""

    id: str
    name: str
    real_name: str
    is_bot: bool = False

    @property
    def email(self) -> str | None:
        """People have an e-mail in their profile (`users:read.email`); bots have none."""
        return None if self.is_bot else f"{self.name}@example.com"

    def to_api(self) -> dict[str, Any]:
        """The user object as ``users.info`` returns it."""
        return {
            "id": self.id,
            "team_id": TEAM_ID,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": False,
            "is_bot": self.is_bot,
            "is_app_user": False,
            "tz": "Etc/UTC",
            "tz_offset": 0,
            "profile": {
                "real_name": self.real_name,
                "display_name": self.name,
                **({"email": self.email} if self.email else {}),
                "bot_id": BOT_ID if self.is_bot else None,
                "team": TEAM_ID,
            },
        }


BOT_USER = SandboxUser("U0BOT", "postmortem-bot", "Postmortem Bot", is_bot=True)
# Every workspace's Slackbot: it posts as this user id, with no bot_id.
SLACKBOT = "USLACKBOT"
DEMO_HUMANS = (
    SandboxUser("U0ALICE", "alice", "Alice Adams"),
    SandboxUser("U0BOB", "bob", "Bob Brown"),
    SandboxUser("U0CAROL", "carol", "Carol Chen"),
)


class SlackError(Exception):
    """A Web API failure: becomes ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, *, messages: list[str] | None = None, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = dict(extra)
        if messages:
            self.extra["response_metadata"] = {"messages": [f"[ERROR] {m}" for m in messages]}


@dataclass
class Channel:
    """A conversation: public or private channel, or a DM between the bot and one person."""

    id: str
    name: str
    is_private: bool
    members: list[str]
    created: int
    creator: str
    is_im: bool = False
    im_user: str | None = None
    is_archived: bool = False
    topic: str = ""
    purpose: str = ""

    @property
    def channel_type(self) -> str:
        """The ``channel_type`` Slack puts on message events."""
        return "im" if self.is_im else ("group" if self.is_private else "channel")

    def to_api(self) -> dict[str, Any]:
        """The conversation object as ``conversations.info`` shows it to the bot."""
        if self.is_im:
            return {
                "id": self.id,
                "is_im": True,
                "user": self.im_user,
                "created": self.created,
                "is_org_shared": False,
                "is_archived": False,
            }
        return {
            "id": self.id,
            "name": self.name,
            "name_normalized": self.name,
            "is_channel": not self.is_private,
            "is_group": False,
            "is_im": False,
            "is_mpim": False,
            "is_private": self.is_private,
            "is_archived": self.is_archived,
            "is_general": False,
            "is_member": BOT_USER.id in self.members,
            "created": self.created,
            "creator": self.creator,
            "num_members": len(self.members),
            "topic": {"value": self.topic, "creator": "", "last_set": 0},
            "purpose": {"value": self.purpose, "creator": "", "last_set": 0},
        }


@dataclass
class Trigger:
    """A trigger_id handed to the bot with an interaction; views.open/push exchange it once."""

    id: str
    user_id: str
    issued_at: float
    view_id: str | None = None  # set when the interaction happened inside a modal
    used: bool = False


@dataclass
class ResponseUrl:
    """Where the bot may answer a slash command or a message interaction."""

    id: str
    channel_id: str
    user_id: str
    issued_at: float
    source_ts: str | None = None  # the message the interaction came from
    source_ephemeral: bool = False
    uses: int = 0


@dataclass
class Delivery:
    """What happened when the sandbox, acting as Slack, sent something to the bot.

    Over HTTP ``status`` is the bot's HTTP status (0 when nothing was sent or the bot did not answer
    in time); over Socket Mode it is 200 once the bot acked, and ``json`` is the ack's payload.
    ``error`` says what went wrong on the sandbox's side (no answer in time, a response Slack would
    reject, a submission the Slack client would not send), or is None.
    """

    status: int
    body: str = ""
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    envelope_id: str | None = None
    trigger_id: str | None = None
    kind: str = ""
    payload: Any = None
    transport: str = "http"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300 and self.error is None


class WorkspaceState:
    """Data and bookkeeping shared by the Web API and the sender halves of the sandbox."""

    def __init__(self, *, clock: Callable[[], float]) -> None:
        self._lock = threading.RLock()
        self.clock = clock
        self.users: dict[str, SandboxUser] = {u.id: u for u in (BOT_USER, *DEMO_HUMANS)}
        self._channels: dict[str, Channel] = {}
        self._messages: dict[str, list[dict[str, Any]]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._view_owner: dict[str, str] = {}
        self._stacks: dict[str, list[str]] = {}
        self._home: dict[str, dict[str, Any]] = {}
        self._view_errors: dict[str, dict[str, str]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._file_content: dict[str, bytes] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._calls: list[dict[str, Any]] = []
        self._deliveries: list[dict[str, Any]] = []
        self._subscribers: list[Callable[[dict[str, Any]], None]] = []
        self._pending: list[dict[str, Any]] = []
        self._counters: dict[str, itertools.count[int]] = {}
        self._last_ts_us = 0

    # ids -------------------------------------------------------------------------------------

    def _next_id(self, prefix: str, width: int = 4) -> str:
        # Deterministic ids (C0001, V0001, Ev00000001...) keep golden files and logs stable.
        counter = self._counters.setdefault(prefix, itertools.count(1))
        return f"{prefix}{next(counter):0{width}d}"

    def _next_ts(self) -> str:
        """A message ts: seconds.micros from the clock, strictly increasing like Slack's."""
        with self._lock:
            micros = max(int(self.clock() * 1_000_000), self._last_ts_us + 1)
            self._last_ts_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_trigger(self, user_id: str, view_id: str | None = None) -> str:
        with self._lock:
            n = next(self._counters.setdefault("trigger", itertools.count(1)))
            digest = hashlib.sha1(f"trigger-{n}".encode()).hexdigest()[:32]
            trigger_id = f"{n}.{TEAM_ID[1:]}.{digest}"
            self._triggers[trigger_id] = Trigger(trigger_id, user_id, self.clock(), view_id)
        return trigger_id

    # lookups ---------------------------------------------------------------------------------

    def _channel(self, channel: str | None) -> Channel:
        """A channel by id, or by name for the sandbox's own helpers (never for the Web API)."""
        with self._lock:
            if channel and channel in self._channels:
                return self._channels[channel]
            name = (channel or "").lstrip("#")
            for ch in self._channels.values():
                if ch.name == name and not ch.is_im:
                    return ch
        raise KeyError(f"no channel {channel!r} in the sandbox; have {self.channel_names()}")

    def channel_names(self) -> list[str]:
        with self._lock:
            return [f"#{c.name}" if not c.is_im else c.id for c in self._channels.values()]

    def _user(self, user_id: str) -> SandboxUser:
        if user_id not in self.users:
            raise KeyError(f"no user {user_id!r}; have {sorted(self.users)}")
        return self.users[user_id]

    def _find_message(self, channel_id: str, ts: str | None) -> dict[str, Any] | None:
        for message in self._messages.get(channel_id, []):
            if message["ts"] == ts:
                return message
        return None

    def _im_for(self, user_id: str) -> Channel:
        """The DM between the bot and `user_id`, created on first use as Slack does."""
        with self._lock:
            for ch in self._channels.values():
                if ch.is_im and ch.im_user == user_id:
                    return ch
            channel_id = self._next_id("D")
            ch = Channel(
                channel_id,
                channel_id,
                True,
                [BOT_USER.id, user_id],
                int(self.clock()),
                BOT_USER.id,
                is_im=True,
                im_user=user_id,
            )
            self._channels[channel_id] = ch
            self._messages[channel_id] = []
            self._changed("channel_created", channel=channel_id)
            return ch

    # change notifications --------------------------------------------------------------------

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `callback(event)` after every state change; returns a function that unsubscribes.

        Events are small dicts such as ``{"type": "message_posted", "channel": "C0001", "ts": "..."}``;
        a page re-reads what it needs through ``snapshot()``. Callbacks run on the sandbox's threads
        with no lock held, so they may call back into the sandbox; they must be quick.
        """
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def _changed(self, kind: str, **data: Any) -> None:
        # Queued under the lock, sent by _flush() once the lock is released.
        with self._lock:
            self._pending.append({"type": kind, "at": self.clock(), **data})

    def _flush(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
            subscribers = list(self._subscribers)
        for event in events:
            for callback in subscribers:
                callback(copy.deepcopy(event))
