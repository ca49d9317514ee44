"""The sender half of the sandbox: acting as Slack towards the bot.

People (alice, bob, carol) type slash commands, post messages, react, click buttons and fill modals;
the sandbox turns each into the payload Slack would send, signs it, and delivers it over HTTP to
``bot_url`` or, while a Socket Mode client is connected, as an envelope over the WebSocket.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from .block_checks import validate_view
from .faults import Faults
from .signing import signed_headers
from .socket_mode import SocketModeServer
from .state import (
    APP_ID,
    BOT_ID,
    BOT_USER,
    RESPONSE_URL_MAX_USES,
    RESPONSE_URL_TTL_SECONDS,
    SLACKBOT,
    TEAM_DOMAIN,
    TEAM_ID,
    VERIFICATION_TOKEN,
    Channel,
    Delivery,
    ResponseUrl,
    SlackError,
)
from .viewstate import entry_value, find_element, typed_entry
from .webapi import WebApiMixin

REQUIRED_FIELD = "Please complete this required field."


class SenderMixin(WebApiMixin):
    """Builds, signs and delivers what Slack sends to an app."""

    signing_secret: str
    bot_url: str | None
    ack_timeout: float
    faults: Faults
    _socket: SocketModeServer

    # transport ------------------------------------------------------------------------------

    def _user_ref(self, user_id: str) -> dict[str, Any]:
        user = self._user(user_id)
        return {"id": user.id, "username": user.name, "name": user.name, "team_id": TEAM_ID}

    def _team_ref(self) -> dict[str, Any]:
        return {"id": TEAM_ID, "domain": TEAM_DOMAIN}

    def _encode(self, kind: str, payload: dict[str, Any]) -> tuple[bytes, str]:
        if kind == "events_api":
            return json.dumps(payload).encode(), "application/json"
        if kind == "slash_commands":
            return urllib.parse.urlencode(payload).encode(), "application/x-www-form-urlencoded"
        form = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return form.encode(), "application/x-www-form-urlencoded"

    def _deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_num: int = 0,
        retry_reason: str = "",
        trigger_id: str | None = None,
    ) -> Delivery:
        """Send one request/envelope to the bot and record it in ``sb.deliveries``."""
        sent = self._socket.send(
            kind, payload, timeout=self.ack_timeout, retry_attempt=retry_num, retry_reason=retry_reason
        )
        if sent is not None:
            envelope_id, acked, ack_payload = sent
            delivery = Delivery(
                status=200 if acked else 0,
                body=json.dumps(ack_payload) if ack_payload is not None else "",
                json=ack_payload,
                envelope_id=envelope_id,
                trigger_id=trigger_id,
                kind=kind,
                payload=payload,
                transport="socket_mode",
                error=None if acked else "no_ack",
            )
        else:
            body, content_type = self._encode(kind, payload)
            headers = {}
            if retry_num:
                headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
            delivery = self.deliver_raw(body, headers=headers, content_type=content_type)
            delivery.kind, delivery.payload, delivery.trigger_id = kind, payload, trigger_id
        with self._lock:
            self._deliveries.append(
                {
                    "kind": kind,
                    "transport": delivery.transport,
                    "status": delivery.status,
                    "error": delivery.error,
                    "at": self.clock(),
                    "payload": payload,
                }
            )
        return delivery

    def deliver_raw(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        *,
        sign: bool = True,
    ) -> Delivery:
        """POST `body` to ``bot_url`` over HTTP, signed unless `sign` is False or the headers sign it.

        `headers` override the computed ones, so a test can send a bad signature or a stale
        ``X-Slack-Request-Timestamp`` and see the bot refuse it.
        """
        if not self.bot_url:
            return Delivery(status=0, error="no_bot_url: set sb.bot_url or connect a Socket Mode client")
        timestamp = int(self.clock())
        all_headers = (
            signed_headers(self.signing_secret, timestamp, body, content_type)
            if sign
            else {"Content-Type": content_type}
        )
        all_headers.update(headers or {})
        request = urllib.request.Request(self.bot_url, data=body, headers=all_headers, method="POST")
        try:
            # Slack waits 3 seconds for an answer; after that it gives up (and retries events).
            with urllib.request.urlopen(request, timeout=self.ack_timeout) as response:
                status, raw, resp_headers = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, raw, resp_headers = exc.code, exc.read(), dict(exc.headers)
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            timed_out = isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError)
            return Delivery(status=0, error="http_timeout" if timed_out else f"connection_failed: {reason}")
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return Delivery(status=status, body=text, json=parsed, headers=resp_headers)

    def redeliver(
        self, delivery: Delivery | dict[str, Any], retry_num: int = 1, reason: str = "http_timeout"
    ) -> Delivery:
        """Send an event again as Slack's retry does (same event_id, X-Slack-Retry-* headers).

        `delivery` is a Delivery or an entry of ``sb.deliveries`` (post_message returns a ts only).
        """
        kind, payload = (
            (delivery.kind, delivery.payload)
            if isinstance(delivery, Delivery)
            else (delivery["kind"], delivery["payload"])
        )
        if kind != "events_api":
            raise ValueError("Slack only retries Events API deliveries")
        return self._deliver("events_api", payload, retry_num=retry_num, retry_reason=reason)

    def _event(self, event: dict[str, Any]) -> Delivery:
        with self._lock:
            event_id = f"Ev{self._next_id('event', 8)}"
        envelope = {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "context_team_id": TEAM_ID,
            "context_enterprise_id": None,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(float(event.get("event_ts") or self.clock())),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER.id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-sandbox-{event_id}",
        }
        return self._deliver("events_api", envelope)

    @property
    def deliveries(self) -> list[dict[str, Any]]:
        """Everything sent to the bot: kind, transport, status, error, at, payload."""
        with self._lock:
            return copy.deepcopy(self._deliveries)

    # people acting in channels --------------------------------------------------------------

    def _member_channel(self, user_id: str, channel: str) -> Channel:
        self._user(user_id)
        ch = self._channel(channel)
        if user_id not in ch.members:
            raise PermissionError(
                f"{user_id} is not a member of {channel}; call sb.join({user_id!r}, ...) first"
            )
        return ch

    def _new_response_url(
        self, channel_id: str, user_id: str, source_ts: str | None = None, ephemeral: bool = False
    ) -> str:
        with self._lock:
            url_id = self._next_id("R", 6) + uuid.uuid4().hex[:8]
            self._response_urls[url_id] = ResponseUrl(
                url_id, channel_id, user_id, self.clock(), source_ts, ephemeral
            )
        return f"{self._base_url()}/response/{url_id}"

    def slash_command(
        self, user_id: str, channel_id: str, command: str = "/postmortem", text: str = ""
    ) -> Delivery:
        """`user_id` types `command text` in a channel; the bot's immediate answer is shown as Slack does."""
        ch = self._member_channel(user_id, channel_id)
        trigger_id = self._new_trigger(user_id)
        response_url = self._new_response_url(ch.id, user_id)
        payload = {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM_ID,
            "team_domain": TEAM_DOMAIN,
            "channel_id": ch.id,
            "channel_name": "directmessage" if ch.is_im else ch.name,
            "user_id": user_id,
            "user_name": self.users[user_id].name,
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        delivery = self._deliver("slash_commands", payload, trigger_id=trigger_id)
        if delivery.status == 200 and (delivery.json or delivery.body.strip()):
            # The HTTP answer (or the ack payload) is shown like a response_url message.
            answer = delivery.json if isinstance(delivery.json, dict) else {"text": delivery.body}
            status, result = self._respond(response_url.rsplit("/", 1)[1], answer, count_use=False)
            if status != 200:
                delivery.error = f"slash command answer refused: {result}"
        return delivery

    def post_message(self, user_id: str, channel_id: str, text: str, thread_ts: str | None = None) -> str:
        """`user_id` posts `text` (in a thread when `thread_ts`); returns the new message's ts.

        The ``message`` event goes to the bot only when the bot is a member of the channel, as with
        Slack's ``message.channels`` subscription; the delivery is in ``sb.deliveries``.
        """
        ch = self._member_channel(user_id, channel_id)
        with self._lock:
            parent = self._thread_parent(ch, thread_ts) if thread_ts else None
            ts = self._next_ts()
            message: dict[str, Any] = {
                "type": "message",
                "ts": ts,
                "user": user_id,
                "text": text,
                "team": TEAM_ID,
                "client_msg_id": str(uuid.UUID(int=int(ts.replace(".", "")))),
                "blocks": [
                    {
                        "type": "rich_text",
                        "block_id": ts[-5:],
                        "elements": [
                            {"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}
                        ],
                    }
                ],
            }
            if parent:
                message["thread_ts"] = parent
                parent_msg = self._find_message(ch.id, parent) or {}
                message["parent_user_id"] = parent_msg.get("user")
            self._store_message(ch, message)
            event = {
                **copy.deepcopy(message),
                "channel": ch.id,
                "event_ts": ts,
                "channel_type": ch.channel_type,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        if bot_listens:
            self._event(event)
        return ts

    def slackbot_posts(self, channel_id: str, text: str) -> str:
        """Slackbot posts `text` (a /remind, a custom response): a plain ``message`` whose user is
        ``USLACKBOT`` and that has no ``bot_id``, as Slack sends it. Returns its ts."""
        ch = self._channel(channel_id)
        with self._lock:
            ts = self._next_ts()
            message = {"type": "message", "ts": ts, "user": SLACKBOT, "text": text, "team": TEAM_ID}
            self._store_message(ch, message)
            event = {
                **copy.deepcopy(message),
                "channel": ch.id,
                "event_ts": ts,
                "channel_type": ch.channel_type,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        if bot_listens:
            self._event(event)
        return ts

    def add_reaction(self, user_id: str, channel_id: str, ts: str, name: str) -> Delivery | None:
        """`user_id` reacts with :name: to the message `ts`; delivers ``reaction_added``."""
        ch = self._member_channel(user_id, channel_id)
        with self._lock:
            message = self._find_message(ch.id, ts)
            if message is None:
                raise KeyError(f"no message {ts} in {channel_id}")
            self._add_reaction_to(ch, message, user_id, name.strip(":"))
            event_ts = self._next_ts()
            event = {
                "type": "reaction_added",
                "user": user_id,
                "reaction": name.strip(":"),
                "item_user": message.get("user"),
                "item": {"type": "message", "channel": ch.id, "ts": ts},
                "event_ts": event_ts,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        return self._event(event) if bot_listens else None

    def join(self, user_id: str, channel_id: str) -> Delivery | None:
        """`user_id` joins the channel: a ``channel_join`` message and ``member_joined_channel``."""
        return self._membership_change(user_id, channel_id, joins=True)

    def leave(self, user_id: str, channel_id: str) -> Delivery | None:
        """`user_id` leaves the channel: a ``channel_leave`` message and ``member_left_channel``."""
        return self._membership_change(user_id, channel_id, joins=False)

    def _membership_change(self, user_id: str, channel_id: str, *, joins: bool) -> Delivery | None:
        self._user(user_id)
        ch = self._channel(channel_id)
        with self._lock:
            if joins == (user_id in ch.members):
                state = "already" if joins else "not"
                raise ValueError(f"{user_id} is {state} a member of {channel_id}")
            message = self._add_member(ch, user_id) if joins else self._remove_member(ch, user_id)
            member_event = {
                "type": "member_joined_channel" if joins else "member_left_channel",
                "user": user_id,
                "channel": ch.id,
                "channel_type": "G" if ch.is_private else "C",
                "team": TEAM_ID,
                "event_ts": message["ts"],
            }
            message_event = {
                **copy.deepcopy(message),
                "channel": ch.id,
                "event_ts": message["ts"],
                "channel_type": ch.channel_type,
            }
            bot_listens = BOT_USER.id in ch.members
        self._flush()
        if not bot_listens:
            return None
        delivery = self._event(member_event)
        self._event(message_event)
        return delivery

    def _find_visible_message(self, user_id: str, ch: Channel, ts: str) -> tuple[dict[str, Any], bool]:
        message = self._find_message(ch.id, ts)
        if message is not None:
            return message, False
        for eph in self._ephemerals:
            if eph["channel"] == ch.id and eph["ts"] == ts and eph["to_user"] == user_id:
                return eph, True
        raise KeyError(f"no message {ts} in {ch.id} visible to {user_id}")

    def click_button(
        self, user_id: str, channel_id: str, ts: str, action_id: str, value: str | None = None
    ) -> Delivery:
        """`user_id` clicks the button `action_id` (with `value`, when several share the id) on a message."""
        ch = self._member_channel(user_id, channel_id)
        with self._lock:
            message, ephemeral = self._find_visible_message(user_id, ch, ts)
            button, block_id = None, None
            for block in message.get("blocks") or []:
                elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
                if isinstance(block.get("accessory"), dict):
                    elements.append(block["accessory"])
                for element in elements:
                    if (
                        element.get("type") == "button"
                        and element.get("action_id") == action_id
                        and value in (None, element.get("value"))
                    ):
                        button, block_id = element, block.get("block_id")
                        break
                if button:
                    break
            if button is None:
                raise KeyError(f"no button action_id={action_id!r} value={value!r} on message {ts}")
            api_message = self._api_message(ch.id, message) if not ephemeral else None
        trigger_id = self._new_trigger(user_id)
        action = {
            "type": "button",
            "action_id": action_id,
            "block_id": block_id,
            "text": copy.deepcopy(button.get("text")),
            "action_ts": self._next_ts(),
        }
        for key in ("value", "style", "url"):
            if key in button:
                action[key] = button[key]
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_ref(user_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": ch.id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": trigger_id,
            "team": self._team_ref(),
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": ch.id, "name": "directmessage" if ch.is_im else ch.name},
            "state": {"values": {}},
            "response_url": self._new_response_url(ch.id, user_id, ts, ephemeral),
            "actions": [action],
        }
        if api_message is not None:
            payload["message"] = api_message
        return self._deliver("interactive", payload, trigger_id=trigger_id)

    def message_shortcut(self, user_id: str, channel_id: str, ts: str, callback_id: str) -> Delivery:
        """`user_id` runs the message shortcut `callback_id` on message `ts`."""
        ch = self._member_channel(user_id, channel_id)
        with self._lock:
            message, _ = self._find_visible_message(user_id, ch, ts)
            api_message = self._api_message(ch.id, message)
        trigger_id = self._new_trigger(user_id)
        payload = {
            "type": "message_action",
            "token": VERIFICATION_TOKEN,
            "action_ts": self._next_ts(),
            "team": self._team_ref(),
            "user": self._user_ref(user_id),
            "channel": {"id": ch.id, "name": ch.name},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": trigger_id,
            "response_url": self._new_response_url(ch.id, user_id, ts),
            "message_ts": ts,
            "message": api_message,
        }
        return self._deliver("interactive", payload, trigger_id=trigger_id)

    def open_app_home(self, user_id: str) -> Delivery:
        """`user_id` opens the bot's App Home tab: an ``app_home_opened`` event."""
        self._user(user_id)
        with self._lock:
            im = self._im_for(user_id)
            event: dict[str, Any] = {
                "type": "app_home_opened",
                "user": user_id,
                "channel": im.id,
                "tab": "home",
                "event_ts": self._next_ts(),
            }
            if user_id in self._home:
                event["view"] = copy.deepcopy(self._home[user_id])
        self._flush()
        return self._event(event)

    # people in modals -----------------------------------------------------------------------

    def _owned_view(self, user_id: str | None, view_id: str) -> dict[str, Any]:
        view = self._views.get(view_id)
        home = self._home.get(user_id) if user_id is not None else None
        if view is None and home is not None and home["id"] == view_id:
            return home  # the person's App Home tab: its buttons are clicked like a modal's
        if view is None:
            raise KeyError(f"view {view_id} is not open; open views: {sorted(self._views)}")
        if user_id is not None and self._view_owner.get(view_id) != user_id:
            raise PermissionError(f"view {view_id} belongs to {self._view_owner.get(view_id)}, not {user_id}")
        return view

    def fill_view(self, view_id: str, values: dict[str, dict[str, Any]]) -> None:
        """Type into a modal as a person would: ``{block_id: {action_id: value}}``.

        Values by element: text inputs take a string; static selects and radio buttons the option's
        ``value``; users/conversations/channels selects an id; datepickers "YYYY-MM-DD"; checkboxes
        and multi selects a list. Nothing is sent to the bot (as in Slack, unless dispatch_action).
        """
        with self._lock:
            view = self._owned_view(None, view_id)
            state = view["state"]["values"]
            updates = {}
            for block_id, actions in values.items():
                for action_id, value in actions.items():
                    found_block, element = find_element(view, action_id, block_id)
                    updates[(found_block, action_id)] = typed_entry(element, value)
            for (block_id, action_id), entry in updates.items():
                state.setdefault(block_id, {})[action_id] = entry
            self._view_errors.pop(view_id, None)
            self._changed("view_state", view_id=view_id)
        self._flush()

    def view_action(
        self, user_id: str, view_id: str, action_id: str, block_id: str | None = None, value: Any = None
    ) -> Delivery:
        """`user_id` clicks a button or changes a select in a modal: ``block_actions`` with the view."""
        with self._lock:
            view = self._owned_view(user_id, view_id)
            found_block, element = find_element(view, action_id, block_id)
            action: dict[str, Any] = {
                "type": element["type"],
                "action_id": action_id,
                "block_id": found_block,
                "action_ts": self._next_ts(),
            }
            if element["type"] in ("button", "overflow"):
                if element["type"] == "button":
                    action["text"] = copy.deepcopy(element.get("text"))
                    if "value" in element:
                        action["value"] = element["value"]
                else:
                    action["selected_option"] = next(
                        (copy.deepcopy(o) for o in element.get("options", []) if o.get("value") == value),
                        None,
                    )
            else:
                entry = typed_entry(element, value)
                view["state"]["values"].setdefault(found_block, {})[action_id] = entry
                action.update({k: v for k, v in entry.items() if k != "type"})
                self._changed("view_state", view_id=view_id)
            view_copy = copy.deepcopy(view)
        self._flush()
        trigger_id = self._new_trigger(user_id, view_id)
        payload = {
            "type": "block_actions",
            "user": self._user_ref(user_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "container": {"type": "view", "view_id": view_id},
            "trigger_id": trigger_id,
            "team": self._team_ref(),
            "enterprise": None,
            "is_enterprise_install": False,
            "view": view_copy,
            "actions": [action],
        }
        return self._deliver("interactive", payload, trigger_id=trigger_id)

    def _client_side_errors(self, view: dict[str, Any]) -> dict[str, str]:
        """What the Slack client itself refuses before sending a submission (required inputs)."""
        errors = {}
        values = view["state"]["values"]
        for block in view.get("blocks") or []:
            if block.get("type") != "input" or block.get("optional"):
                continue
            element = block.get("element") or {}
            entry = values.get(block["block_id"], {}).get(element.get("action_id"), {})
            value = entry_value(entry)
            if value in (None, "", []):
                errors[block["block_id"]] = REQUIRED_FIELD
            elif isinstance(value, str) and len(value) < int(element.get("min_length") or 0):
                errors[block["block_id"]] = f"Please enter at least {element['min_length']} characters."
            elif isinstance(value, str) and element.get("max_length") and len(value) > element["max_length"]:
                errors[block["block_id"]] = f"Please enter at most {element['max_length']} characters."
        return errors

    def submit_view(
        self, user_id: str, view_id: str, *, client_validation: bool = True, copies: int = 1
    ) -> Delivery:
        """`user_id` presses Submit; the bot's answer closes, updates, pushes or annotates the modal.

        Like the Slack client, a modal with an empty required input is not sent at all: the result
        is a Delivery with status 0 and error "client_validation", and the messages are in
        ``sb.view_errors``. Pass ``client_validation=False`` to send it anyway.

        ``copies=2`` sends the same submission (same view id, same state) twice before the answer is
        applied: what reaches an app when a person presses Submit again while the first is in flight, or
        after Slack showed a timeout. The last answer is the one applied.
        """
        errors: dict[str, str] = {}
        with self._lock:
            view = self._owned_view(user_id, view_id)
            if view["type"] != "modal" or "submit" not in view:
                raise ValueError(f"view {view_id} has no submit button")
            if client_validation:
                errors = self._client_side_errors(view)
                if errors:
                    self._view_errors[view_id] = errors
                    self._changed("view_errors", view_id=view_id)
            view_copy = copy.deepcopy(view)
        self._flush()
        if client_validation and errors:
            return Delivery(status=0, error="client_validation", json={"errors": errors})
        trigger_id = self._new_trigger(user_id, view_id)
        payload = {
            "type": "view_submission",
            "team": self._team_ref(),
            "user": self._user_ref(user_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "trigger_id": trigger_id,
            "view": view_copy,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        for _ in range(copies):
            delivery = self._deliver("interactive", payload, trigger_id=trigger_id)
        if delivery.status == 200:
            delivery.error = self._apply_submission_answer(user_id, view_id, delivery)
        self._flush()
        return delivery

    def _apply_submission_answer(self, user_id: str, view_id: str, delivery: Delivery) -> str | None:
        """Do what Slack does with the bot's answer to a view_submission; an error string if refused."""
        answer = delivery.json
        if answer is None and delivery.body.strip():
            return "invalid_response: the answer to a view_submission must be empty or JSON"
        answer = answer or {}
        if not isinstance(answer, dict):
            return "invalid_response: the answer must be a JSON object"
        action = answer.get("response_action")
        with self._lock:
            if view_id not in self._views:
                return "view_closed: the view was closed before the answer arrived"
            view = self._views[view_id]
            if action is None:
                self._close_views(user_id, view_id, all_views=False)
            elif action == "clear":
                self._close_views(user_id, view_id, all_views=True)
            elif action == "errors":
                errors = answer.get("errors")
                input_ids = {b.get("block_id") for b in view["blocks"] if b.get("type") == "input"}
                if not isinstance(errors, dict) or not errors:
                    return "invalid_response: response_action errors needs a non-empty errors object"
                unknown = sorted(set(errors) - input_ids)
                if unknown:
                    # Slack refuses the whole answer and shows a generic error in the modal.
                    return f"invalid_response: errors for block_ids that are not input blocks: {unknown}"
                self._view_errors[view_id] = {k: str(v) for k, v in errors.items()}
                self._changed("view_errors", view_id=view_id)
            elif action in ("update", "push"):
                spec = answer.get("view")
                problems = validate_view(spec, allowed_types=("modal",))
                if problems:
                    return f"invalid_response: {problems}"
                if not isinstance(spec, dict):  # validate_view reports anything else
                    return "invalid_response: the view must be an object"
                try:
                    if action == "update":
                        self._update_view(view_id, spec)
                    else:
                        self._open_view(user_id, spec, push=True)
                except SlackError as exc:
                    return f"invalid_response: {exc.code}"
            else:
                return f"invalid_response: unknown response_action {action!r}"
        return None

    def close_view(self, user_id: str, view_id: str) -> Delivery | None:
        """`user_id` presses Cancel/X; sends ``view_closed`` when the view asked for notify_on_close."""
        with self._lock:
            view = copy.deepcopy(self._owned_view(user_id, view_id))
            self._close_views(user_id, view_id, all_views=False)
        self._flush()
        if not view.get("notify_on_close"):
            return None
        payload = {
            "type": "view_closed",
            "team": self._team_ref(),
            "user": self._user_ref(user_id),
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "view": view,
            "is_cleared": False,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return self._deliver("interactive", payload)

    # response_url ---------------------------------------------------------------------------

    def _respond(self, url_id: str, body: Any, *, count_use: bool = True) -> tuple[int, str]:
        """Apply a POST to a response_url; returns (HTTP status, body) as Slack's hooks answer."""
        with self._lock:
            url = self._response_urls.get(url_id)
            error = None
            if url is None:
                error = (404, "no_service")
            elif self.clock() - url.issued_at > RESPONSE_URL_TTL_SECONDS:
                error = (404, "expired_url")
            elif count_use and url.uses >= RESPONSE_URL_MAX_USES:
                error = (404, "used_url")
            elif not isinstance(body, dict):
                error = (400, "invalid_payload")
            if error is None and url is not None:  # no error: the url exists
                try:
                    self._apply_response(url, body)
                    if count_use:
                        url.uses += 1
                except SlackError as exc:
                    error = (400, exc.code)
            if count_use:  # an immediate HTTP answer to a slash command is not a response_url call
                self._calls.append(
                    {
                        "method": "response_url",
                        "args": copy.deepcopy(body),
                        "ok": error is None,
                        "error": error[1] if error else None,
                        "status": error[0] if error else 200,
                        "at": self.clock(),
                    }
                )
        self._flush()
        return error if error else (200, "ok")

    def _apply_response(self, url: ResponseUrl, body: dict[str, Any]) -> None:
        ch = self._channels[url.channel_id]
        if body.get("delete_original"):
            if url.source_ts is None:
                raise SlackError("no_original_message")
            if url.source_ephemeral:
                self._ephemerals[:] = [
                    e
                    for e in self._ephemerals
                    if not (e["ts"] == url.source_ts and e["to_user"] == url.user_id)
                ]
            else:
                self._messages[ch.id] = [m for m in self._messages[ch.id] if m["ts"] != url.source_ts]
            self._changed("message_deleted", channel=ch.id, ts=url.source_ts)
            return
        content = self._message_content(body)
        if body.get("replace_original") and url.source_ts is not None:
            original, _ = self._find_visible_message(url.user_id, ch, url.source_ts)
            for key in ("blocks", "attachments"):
                original.pop(key, None)
            original.update(content)
            self._changed("message_updated", channel=ch.id, ts=url.source_ts)
            return
        thread_ts = self._thread_parent(ch, body.get("thread_ts")) if body.get("thread_ts") else None
        ts = self._next_ts()
        if body.get("response_type") == "in_channel":
            message = {
                "type": "message",
                "ts": ts,
                "user": BOT_USER.id,
                "bot_id": BOT_ID,
                "app_id": APP_ID,
                **content,
            }
            if thread_ts:
                message["thread_ts"] = thread_ts
            self._store_message(ch, message)
        else:
            ephemeral = {
                "type": "message",
                "ts": ts,
                "channel": ch.id,
                "to_user": url.user_id,
                "user": BOT_USER.id,
                "bot_id": BOT_ID,
                **content,
            }
            self._ephemerals.append(ephemeral)
            self._changed("ephemeral_posted", channel=ch.id, user=url.user_id, ts=ts)
