"""The Web API half of the sandbox: the methods the bot calls, answered as strictly as Slack does.

Handlers take the request's arguments (JSON body, form fields or query string, merged) and either
return the success payload or raise ``SlackError``. They run under the workspace lock; a failed call
raises before it mutates anything, so a refused call leaves no trace but its call-log entry.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections.abc import Callable
from typing import Any

from .block_checks import validate_message_blocks, validate_view
from .state import (
    APP_ID,
    BOT_ID,
    BOT_USER,
    MAX_VIEW_STACK,
    TEAM_DOMAIN,
    TEAM_ID,
    TRIGGER_TTL_SECONDS,
    Channel,
    SlackError,
    WorkspaceState,
)
from .viewstate import seed_state

MESSAGE_TEXT_LIMIT = 40_000
_CHANNEL_NAME = re.compile(r"^[a-z0-9_\-\u00c0-\uffff]+$")

Handler = Callable[["WebApiMixin", dict[str, Any]], dict[str, Any]]
METHODS: dict[str, Handler] = {}
APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


def api(name: str) -> Callable[[Handler], Handler]:
    """Register a handler for the Web API method `name`."""

    def register(fn: Handler) -> Handler:
        METHODS[name] = fn
        return fn

    return register


# argument helpers -------------------------------------------------------------------------------


def _json_arg(args: dict[str, Any], key: str, error: str) -> Any:
    """An argument that is JSON: an object in a JSON body, a JSON string in a form body."""
    value = args.get(key)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise SlackError(error, messages=[f"{key} is not valid JSON"]) from exc
    return value


def _bool(args: dict[str, Any], key: str, default: bool = False) -> bool:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _int(args: dict[str, Any], key: str, default: int) -> int:
    value = args.get(key)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise SlackError("invalid_arguments", messages=[f"{key} must be an integer"]) from exc


def _required(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if value in (None, ""):
        raise SlackError("invalid_arguments", messages=[f"missing required field: {key}"])
    return str(value)


def _page(items: list[Any], args: dict[str, Any], *, default_limit: int = 100) -> tuple[list[Any], str]:
    """Cursor pagination as Slack does it: an opaque base64 cursor, "" on the last page."""
    limit = max(1, min(_int(args, "limit", default_limit), 1000))
    cursor = args.get("cursor") or ""
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except ValueError as exc:
            raise SlackError("invalid_cursor") from exc
    end = start + limit
    next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return items[start:end], next_cursor


def _ts_key(ts: str) -> float:
    return float(ts)


class WebApiMixin(WorkspaceState):
    """Web API method implementations over the workspace state."""

    # helpers --------------------------------------------------------------------------------

    def _visible_channel(self, channel_id: Any) -> Channel:
        """A channel the bot can see: private ones only when it is a member (Slack hides them)."""
        ch = self._channels.get(str(channel_id or ""))
        if ch is None or (ch.is_private and BOT_USER.id not in ch.members):
            raise SlackError("channel_not_found")
        return ch

    def _postable_channel(self, channel_id: Any) -> Channel:
        """Where chat.postMessage may post: a channel the bot is in, or a DM opened by user id."""
        target = str(channel_id or "")
        if target in self.users and target != BOT_USER.id:
            return self._im_for(target)
        ch = self._visible_channel(target)
        if ch.is_archived:
            raise SlackError("is_archived")
        if BOT_USER.id not in ch.members:
            raise SlackError("not_in_channel")
        return ch

    def _message_content(self, args: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
        """text/blocks/attachments of a message, validated; raises what Slack raises."""
        blocks = _json_arg(args, "blocks", "invalid_blocks_format")
        attachments = _json_arg(args, "attachments", "invalid_attachments")
        text = args.get("text")
        text = None if text is None else str(text)
        if blocks is not None and not isinstance(blocks, list):
            raise SlackError("invalid_blocks_format", messages=["blocks must be an array"])
        if blocks:
            errors = validate_message_blocks(blocks)
            if errors:
                raise SlackError("invalid_blocks", errors=errors, messages=errors)
        if text is not None and len(text) > MESSAGE_TEXT_LIMIT:
            # Never truncated here: a too-long text is the bot's bug, so it must surface.
            raise SlackError("msg_too_long")
        if blocks and not text:
            # House rule, stricter than Slack (which only warns): every message with blocks carries
            # a `text` fallback for notifications and screen readers (docs/architecture.md, "Slack").
            raise SlackError(
                "missing_text_fallback",
                messages=["messages with blocks must also carry `text` (sandbox house rule)"],
            )
        if required and not text and not blocks and not attachments:
            raise SlackError("no_text")
        content: dict[str, Any] = {"text": text or ""}
        if blocks:
            content["blocks"] = blocks
        if attachments:
            content["attachments"] = attachments
        return content

    def _api_message(
        self, channel_id: str, message: dict[str, Any], *, metadata: bool = True
    ) -> dict[str, Any]:
        """A stored message as the Web API returns it (thread summary on parents)."""
        out = copy.deepcopy(message)
        if not metadata:
            out.pop("metadata", None)
        replies = [
            m
            for m in self._messages.get(channel_id, [])
            if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]
        ]
        if replies:
            out["thread_ts"] = message["ts"]
            out["reply_count"] = len(replies)
            out["reply_users"] = sorted({m.get("user") for m in replies if m.get("user")})
            out["reply_users_count"] = len(out["reply_users"])
            out["latest_reply"] = replies[-1]["ts"]
        return out

    def _store_message(self, channel: Channel, message: dict[str, Any]) -> dict[str, Any]:
        self._messages.setdefault(channel.id, []).append(message)
        self._messages[channel.id].sort(key=lambda m: _ts_key(m["ts"]))
        self._changed(
            "message_posted", channel=channel.id, ts=message["ts"], thread_ts=message.get("thread_ts")
        )
        return message

    def _thread_parent(self, channel: Channel, thread_ts: Any) -> str | None:
        if not thread_ts:
            return None
        parent = self._find_message(channel.id, str(thread_ts))
        if parent is None:
            raise SlackError("thread_not_found")
        # Replying to a reply lands in the same thread, under the parent.
        parent_ts: str = parent.get("thread_ts") or parent["ts"]
        return parent_ts

    def _exchange_trigger(self, trigger_id: Any) -> str:
        """Use a trigger_id once, within 3 seconds; returns the user it belongs to."""
        trigger = self._triggers.get(str(trigger_id or ""))
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger.used:
            raise SlackError("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > TRIGGER_TTL_SECONDS:
            raise SlackError("expired_trigger_id")
        trigger.used = True
        return trigger.user_id

    def _parse_view(self, args: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
        view = _json_arg(args, "view", "invalid_arguments")
        if view is None:
            raise SlackError("invalid_arguments", messages=["missing required field: view"])
        errors = validate_view(view, allowed_types=allowed)
        if errors:
            raise SlackError("invalid_arguments", messages=errors)
        if not isinstance(view, dict):  # validate_view reports anything else
            raise SlackError("invalid_arguments", messages=["/view: must be an object"])
        return view

    def _build_view(
        self,
        spec: dict[str, Any],
        *,
        view_id: str,
        root_id: str,
        previous_id: str | None,
        old: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The stored view object in Slack's shape, with state carried over from `old`."""
        blocks = copy.deepcopy(spec.get("blocks") or [])
        for i, block in enumerate(blocks):
            # Slack fills in missing block_ids with fresh random ones, which is why typed input in
            # a block without an explicit block_id is lost on views.update.
            block.setdefault("block_id", f"{view_id}-b{i}-{self._next_id('auto')}")
        view = {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": spec["type"],
            "blocks": blocks,
            "private_metadata": spec.get("private_metadata", ""),
            "callback_id": spec.get("callback_id", ""),
            "external_id": spec.get("external_id", ""),
            "hash": f"{int(self.clock())}.{self._next_id('h', 8)}",
            "clear_on_close": bool(spec.get("clear_on_close", False)),
            "notify_on_close": bool(spec.get("notify_on_close", False)),
            "previous_view_id": previous_id,
            "root_view_id": root_id,
            "app_id": APP_ID,
            "app_installed_team_id": TEAM_ID,
            "bot_id": BOT_ID,
        }
        for key in ("title", "close", "submit", "submit_disabled"):
            if key in spec:
                view[key] = copy.deepcopy(spec[key])
        previous_values = (old or {}).get("state", {}).get("values")
        view["state"] = {"values": seed_state(view, previous_values)}
        return view

    def _check_external_id(self, spec: dict[str, Any], exclude: str | None = None) -> None:
        external_id = spec.get("external_id")
        if external_id and any(
            v.get("external_id") == external_id and vid != exclude for vid, v in self._views.items()
        ):
            raise SlackError("duplicate_external_id")

    def _open_view(self, user_id: str, spec: dict[str, Any], *, push: bool) -> dict[str, Any]:
        stack = self._stacks.setdefault(user_id, [])
        if push:
            if not stack:
                raise SlackError("not_found", messages=["there is no open modal to push onto"])
            if len(stack) >= MAX_VIEW_STACK:
                raise SlackError("push_limit_reached")
        self._check_external_id(spec)
        view_id = self._next_id("V")
        root = stack[0] if push else view_id
        previous = stack[-1] if push else None
        view = self._build_view(spec, view_id=view_id, root_id=root, previous_id=previous)
        if not push:
            # views.open replaces whatever modal the person had open.
            for old in stack:
                self._views.pop(old, None)
                self._view_owner.pop(old, None)
            stack.clear()
        stack.append(view_id)
        self._views[view_id] = view
        self._view_owner[view_id] = user_id
        self._changed("view_opened", view_id=view_id, user=user_id)
        return view

    def _update_view(self, view_id: str, spec: dict[str, Any], expected_hash: Any = None) -> dict[str, Any]:
        old = self._views[view_id]
        if expected_hash and expected_hash != old["hash"]:
            raise SlackError("hash_conflict")
        self._check_external_id(spec, exclude=view_id)
        view = self._build_view(
            spec, view_id=view_id, root_id=old["root_view_id"], previous_id=old["previous_view_id"], old=old
        )
        self._views[view_id] = view
        self._view_errors.pop(view_id, None)
        self._changed("view_updated", view_id=view_id, user=self._view_owner.get(view_id))
        return view

    def _close_views(self, user_id: str, view_id: str, *, all_views: bool) -> None:
        stack = self._stacks.get(user_id, [])
        closing = list(stack) if all_views else [view_id]
        for vid in closing:
            if vid in stack:
                stack.remove(vid)
            self._views.pop(vid, None)
            self._view_owner.pop(vid, None)
            self._view_errors.pop(vid, None)
            self._changed("view_closed", view_id=vid, user=user_id)

    # auth / apps ----------------------------------------------------------------------------

    @api("auth.test")
    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Sandbox",
            "user": BOT_USER.name,
            "team_id": TEAM_ID,
            "user_id": BOT_USER.id,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    @api("apps.connections.open")
    def _apps_connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"url": self._socket_url()}

    def _socket_url(self) -> str:  # provided by the server half
        raise SlackError("internal_error", messages=["socket mode is not running"])

    # chat -----------------------------------------------------------------------------------

    @api("chat.postMessage")
    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        # Content first: posting to a user id opens a DM, and a refused call must change nothing.
        content = self._message_content(args)
        channel = self._postable_channel(args.get("channel"))
        thread_ts = self._thread_parent(channel, args.get("thread_ts"))
        metadata = _json_arg(args, "metadata", "invalid_metadata_format")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and isinstance(metadata.get("event_type"), str)
            and isinstance(metadata.get("event_payload"), dict)
        ):
            raise SlackError("invalid_metadata_format")
        message: dict[str, Any] = {
            "type": "message",
            "ts": self._next_ts(),
            "user": BOT_USER.id,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": TEAM_ID,
            **content,
        }
        if thread_ts:
            message["thread_ts"] = thread_ts
            if _bool(args, "reply_broadcast"):
                message["subtype"] = "thread_broadcast"
        if metadata:
            message["metadata"] = metadata
        self._store_message(channel, message)
        return {"channel": channel.id, "ts": message["ts"], "message": self._api_message(channel.id, message)}

    @api("chat.update")
    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(args.get("channel"))
        if channel.is_archived:
            raise SlackError("is_archived")
        message = self._find_message(channel.id, args.get("ts"))
        if message is None:
            raise SlackError("message_not_found")
        if message.get("bot_id") != BOT_ID:
            raise SlackError("cant_update_message")
        content = self._message_content(args)
        metadata = _json_arg(args, "metadata", "invalid_metadata_format")
        for key in ("blocks", "attachments"):
            message.pop(key, None)
        message.update(content)
        if metadata:
            message["metadata"] = metadata
        message["edited"] = {"user": BOT_USER.id, "ts": self._next_ts()}
        self._changed("message_updated", channel=channel.id, ts=message["ts"])
        return {
            "channel": channel.id,
            "ts": message["ts"],
            "text": message["text"],
            "message": self._api_message(channel.id, message),
        }

    @api("chat.postEphemeral")
    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        content = self._message_content(args)
        channel = self._postable_channel(args.get("channel"))
        user_id = str(args.get("user") or "")
        if user_id not in self.users:
            raise SlackError("user_not_found")
        if user_id not in channel.members:
            raise SlackError("user_not_in_channel")
        ephemeral = {
            "type": "message",
            "ts": self._next_ts(),
            "channel": channel.id,
            "to_user": user_id,
            "user": BOT_USER.id,
            "bot_id": BOT_ID,
            **content,
        }
        thread_ts = self._thread_parent(channel, args.get("thread_ts"))
        if thread_ts:
            ephemeral["thread_ts"] = thread_ts
        self._ephemerals.append(ephemeral)
        self._changed("ephemeral_posted", channel=channel.id, user=user_id, ts=ephemeral["ts"])
        return {"message_ts": ephemeral["ts"]}

    @api("chat.getPermalink")
    def _chat_get_permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(args.get("channel"))
        ts = args.get("message_ts")
        if self._find_message(channel.id, ts) is None:
            raise SlackError("message_not_found")
        return {"channel": channel.id, "permalink": self._permalink(channel.id, str(ts))}

    def _permalink(self, channel_id: str, ts: str) -> str:
        return f"https://{TEAM_DOMAIN}.slack.com/archives/{channel_id}/p{ts.replace('.', '')}"

    # conversations --------------------------------------------------------------------------

    @api("conversations.create")
    def _conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        name = str(args.get("name") or "")
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _CHANNEL_NAME.match(name):
            raise SlackError("invalid_name_specials")
        if any(c.name == name for c in self._channels.values()):
            raise SlackError("name_taken")
        channel = self._create_channel(name, _bool(args, "is_private"), [BOT_USER.id], BOT_USER.id)
        return {"channel": channel.to_api()}

    def _create_channel(self, name: str, is_private: bool, members: list[str], creator: str) -> Channel:
        channel_id = self._next_id("G" if is_private else "C")
        channel = Channel(
            channel_id, name, is_private, list(dict.fromkeys(members)), int(self.clock()), creator
        )
        self._channels[channel_id] = channel
        self._messages[channel_id] = []
        self._changed("channel_created", channel=channel_id, name=name)
        return channel

    @api("conversations.join")
    def _conversations_join(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(args.get("channel"))
        if channel.is_private or channel.is_im:
            # Slack: a private channel can only be joined by invitation.
            raise SlackError("method_not_supported_for_channel_type")
        if channel.is_archived:
            raise SlackError("is_archived")
        if BOT_USER.id in channel.members:
            return {
                "channel": channel.to_api(),
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        self._add_member(channel, BOT_USER.id)
        return {"channel": channel.to_api()}

    def _add_member(self, channel: Channel, user_id: str, inviter: str | None = None) -> dict[str, Any]:
        """Add a member and post the ``channel_join`` message Slack shows for it."""
        channel.members.append(user_id)
        return self._membership_message(channel, user_id, joined=True, inviter=inviter)

    def _remove_member(self, channel: Channel, user_id: str) -> dict[str, Any]:
        """Remove a member and post the ``channel_leave`` message Slack shows for it."""
        channel.members.remove(user_id)
        return self._membership_message(channel, user_id, joined=False)

    def _membership_message(
        self, channel: Channel, user_id: str, *, joined: bool, inviter: str | None = None
    ) -> dict[str, Any]:
        message = {
            "type": "message",
            "subtype": "channel_join" if joined else "channel_leave",
            "ts": self._next_ts(),
            "user": user_id,
            "text": f"<@{user_id}> has {'joined' if joined else 'left'} the channel",
        }
        if inviter:
            message["inviter"] = inviter
        self._store_message(channel, message)
        self._changed("member_joined" if joined else "member_left", channel=channel.id, user=user_id)
        return message

    @api("conversations.info")
    def _conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"channel": self._visible_channel(args.get("channel")).to_api()}

    @api("conversations.list")
    def _conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        types = set(str(args.get("types") or "public_channel").split(","))
        unknown = types - {"public_channel", "private_channel", "mpim", "im"}
        if unknown:
            raise SlackError("invalid_types", messages=[f"unknown types: {sorted(unknown)}"])
        exclude_archived = _bool(args, "exclude_archived")
        found = []
        for ch in self._channels.values():
            kind = "im" if ch.is_im else ("private_channel" if ch.is_private else "public_channel")
            if kind not in types or (exclude_archived and ch.is_archived):
                continue
            if ch.is_private and BOT_USER.id not in ch.members:
                continue
            found.append(ch.to_api())
        page, cursor = _page(found, args)
        return {"channels": page, "response_metadata": {"next_cursor": cursor}}

    @api("conversations.members")
    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(args.get("channel"))
        page, cursor = _page(list(channel.members), args)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _readable_channel(self, channel_id: Any) -> Channel:
        channel = self._visible_channel(channel_id)
        if BOT_USER.id not in channel.members:
            raise SlackError("not_in_channel")
        return channel

    @api("conversations.history")
    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable_channel(args.get("channel"))
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        inclusive = _bool(args, "inclusive")
        with_metadata = _bool(args, "include_all_metadata")

        def in_range(ts: float) -> bool:
            return (oldest <= ts <= latest) if inclusive else (oldest < ts < latest)

        top = [
            m
            for m in self._messages.get(channel.id, [])
            if (m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast")
            and in_range(_ts_key(m["ts"]))
        ]
        newest_first = [self._api_message(channel.id, m, metadata=with_metadata) for m in reversed(top)]
        page, cursor = _page(newest_first, args)
        return {
            "messages": page,
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    @api("conversations.replies")
    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable_channel(args.get("channel"))
        ts = args.get("ts")
        parent = self._find_message(channel.id, ts)
        if parent is None:
            raise SlackError("thread_not_found")
        root = parent.get("thread_ts") or parent["ts"]
        thread = [
            m for m in self._messages.get(channel.id, []) if m["ts"] == root or m.get("thread_ts") == root
        ]
        with_metadata = _bool(args, "include_all_metadata")
        page, cursor = _page([self._api_message(channel.id, m, metadata=with_metadata) for m in thread], args)
        return {"messages": page, "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}

    @api("conversations.invite")
    def _conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._visible_channel(args.get("channel"))
        if channel.is_archived:
            raise SlackError("is_archived")
        if BOT_USER.id not in channel.members:
            raise SlackError("not_in_channel")
        users = [u.strip() for u in str(args.get("users") or "").split(",") if u.strip()]
        if not users:
            raise SlackError("no_user")
        for user_id in users:
            if user_id == BOT_USER.id:
                raise SlackError("cant_invite_self")
            if user_id not in self.users:
                raise SlackError("user_not_found")
        new = [u for u in dict.fromkeys(users) if u not in channel.members]
        if not new:
            raise SlackError("already_in_channel")
        for user_id in new:
            self._add_member(channel, user_id, inviter=BOT_USER.id)
        return {"channel": channel.to_api()}

    @api("conversations.open")
    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1:
            raise SlackError("not_supported", messages=["the sandbox opens DMs with one person only"])
        if users[0] not in self.users or users[0] == BOT_USER.id:
            raise SlackError("user_not_found")
        return {"channel": {"id": self._im_for(users[0]).id}}

    # users ----------------------------------------------------------------------------------

    @api("users.info")
    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user") or ""))
        if user is None:
            raise SlackError("user_not_found")
        return {"user": user.to_api()}

    @api("users.lookupByEmail")
    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(args.get("email") or "")
        if not email:
            raise SlackError("invalid_arguments", messages=["[ERROR] missing required field: email"])
        # Slack matches the address case-insensitively and never finds bots (they have no e-mail).
        found = [u for u in self.users.values() if u.email and u.email.lower() == email.lower()]
        if not found:
            raise SlackError("users_not_found")
        return {"user": found[0].to_api()}

    # views ----------------------------------------------------------------------------------

    @api("views.open")
    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = self._parse_view(args, ("modal",))
        user_id = self._exchange_trigger(args.get("trigger_id"))
        return {"view": copy.deepcopy(self._open_view(user_id, spec, push=False))}

    @api("views.push")
    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        spec = self._parse_view(args, ("modal",))
        user_id = self._exchange_trigger(args.get("trigger_id"))
        return {"view": copy.deepcopy(self._open_view(user_id, spec, push=True))}

    @api("views.update")
    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view_id, external_id = args.get("view_id"), args.get("external_id")
        if not view_id and not external_id:
            raise SlackError("invalid_arguments", messages=["either view_id or external_id is required"])
        spec = self._parse_view(args, ("modal", "home"))
        if external_id and not view_id:
            view_id = next(
                (vid for vid, v in self._views.items() if v.get("external_id") == external_id), None
            )
        if view_id not in self._views:
            raise SlackError("not_found")
        if self._views[view_id]["type"] != spec["type"]:
            raise SlackError("invalid_arguments", messages=["cannot change a view's type"])
        return {"view": copy.deepcopy(self._update_view(str(view_id), spec, args.get("hash")))}

    @api("views.publish")
    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user_id") or "")
        if user_id not in self.users or user_id == BOT_USER.id:
            raise SlackError("user_not_found")
        spec = self._parse_view(args, ("home",))
        old = self._home.get(user_id)
        if old and args.get("hash") and args["hash"] != old["hash"]:
            raise SlackError("hash_conflict")
        view_id = old["id"] if old else self._next_id("V")
        view = self._build_view(spec, view_id=view_id, root_id=view_id, previous_id=None, old=old)
        self._home[user_id] = view
        self._changed("home_published", user=user_id, view_id=view_id)
        return {"view": copy.deepcopy(view)}

    # reactions ------------------------------------------------------------------------------

    @api("reactions.add")
    def _reactions_add(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = self._readable_channel(args.get("channel"))
        message = self._find_message(channel.id, args.get("timestamp"))
        if message is None:
            raise SlackError("message_not_found")
        name = str(args.get("name") or "").strip(":")
        if not name:
            raise SlackError("invalid_name")
        self._add_reaction_to(channel, message, BOT_USER.id, name)
        return {}

    def _add_reaction_to(self, channel: Channel, message: dict[str, Any], user_id: str, name: str) -> None:
        reactions = message.setdefault("reactions", [])
        entry = next((r for r in reactions if r["name"] == name), None)
        if entry is None:
            entry = {"name": name, "users": [], "count": 0}
            reactions.append(entry)
        if user_id in entry["users"]:
            raise SlackError("already_reacted")
        entry["users"].append(user_id)
        entry["count"] = len(entry["users"])
        self._changed("reaction_added", channel=channel.id, ts=message["ts"], name=name, user=user_id)

    # files ----------------------------------------------------------------------------------

    @api("files.getUploadURLExternal")
    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = _required(args, "filename")
        length = _int(args, "length", -1)
        if length < 0:
            raise SlackError("invalid_arguments", messages=["missing required field: length"])
        file_id = self._next_id("F")
        self._files[file_id] = {
            "id": file_id,
            "name": filename,
            "title": filename,
            "alt_txt": args.get("alt_txt"),
            "size": length,
            "user": BOT_USER.id,
            "created": int(self.clock()),
            "channels": [],
            "state": "pending_upload",
        }
        return {"upload_url": f"{self._base_url()}/upload/{file_id}", "file_id": file_id}

    def _base_url(self) -> str:  # provided by the server half
        return "http://sandbox.invalid"

    @api("files.completeUploadExternal")
    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        entries = _json_arg(args, "files", "invalid_arguments")
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments", messages=["files must be a non-empty array"])
        for entry in entries:
            meta = self._files.get(str(entry.get("id")))
            if meta is None:
                raise SlackError("file_not_found")
            if meta["state"] != "uploaded":
                raise SlackError(
                    "file_upload_not_completed"
                    if meta["state"] == "pending_upload"
                    else "file_already_completed"
                )
        channel_ids = [c for c in [args.get("channel_id"), *str(args.get("channels") or "").split(",")] if c]
        channels = [self._postable_channel(c) for c in channel_ids]
        initial_comment = args.get("initial_comment")
        if initial_comment and len(str(initial_comment)) > MESSAGE_TEXT_LIMIT:
            raise SlackError("msg_too_long")
        thread_ts = self._thread_parent(channels[0], args.get("thread_ts")) if channels else None
        shared = []
        for entry in entries:
            meta = self._files[str(entry["id"])]
            meta["state"] = "complete"
            if entry.get("title"):
                meta["title"] = entry["title"]
            meta["channels"] = [c.id for c in channels]
            shared.append(meta)
        for channel in channels:
            message = {
                "type": "message",
                "subtype": "file_share",
                "upload": True,
                "ts": self._next_ts(),
                "user": BOT_USER.id,
                "bot_id": BOT_ID,
                "text": str(initial_comment or ""),
                "files": [self._file_summary(m) for m in shared],
            }
            if thread_ts:
                message["thread_ts"] = thread_ts
            self._store_message(channel, message)
        for meta in shared:
            self._changed("file_shared", file_id=meta["id"], channels=meta["channels"])
        return {"files": [self._file_summary(m) for m in shared]}

    def _file_summary(self, meta: dict[str, Any]) -> dict[str, Any]:
        file_id = meta["id"]
        return {
            "id": file_id,
            "name": meta["name"],
            "title": meta["title"],
            "mimetype": meta.get("mimetype", "application/octet-stream"),
            "size": meta["size"],
            "user": meta["user"],
            "created": meta["created"],
            "url_private": f"{self._base_url()}/files/{file_id}/{meta['name']}",
            "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{meta['user']}/{file_id}/{meta['name']}",
        }

    def _receive_upload(self, file_id: str, data: bytes, content_type: str | None) -> tuple[int, str]:
        """The upload URL's answer: the bytes must match the announced length, like Slack's."""
        import mimetypes

        with self._lock:
            meta = self._files.get(file_id)
            if meta is None or meta["state"] != "pending_upload":
                return 404, "file not found or already uploaded"
            if len(data) != meta["size"]:
                return 400, f"expected {meta['size']} bytes, got {len(data)}"
            meta["state"] = "uploaded"
            meta["mimetype"] = mimetypes.guess_type(meta["name"])[0] or "application/octet-stream"
            self._file_content[file_id] = data
        return 200, f"OK - {len(data)}"
