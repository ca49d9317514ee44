"""Slack listeners grouped by surface, and the one `register(app)` that wires them all.

A handler parses, calls a service, and answers; business rules live in `bot/`.
"""

from slack_bolt import App

from handlers import actions, channels, commands, error_handler, home, messages, views


def register(app: App) -> None:
    commands.register(app)
    views.register(app)
    actions.register(app)
    messages.register(app)
    channels.register(app)
    home.register(app)
    error_handler.register(app)
