"""People changing channels under the bot, and the events Slack sends for it: archive, unarchive, rename,
convert to private, delete, and removing the bot. Each is documented by Slack (see README.md here):

- archived channels keep their name and members, and refuse posts (`is_archived`); Slack sends
  `channel_archive` (`group_archive` for a private channel) and a `channel_archive` message;
- `channel_unarchive` / `group_unarchive`; `channel_rename` / `group_rename` with the new name and a
  `channel_name` message; `channel_deleted` / `group_deleted`;
- converting to private keeps the channel id and sends a `channel_convert_to_private` message (its
  `channel_type` already "group"); a bot that is not a member can no longer see the channel at all;
- a bot removed from a channel gets `channel_left` (`group_left`) with `actor_id`, and is no longer a
  member: `not_in_channel` when it posts, and it is never added back by itself.

And people editing or deleting their messages: a `message` event with subtype `message_changed` (the new
message under `message`, the old one under `previous_message`) or `message_deleted` (`deleted_ts`).
"""

from __future__ import annotations

import copy
from typing import Any

from .sender import SenderMixin
from .state import BOT_USER, TEAM_ID, Channel, Delivery


class ChannelLifeMixin(SenderMixin):
    def archive_channel(self, user_id: str, channel_id: str) -> Delivery | None:
        ch = self._member_channel(user_id, channel_id)
        if ch.is_archived:
            raise ValueError(f"{channel_id} is already archived")
        ch.is_archived = True
        return self._channel_event(ch, "archive", user_id, {"user": user_id}, "archived the channel")

    def unarchive_channel(self, user_id: str, channel_id: str) -> Delivery | None:
        ch = self._channel(channel_id)
        if not ch.is_archived:
            raise ValueError(f"{channel_id} is not archived")
        ch.is_archived = False
        return self._channel_event(ch, "unarchive", user_id, {"user": user_id}, "un-archived the channel")

    def rename_channel(self, user_id: str, channel_id: str, name: str) -> Delivery | None:
        ch = self._member_channel(user_id, channel_id)
        if any(c.name == name for c in self._channels.values()):
            raise ValueError(f"#{name} is taken")
        old, ch.name = ch.name, name
        details = {"channel": {"id": ch.id, "name": name, "created": ch.created}}
        self._post_system_message(
            ch, user_id, "channel_name", f"renamed the channel from “{old}” to “{name}”"
        )
        return self._channel_event(ch, "rename", user_id, details, None)

    def convert_to_private(self, user_id: str, channel_id: str) -> Delivery | None:
        """Only the message subtype announces it; the id stays, `channel_type` is already "group"."""
        ch = self._member_channel(user_id, channel_id)
        if ch.is_private:
            raise ValueError(f"{channel_id} is already private")
        ch.is_private = True
        text = "made this channel *private*. Now, it can only be viewed or joined by invitation."
        return self._post_system_message(ch, user_id, "channel_convert_to_private", text)

    def delete_channel(self, user_id: str, channel_id: str) -> Delivery | None:
        ch = self._channel(channel_id)
        bot_saw = not ch.is_private or BOT_USER.id in ch.members
        with self._lock:
            del self._channels[ch.id]
            self._changed("channel_deleted", channel=ch.id)
        self._flush()
        kind = "group_deleted" if ch.is_private else "channel_deleted"
        return self._event({"type": kind, "channel": ch.id, "event_ts": self._next_ts()}) if bot_saw else None

    def remove_bot(self, actor_id: str, channel_id: str) -> Delivery | None:
        """`actor_id` removes the bot from the channel (/remove @postmortem-bot)."""
        ch = self._member_channel(actor_id, channel_id)
        if BOT_USER.id not in ch.members:
            raise ValueError(f"the bot is not in {channel_id}")
        with self._lock:
            message = self._remove_member(ch, BOT_USER.id)
        self._flush()
        kind = "group_left" if ch.is_private else "channel_left"
        return self._event({"type": kind, "channel": ch.id, "actor_id": actor_id, "event_ts": message["ts"]})

    def edit_message(self, user_id: str, channel_id: str, ts: str, text: str) -> Delivery | None:
        """`user_id` edits their message `ts`: Slack's ``message_changed``."""
        ch = self._member_channel(user_id, channel_id)
        with self._lock:
            message = self._find_message(ch.id, ts)
            if message is None or message.get("user") != user_id:
                raise ValueError(f"{user_id} has no message {ts} in {channel_id}")
            previous = copy.deepcopy(message)
            message["text"] = text
            message.pop("blocks", None)
            message["edited"] = {"user": user_id, "ts": self._next_ts()}
            self._changed("message_updated", channel=ch.id, ts=ts)
            event = {
                "type": "message",
                "subtype": "message_changed",
                "hidden": True,
                "channel": ch.id,
                "ts": self._next_ts(),
                "message": copy.deepcopy(message),
                "previous_message": previous,
                "event_ts": self._next_ts(),
                "channel_type": ch.channel_type,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        return self._event(event) if bot_listens else None

    def delete_message(self, user_id: str, channel_id: str, ts: str) -> Delivery | None:
        """`user_id` deletes their message `ts`: Slack's ``message_deleted``."""
        ch = self._member_channel(user_id, channel_id)
        with self._lock:
            message = self._find_message(ch.id, ts)
            if message is None or message.get("user") != user_id:
                raise ValueError(f"{user_id} has no message {ts} in {channel_id}")
            self._messages[ch.id].remove(message)
            self._changed("message_deleted", channel=ch.id, ts=ts)
            event = {
                "type": "message",
                "subtype": "message_deleted",
                "hidden": True,
                "channel": ch.id,
                "ts": self._next_ts(),
                "deleted_ts": ts,
                "previous_message": copy.deepcopy(message),
                "event_ts": self._next_ts(),
                "channel_type": ch.channel_type,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        return self._event(event) if bot_listens else None

    def _channel_event(
        self, ch: Channel, verb: str, user_id: str, details: dict[str, Any], message: str | None
    ) -> Delivery | None:
        if message is not None:
            self._post_system_message(ch, user_id, f"channel_{verb}", message)
        kind = f"{'group' if ch.is_private else 'channel'}_{verb}"
        event = {"type": kind, "channel": ch.id, **details, "event_ts": self._next_ts()}
        if BOT_USER.id not in ch.members:
            return None
        return self._event(event)

    def _post_system_message(self, ch: Channel, user_id: str, subtype: str, text: str) -> Delivery | None:
        """The message Slack shows for a channel change, delivered like any message the bot can see."""
        with self._lock:
            ts = self._next_ts()
            message = {"type": "message", "subtype": subtype, "ts": ts, "user": user_id, "text": text}
            self._store_message(ch, message)
            event = {
                **copy.deepcopy(message),
                "channel": ch.id,
                "event_ts": ts,
                "channel_type": ch.channel_type,
                "team": TEAM_ID,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        return self._event(event) if bot_listens else None
