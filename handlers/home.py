"""The App Home tab: published when a person opens it, and again after they mark an item done there."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.core.clock import utcnow
from bot.flows import lookups
from bot.flows.context import Runtime


def handle_app_home_opened(event: dict[str, Any], client: WebClient, runtime: Runtime) -> None:
    # The same event fires for the Messages tab; only the Home tab has a view to publish.
    if event.get("tab") != "home":
        return
    client.views_publish(user_id=event["user"], view=lookups.home_view(runtime, event["user"], utcnow()))


def register(app: App) -> None:
    app.event("app_home_opened")(handle_app_home_opened)
