"""Block Kit checks the sandbox applies, mirroring the limits Slack enforces.

Each check returns a list of problems in the form Slack uses in ``response_metadata.messages``
("must be less than 3001 characters [json-pointer:/blocks/0/text/text]"), so a failing test points
at the offending field. An empty list means Slack would accept the payload.

Scope: the block and element types a bot like ours sends. Unknown types are rejected, as Slack does,
so a typo in a builder fails in tests instead of in production.
"""

from __future__ import annotations

import re
from typing import Any

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
FIELD_LIMIT = 10
FIELD_TEXT_LIMIT = 2000
BUTTON_TEXT_LIMIT = 75
VIEW_TITLE_LIMIT = 24
PRIVATE_METADATA_LIMIT = 3000
ID_LIMIT = 255

_BLOCK_KEYS: dict[str, frozenset[str]] = {
    "section": frozenset({"text", "fields", "accessory", "expand"}),
    "divider": frozenset(),
    "image": frozenset({"image_url", "slack_file", "alt_text", "title"}),
    "actions": frozenset({"elements"}),
    "context": frozenset({"elements"}),
    "header": frozenset({"text"}),
    "input": frozenset({"label", "element", "dispatch_action", "hint", "optional"}),
    "rich_text": frozenset({"elements"}),
    "file": frozenset({"external_id", "source"}),
    "video": frozenset(
        {
            "alt_text",
            "author_name",
            "description",
            "provider_icon_url",
            "provider_name",
            "title",
            "title_url",
            "thumbnail_url",
            "video_url",
        }
    ),
    "markdown": frozenset({"text"}),
}
MESSAGE_BLOCK_TYPES = frozenset(_BLOCK_KEYS)
# Slack does not render file, video or markdown blocks in modals or App Home.
VIEW_BLOCK_TYPES = MESSAGE_BLOCK_TYPES - {"file", "video", "markdown"}

_SELECTS = frozenset(
    {
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
        "multi_static_select",
        "multi_external_select",
        "multi_users_select",
        "multi_conversations_select",
        "multi_channels_select",
    }
)
_INTERACTIVE = _SELECTS | {
    "button",
    "checkboxes",
    "radio_buttons",
    "overflow",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "workflow_button",
}
_INPUT_ONLY = frozenset(
    {
        "plain_text_input",
        "email_text_input",
        "url_text_input",
        "number_input",
        "rich_text_input",
        "file_input",
    }
)
ACCESSORY_TYPES = (_INTERACTIVE - {"datetimepicker"}) | {"image"}
ACTIONS_TYPES = _INTERACTIVE | {"rich_text_input"}
INPUT_TYPES = (_INTERACTIVE - {"button", "overflow", "workflow_button"}) | _INPUT_ONLY
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Checker:
    """Collects problems while walking one payload."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{message} [json-pointer:{path}]")

    def string(self, value: Any, path: str, *, limit: int, required: bool = False) -> None:
        if value is None:
            if required:
                self.fail(path, "must provide a string")
            return
        if not isinstance(value, str):
            self.fail(path, "must be a string")
        elif len(value) > limit:
            self.fail(path, f"must be less than {limit + 1} characters")

    def text(
        self, obj: Any, path: str, *, limit: int, plain_only: bool = False, required: bool = True
    ) -> None:
        """A text object: plain_text or mrkdwn, non-empty, within `limit` characters."""
        if obj is None:
            if required:
                self.fail(path, "must provide an object")
            return
        if not isinstance(obj, dict):
            self.fail(path, "must be an object")
            return
        kind = obj.get("type")
        if kind not in ("plain_text", "mrkdwn"):
            self.fail(f"{path}/type", "must be one of: plain_text, mrkdwn")
        elif plain_only and kind != "plain_text":
            # Headers, labels, buttons, titles and options: Slack refuses mrkdwn there.
            self.fail(f"{path}/type", "must be plain_text")
        allowed = {"type", "text", "emoji"} if kind == "plain_text" else {"type", "text", "verbatim"}
        for key in obj.keys() - allowed:
            self.fail(f"{path}/{key}", "invalid additional property")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.fail(f"{path}/text", "must be more than 0 characters")
        elif len(text) > limit:
            self.fail(f"{path}/text", f"must be less than {limit + 1} characters")

    def option(self, obj: Any, path: str, *, plain_only: bool) -> None:
        if not isinstance(obj, dict):
            self.fail(path, "must be an object")
            return
        self.text(obj.get("text"), f"{path}/text", limit=75, plain_only=plain_only)
        self.string(obj.get("value"), f"{path}/value", limit=150, required=True)
        self.text(obj.get("description"), f"{path}/description", limit=75, required=False)

    def options(
        self, el: dict[str, Any], path: str, *, limit: int, plain_only: bool, minimum: int = 1
    ) -> list[str]:
        """Check `options` (or `option_groups`) and return the option values seen."""
        values: list[str] = []
        groups = el.get("option_groups")
        if groups is not None:
            flat = [
                (f"{path}/option_groups/{g}/options/{i}", o)
                for g, grp in enumerate(groups)
                for i, o in enumerate(grp.get("options", []) if isinstance(grp, dict) else [])
            ]
        else:
            opts = el.get("options")
            if not isinstance(opts, list):
                if el["type"] in (
                    "static_select",
                    "multi_static_select",
                    "checkboxes",
                    "radio_buttons",
                    "overflow",
                ):
                    self.fail(f"{path}/options", "must provide an array")
                return values
            if not minimum <= len(opts) <= limit:
                self.fail(f"{path}/options", f"must have between {minimum} and {limit} items")
            flat = [(f"{path}/options/{i}", o) for i, o in enumerate(opts)]
        for opath, opt in flat:
            self.option(opt, opath, plain_only=plain_only)
            if isinstance(opt, dict) and isinstance(opt.get("value"), str):
                values.append(opt["value"])
        return values

    def typed(self, obj: Any, path: str, allowed: frozenset[str], what: str) -> str | None:
        """The `type` of a block or element when it is an allowed one, else None (and a problem)."""
        if not isinstance(obj, dict):
            self.fail(path, "must be an object")
            return None
        kind = obj.get("type")
        if not isinstance(kind, str) or kind not in allowed:
            self.fail(f"{path}/type", f"unsupported {what} type: {kind!r}")
            return None
        return kind

    def image(self, obj: dict[str, Any], path: str) -> None:
        if not obj.get("image_url") and not obj.get("slack_file"):
            self.fail(path, "must provide image_url or slack_file")
        self.string(obj.get("alt_text"), f"{path}/alt_text", limit=2000, required=True)

    def element(self, el: Any, path: str, allowed: frozenset[str]) -> None:
        kind = self.typed(el, path, allowed, "element")
        if kind is None:
            return
        if kind == "image":
            self.image(el, path)
            return
        self.string(el.get("action_id"), f"{path}/action_id", limit=ID_LIMIT)
        self.text(el.get("placeholder"), f"{path}/placeholder", limit=150, plain_only=True, required=False)
        if kind == "button":
            self.text(el.get("text"), f"{path}/text", limit=BUTTON_TEXT_LIMIT, plain_only=True)
            self.string(el.get("value"), f"{path}/value", limit=2000)
            self.string(el.get("url"), f"{path}/url", limit=3000)
            if el.get("style") not in (None, "primary", "danger"):
                self.fail(f"{path}/style", "must be one of: primary, danger")
        elif kind in ("static_select", "multi_static_select"):
            values = self.options(el, path, limit=100, plain_only=True)
            initial = el.get("initial_option")
            if isinstance(initial, dict) and initial.get("value") not in values:
                self.fail(f"{path}/initial_option", "must match one of the options")
            for i, opt in enumerate(el.get("initial_options") or []):
                if isinstance(opt, dict) and opt.get("value") not in values:
                    self.fail(f"{path}/initial_options/{i}", "must match one of the options")
        elif kind in ("checkboxes", "radio_buttons"):
            self.options(el, path, limit=10, plain_only=False)
        elif kind == "overflow":
            self.options(el, path, limit=5, plain_only=True)
        elif kind == "plain_text_input":
            self.string(el.get("initial_value"), f"{path}/initial_value", limit=3000)
            max_length = el.get("max_length")
            if max_length is not None and not (isinstance(max_length, int) and 1 <= max_length <= 3000):
                self.fail(f"{path}/max_length", "must be between 1 and 3000")
        elif kind == "datepicker":
            initial = el.get("initial_date")
            if initial is not None and not (isinstance(initial, str) and _DATE.match(initial)):
                self.fail(f"{path}/initial_date", "must be a date in YYYY-MM-DD format")
        elif kind == "number_input" and "is_decimal_allowed" not in el:
            self.fail(f"{path}/is_decimal_allowed", "must provide a boolean")

    def block(self, block: Any, path: str, allowed_types: frozenset[str], seen_ids: set[str]) -> None:
        kind = self.typed(block, path, allowed_types, "block")
        if kind is None:
            return
        for key in block.keys() - _BLOCK_KEYS[kind] - {"type", "block_id"}:
            self.fail(f"{path}/{key}", "invalid additional property")
        block_id = block.get("block_id")
        if block_id is not None:
            self.string(block_id, f"{path}/block_id", limit=ID_LIMIT)
            if block_id in seen_ids:
                self.fail(f"{path}/block_id", f"duplicate block_id: {block_id!r}")
            seen_ids.add(block_id)
        if kind == "section":
            if block.get("text") is None and block.get("fields") is None:
                self.fail(path, "must provide text or fields")
            self.text(block.get("text"), f"{path}/text", limit=SECTION_TEXT_LIMIT, required=False)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or not 1 <= len(fields) <= FIELD_LIMIT:
                    self.fail(f"{path}/fields", f"must have between 1 and {FIELD_LIMIT} items")
                else:
                    for i, field in enumerate(fields):
                        self.text(field, f"{path}/fields/{i}", limit=FIELD_TEXT_LIMIT)
            if block.get("accessory") is not None:
                self.element(block["accessory"], f"{path}/accessory", ACCESSORY_TYPES)
        elif kind == "header":
            self.text(block.get("text"), f"{path}/text", limit=HEADER_TEXT_LIMIT, plain_only=True)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                self.fail(f"{path}/elements", "must have between 1 and 10 items")
                return
            for i, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                    self.text(el, f"{path}/elements/{i}", limit=SECTION_TEXT_LIMIT)
                else:
                    self.element(el, f"{path}/elements/{i}", frozenset({"image"}))
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                self.fail(f"{path}/elements", "must have between 1 and 25 items")
                return
            action_ids: set[str] = set()
            for i, el in enumerate(elements):
                self.element(el, f"{path}/elements/{i}", ACTIONS_TYPES)
                action_id = el.get("action_id") if isinstance(el, dict) else None
                if action_id is not None:
                    if action_id in action_ids:
                        self.fail(f"{path}/elements/{i}/action_id", f"duplicate action_id: {action_id!r}")
                    action_ids.add(action_id)
        elif kind == "input":
            self.text(block.get("label"), f"{path}/label", limit=2000, plain_only=True)
            self.text(block.get("hint"), f"{path}/hint", limit=2000, plain_only=True, required=False)
            if block.get("element") is None:
                self.fail(f"{path}/element", "must provide an object")
            else:
                self.element(block["element"], f"{path}/element", INPUT_TYPES)
        elif kind == "image":
            self.image(block, path)
            self.text(block.get("title"), f"{path}/title", limit=2000, plain_only=True, required=False)
        elif kind == "markdown":
            self.string(block.get("text"), f"{path}/text", limit=12000, required=True)
        elif kind == "rich_text" and not isinstance(block.get("elements"), list):
            self.fail(f"{path}/elements", "must provide an array")

    def blocks(self, blocks: Any, path: str, *, limit: int, allowed_types: frozenset[str]) -> None:
        if not isinstance(blocks, list):
            self.fail(path, "must provide an array")
            return
        if len(blocks) > limit:
            self.fail(path, f"no more than {limit} items allowed")
        seen: set[str] = set()
        for i, block in enumerate(blocks):
            self.block(block, f"{path}/{i}", allowed_types, seen)


def validate_message_blocks(blocks: Any) -> list[str]:
    """Problems Slack would report (as ``invalid_blocks``) for the blocks of a message."""
    checker = _Checker()
    checker.blocks(blocks, "/blocks", limit=MESSAGE_BLOCK_LIMIT, allowed_types=MESSAGE_BLOCK_TYPES)
    return checker.errors


_VIEW_KEYS = {
    "modal": frozenset(
        {
            "type",
            "title",
            "blocks",
            "close",
            "submit",
            "private_metadata",
            "callback_id",
            "clear_on_close",
            "notify_on_close",
            "external_id",
            "submit_disabled",
        }
    ),
    "home": frozenset({"type", "blocks", "private_metadata", "callback_id", "external_id"}),
}


def validate_view(view: Any, *, allowed_types: tuple[str, ...] = ("modal", "home")) -> list[str]:
    """Problems Slack would report (as ``invalid_arguments``) for a modal or App Home view."""
    checker = _Checker()
    if not isinstance(view, dict):
        checker.fail("/view", "must be an object")
        return checker.errors
    kind = view.get("type")
    if kind not in allowed_types:
        checker.fail("/view/type", f"must be one of: {', '.join(allowed_types)}")
        return checker.errors
    for key in view.keys() - _VIEW_KEYS[kind]:
        checker.fail(f"/view/{key}", "invalid additional property")
    checker.blocks(view.get("blocks"), "/view/blocks", limit=VIEW_BLOCK_LIMIT, allowed_types=VIEW_BLOCK_TYPES)
    checker.string(view.get("private_metadata"), "/view/private_metadata", limit=PRIVATE_METADATA_LIMIT)
    checker.string(view.get("callback_id"), "/view/callback_id", limit=ID_LIMIT)
    checker.string(view.get("external_id"), "/view/external_id", limit=ID_LIMIT)
    if kind == "modal":
        checker.text(view.get("title"), "/view/title", limit=VIEW_TITLE_LIMIT, plain_only=True)
        checker.text(
            view.get("close"), "/view/close", limit=VIEW_TITLE_LIMIT, plain_only=True, required=False
        )
        has_inputs = any(isinstance(b, dict) and b.get("type") == "input" for b in view.get("blocks") or [])
        # Slack: "submit is required when an input block is within the blocks array".
        checker.text(
            view.get("submit"), "/view/submit", limit=VIEW_TITLE_LIMIT, plain_only=True, required=has_inputs
        )
    return checker.errors
