"""What a person has typed into a modal: ``view.state.values`` in Slack's exact shape.

Slack keys the state by ``block_id`` then ``action_id``; each entry carries the element ``type``
and one value field whose name depends on the type (``value``, ``selected_option``, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

# element type -> (state field, initial_* field on the element, is a list)
_FIELDS: dict[str, tuple[str, str, bool]] = {
    "plain_text_input": ("value", "initial_value", False),
    "email_text_input": ("value", "initial_value", False),
    "url_text_input": ("value", "initial_value", False),
    "number_input": ("value", "initial_value", False),
    "static_select": ("selected_option", "initial_option", False),
    "external_select": ("selected_option", "initial_option", False),
    "radio_buttons": ("selected_option", "initial_option", False),
    "multi_static_select": ("selected_options", "initial_options", True),
    "multi_external_select": ("selected_options", "initial_options", True),
    "checkboxes": ("selected_options", "initial_options", True),
    "users_select": ("selected_user", "initial_user", False),
    "multi_users_select": ("selected_users", "initial_users", True),
    "conversations_select": ("selected_conversation", "initial_conversation", False),
    "multi_conversations_select": ("selected_conversations", "initial_conversations", True),
    "channels_select": ("selected_channel", "initial_channel", False),
    "multi_channels_select": ("selected_channels", "initial_channels", True),
    "datepicker": ("selected_date", "initial_date", False),
    "timepicker": ("selected_time", "initial_time", False),
    "datetimepicker": ("selected_date_time", "initial_date_time", False),
    "rich_text_input": ("rich_text_value", "initial_value", False),
}
_OPTION_TYPES = frozenset(
    {
        "static_select",
        "radio_buttons",
        "multi_static_select",
        "checkboxes",
        "external_select",
        "multi_external_select",
    }
)


def stateful_elements(view: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(block_id, element) for every element whose value Slack reports in ``state.values``."""
    for block in view.get("blocks") or []:
        block_id = block.get("block_id")
        kind = block.get("type")
        if kind == "input":
            elements = [block.get("element") or {}]
        elif kind == "actions":
            elements = block.get("elements") or []
        elif kind == "section" and block.get("accessory"):
            elements = [block["accessory"]]
        else:
            continue
        for element in elements:
            if element.get("type") in _FIELDS and element.get("action_id"):
                yield block_id, element


def _initial(element: dict[str, Any]) -> dict[str, Any]:
    field, initial_field, is_list = _FIELDS[element["type"]]
    value = element.get(initial_field)
    if value is None:
        value = [] if is_list else None
    return {"type": element["type"], field: copy.deepcopy(value)}


def seed_state(view: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fresh ``state.values`` for `view`, keeping what was typed in blocks whose ids did not change.

    Slack keeps an input's value across ``views.update`` when its ``block_id`` (and the element's
    ``action_id`` and type) stay the same, and ignores the new ``initial_*`` then: bots that want to
    reset a field must change its ``block_id``.
    """
    previous = previous or {}
    values: dict[str, dict[str, Any]] = {}
    for block_id, element in stateful_elements(view):
        old = previous.get(block_id, {}).get(element["action_id"])
        if old is not None and old.get("type") == element["type"]:
            entry = copy.deepcopy(old)
        else:
            entry = _initial(element)
        values.setdefault(block_id, {})[element["action_id"]] = entry
    return values


def find_element(
    view: dict[str, Any], action_id: str, block_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The (block_id, element) with `action_id`; raises KeyError naming what exists."""
    seen = []
    for block in view.get("blocks") or []:
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        for key in ("element", "accessory"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if not isinstance(element, dict):
                continue
            seen.append(f"{block.get('block_id')}/{element.get('action_id')}")
            if element.get("action_id") == action_id and block_id in (None, block.get("block_id")):
                return block.get("block_id"), element
    raise KeyError(f"no element with action_id={action_id!r} block_id={block_id!r}; present: {seen}")


def _option(element: dict[str, Any], value: str) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    for option in options:
        if option.get("value") == value:
            return copy.deepcopy(option)
    raise ValueError(
        f"{value!r} is not an option of {element.get('action_id')!r}: {[o.get('value') for o in options]}"
    )


def typed_entry(element: dict[str, Any], value: Any) -> dict[str, Any]:
    """The state entry a person produces by typing/choosing `value` in `element`.

    Options are chosen by their ``value`` string (a list for multi selects and checkboxes); users,
    channels and dates are given as Slack would report them ("U0ALICE", "2024-05-01").
    """
    kind = element.get("type")
    if kind not in _FIELDS:
        raise ValueError(f"element {element.get('action_id')!r} of type {kind!r} holds no value")
    field, _initial_field, is_list = _FIELDS[kind]
    if is_list and value is not None and not isinstance(value, list | tuple):
        raise ValueError(f"{element.get('action_id')!r} ({kind}) takes a list of values")
    if kind in _OPTION_TYPES and value is not None:
        value = [_option(element, v) for v in value] if is_list else _option(element, value)
    elif kind == "datetimepicker" and value is not None:
        value = int(value)
    elif is_list:
        value = list(value or [])
    return {"type": kind, field: value}


def entry_value(entry: dict[str, Any]) -> Any:
    """The value part of a state entry (whatever its field is called)."""
    return next((v for k, v in entry.items() if k != "type"), None)
