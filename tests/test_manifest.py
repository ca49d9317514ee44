"""manifest.yml is a valid Slack app manifest and declares what the code registers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.slack import blocks

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT.parent / "shared" / "schemas" / "slack-manifest.schema.1.0.0.json"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return yaml.safe_load((ROOT / "manifest.yml").read_text())


def test_manifest_validates_against_slacks_schema(manifest: dict) -> None:
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA}")
    jsonschema.validate(manifest, json.loads(SCHEMA.read_text()))


def test_manifest_declares_the_slash_command_and_interactivity(manifest: dict) -> None:
    commands = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert commands == [blocks.COMMAND]
    assert manifest["settings"]["interactivity"]["is_enabled"] is True


def test_a_broken_manifest_fails_validation(manifest: dict) -> None:
    """The schema check can fail: an app without a name is refused."""
    if not SCHEMA.exists():
        pytest.skip(f"Slack's manifest schema is not at {SCHEMA}")
    broken = json.loads(json.dumps(manifest))
    broken["display_information"]["name"] = ""
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_manifest_declares_the_shortcut_events_and_scopes_the_code_uses(manifest: dict) -> None:
    shortcuts = {s["callback_id"]: s["type"] for s in manifest["features"]["shortcuts"]}
    assert shortcuts == {blocks.Callback.ADD_TO_TIMELINE: "message"}
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"message.channels", "message.groups", "reaction_added"} <= events
    for kind in ("channel", "group"):
        life = {f"{kind}_{verb}" for verb in ("archive", "unarchive", "rename", "deleted", "left")}
        assert life <= events, "handlers/channels.py follows these"
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # conversations.create, reaction_added, conversations.members/history, chat.postMessage
    assert {"channels:manage", "reactions:read", "channels:read", "groups:read", "channels:history"} <= scopes
    assert "actions" in manifest["features"]["slash_commands"][0]["usage_hint"]


def test_manifest_enables_the_home_tab_the_code_publishes(manifest: dict) -> None:
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
